//! The pipeline seed's example, ported: a generator of 10 items, fanned out
//! to 5 workers taking 100 ms each, rate limited to 10 per second; prints the
//! items and the elapsed time.
//!
//! ```text
//! cargo run --example pipeline
//! ```
//!
//! The Go original:
//!
//! ```text
//! ch := Generator(10)
//! ch = FanOutFunc(5, ch, func(i int) int { time.Sleep(100ms); return i * 10 })
//! ch = RateLimit(10, time.Second, ch)
//! for v := range ch { fmt.Println(v) }
//! fmt.Println(time.Since(start))
//! ```
//!
//! Differences: `par_map` keeps input order (the Go fan-out does not; use
//! `par_map_unordered` for that), and the rate limit is a GCRA instead of a
//! ticker, so it neither drifts nor lets a burst through after idle. The
//! first item is ready after 100 ms and the limiter then spaces items 100 ms
//! apart, so the run takes about 1 s.

use std::pin::pin;
use std::time::Duration;

use flowgate::limit::Rate;
use flowgate::prelude::*;
use futures_util::{StreamExt, stream};
use tokio::time::Instant;

#[tokio::main]
async fn main() {
    let start = Instant::now();

    let mut items = pin!(
        stream::iter(0..10u64)
            .par_map(5, |i| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                i * 10
            })
            .rate_limit(Rate::per_period(10, Duration::from_secs(1)))
    );

    while let Some(v) = items.next().await {
        println!("{v}");
    }
    println!("{:?}", start.elapsed());
}
