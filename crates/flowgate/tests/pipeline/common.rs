//! Helpers shared by the operator tests.

use std::time::Duration;

use futures_util::stream::{self, Stream, StreamExt};
use tokio::time::{Instant, sleep_until};

/// A stream yielding each `(at_ms, item)` at `at_ms` after it was made.
pub(crate) fn timed<T>(events: Vec<(u64, T)>) -> impl Stream<Item = T> {
    let start = Instant::now();
    stream::iter(events).then(move |(at, item)| async move {
        sleep_until(start + Duration::from_millis(at)).await;
        item
    })
}

/// Collects `s` as `(ms since start, item)` pairs.
pub(crate) async fn collect_timed<S: Stream>(s: S) -> Vec<(u64, S::Item)> {
    let start = Instant::now();
    s.map(|item| (start.elapsed().as_millis() as u64, item))
        .collect()
        .await
}
