//! flowgate's operators in scope beside `tokio_stream::StreamExt` and
//! `futures::StreamExt` (a user has all three): no name is ambiguous, so
//! this file compiles, and each operator is flowgate's. (`timeout`,
//! `throttle` and `merge` were renamed `item_timeout`, `throttle_keep` and
//! `merge_with`: tokio-stream has the first three, with other meanings for
//! two of them.)
#![allow(unused_imports)]

use std::time::Duration;

use flowgate::pipeline::Keep;
use flowgate::prelude::*;
use futures_util::StreamExt as _;
use futures_util::stream;
use tokio_stream::StreamExt;

#[tokio::test(start_paused = true)]
async fn flowgate_operators_resolve_beside_both_stream_ext_traits() {
    let merged = stream::iter([1, 3]).merge_with(stream::iter([2]));
    let throttled = merged.throttle_keep(Duration::from_secs(1), Keep::First);
    let timed = throttled.item_timeout(Duration::from_secs(5));
    let batched = timed.batch(10, Duration::from_millis(10));
    let out: Vec<Vec<Result<u32, _>>> = futures_util::StreamExt::collect(batched).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), 1, "throttle_keep kept the first item only");
    assert_eq!(out[0][0].as_ref().ok(), Some(&1));
    // tokio-stream's own operators are still there, under their names.
    let delayed = tokio_stream::StreamExt::timeout(stream::iter([7]), Duration::from_secs(1));
    let got: Vec<_> = futures_util::StreamExt::collect(delayed).await;
    assert!(got[0].is_ok());
}
