//! Per-key write order for `flowgate ingest --key FIELD`: rows of one key
//! are written in stream order, keys in parallel.
//!
//! ```text
//!                 ┌─ lane 0: write_batches(…, 1) ─┐
//!  rows ─ router ─┼─ lane 1: write_batches(…, 1) ─┼─ merged ─> ack
//!   (by key hash) └─ lane n: write_batches(…, 1) ─┘
//! ```
//!
//! Every row goes to the lane of its key's hash; a lane writes one batch at
//! a time, in order, so a key's rows are written in the order they came,
//! while the lanes write in parallel (as `--flush-concurrency` batches at
//! once do without `--key`). The lanes' channels are bounded by one batch
//! each: when a lane is behind, the router waits, and reading with it
//! (back-pressure, nothing dropped).

use std::future::Future;
use std::hash::BuildHasher;
use std::time::Duration;

use flowgate::prelude::*;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use tokio::sync::mpsc;

/// The lane of a key among `lanes`: a fixed hash (the same in every run, so
/// a restarted run keeps a key on one lane).
pub(crate) fn lane_of(key: &[u8], lanes: usize) -> usize {
    let hash = foldhash::fast::FixedState::with_seed(0x5eed).hash_one(key);
    // `lanes` is at most 64 (the flag's bound): the cast and the modulo are
    // exact.
    (hash % lanes as u64) as usize
}

/// Writes `(row, token)` pairs in batches of at most `size` rows (or what
/// came within `delay`), each lane one batch at a time, and yields every
/// written batch's result with its tokens, as `write_batches` does.
/// `lane(&token)` picks a pair's lane, below `lanes`.
pub(crate) fn write_in_lanes<R, T, O, W, Fut>(
    input: impl Stream<Item = (R, T)> + Send + 'static,
    lanes: usize,
    lane: impl Fn(&T) -> usize + Send + 'static,
    size: usize,
    delay: Duration,
    write: W,
) -> BoxStream<'static, (O, Vec<T>)>
where
    R: Send + 'static,
    T: Send + 'static,
    O: Send + 'static,
    W: FnMut(Vec<R>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = O> + Send + 'static,
{
    assert!(lanes > 0, "write_in_lanes: lanes must be at least 1");
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..lanes).map(|_| mpsc::channel(size.max(1))).unzip();
    tokio::spawn(async move {
        futures_util::pin_mut!(input);
        while let Some(pair) = input.next().await {
            let to = lane(&pair.1);
            // The lanes end only when the consumer is gone: stop reading.
            if senders[to].send(pair).await.is_err() {
                break;
            }
        }
        // Dropping the senders ends the lanes once they are drained.
    });
    let lanes = receivers
        .into_iter()
        .enumerate()
        .map(move |(lane, receiver)| {
            let rows = stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|pair| (pair, receiver))
            });
            rows.write_batches(size, delay, 1, write.clone())
                .name(format!("ingest-lane{lane}"))
                .boxed()
        });
    stream::select_all(lanes).boxed()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::time::{Instant, sleep};

    use super::*;

    /// `(key, seq)` rows; writing a batch takes 50 ms if it holds key 0's
    /// first row, else 1 ms. Returns the rows in the order they were written
    /// (each batch's rows at its end) and the time it took.
    async fn run(lanes: usize, rows: Vec<(u8, u32)>) -> (Vec<(u8, u32)>, Duration) {
        let written = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let write = {
            let written = Arc::clone(&written);
            move |batch: Vec<(u8, u32)>| {
                let written = Arc::clone(&written);
                async move {
                    let slow = batch.contains(&(0, 0));
                    sleep(Duration::from_millis(if slow { 50 } else { 1 })).await;
                    written.lock().unwrap().extend(batch);
                }
            }
        };
        let total = rows.len();
        let input = stream::iter(rows.into_iter().map(|row| (row, row.0)));
        let out: Vec<((), Vec<u8>)> = write_in_lanes(
            input,
            lanes,
            move |key: &u8| lane_of(&[*key], lanes),
            2,
            Duration::from_millis(5),
            write,
        )
        .collect()
        .await;
        assert_eq!(out.iter().map(|(_, keys)| keys.len()).sum::<usize>(), total);
        let written = written.lock().unwrap().clone();
        (written, start.elapsed())
    }

    fn rows() -> Vec<(u8, u32)> {
        (0..40u32).map(|seq| ((seq % 4) as u8, seq)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn each_keys_rows_are_written_in_stream_order() {
        let (written, _) = run(3, rows()).await;
        assert_eq!(written.len(), 40);
        for key in 0..4u8 {
            let seqs: Vec<u32> = written
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|&(_, s)| s)
                .collect();
            let mut sorted = seqs.clone();
            sorted.sort_unstable();
            assert_eq!(seqs, sorted, "key {key}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_lane_does_not_hold_back_the_others() {
        // Key 0's first batch takes 50 ms; a key of the other lane is
        // written meanwhile, all of it, in 1 ms batches.
        let other = (1..=255u8)
            .find(|&k| lane_of(&[k], 2) != lane_of(&[0], 2))
            .unwrap();
        let mut rows = vec![(0u8, 0u32)];
        rows.extend((1..40).map(|seq| (other, seq)));
        let (written, elapsed) = run(2, rows).await;
        assert_eq!(written.last(), Some(&(0, 0)));
        // key 0's batch of one row waits out the 5 ms delay, then 50 ms
        assert_eq!(elapsed, Duration::from_millis(55));
    }

    #[test]
    fn lanes_are_stable_and_in_range() {
        for key in [&b""[..], b"a", b"order-17", &[0xff; 64]] {
            for lanes in [1, 2, 3, 64] {
                assert!(lane_of(key, lanes) < lanes);
                assert_eq!(lane_of(key, lanes), lane_of(key, lanes));
            }
        }
        assert_eq!(lane_of(b"anything", 1), 0);
    }
}
