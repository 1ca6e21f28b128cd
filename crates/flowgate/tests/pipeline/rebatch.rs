use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowgate::prelude::*;
use futures_util::stream::{self, FusedStream, StreamExt};
use proptest::prelude::*;
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready_eq, task};

const D: Duration = Duration::from_millis(100);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
        .block_on(f)
}

proptest! {
    /// The batches are those of flattening the chunks and batching the items.
    #[test]
    fn rebatch_forms_the_batches_of_flatten_then_batch(
        chunks in prop::collection::vec(prop::collection::vec(any::<u16>(), 0..12), 0..20),
        max in 1usize..10,
    ) {
        let (rebatched, batched) = block_on(async {
            let rebatched: Vec<Vec<u16>> =
                stream::iter(chunks.clone()).rebatch(max, D).collect().await;
            let batched: Vec<Vec<u16>> = stream::iter(chunks.clone())
                .flat_map(stream::iter)
                .batch(max, D)
                .collect()
                .await;
            (rebatched, batched)
        });
        prop_assert_eq!(rebatched, batched);
    }
}

#[tokio::test(start_paused = true)]
async fn a_chunk_that_fits_an_empty_batch_is_handed_on_without_a_copy() {
    let chunk: Vec<u64> = (0..1000).collect();
    let at = chunk.as_ptr();
    let mut batches = Box::pin(stream::iter([chunk]).rebatch(1000, D));
    let batch = batches.next().await.expect("one batch");
    assert_eq!(batch.as_ptr(), at, "the read batch itself, not a copy");
    assert_eq!(batch.len(), 1000);
    assert_eq!(batches.next().await, None);
    assert!(batches.is_terminated());
}

#[tokio::test(start_paused = true)]
async fn a_chunk_larger_than_a_batch_makes_several_in_order() {
    let batches: Vec<Vec<u32>> = stream::iter([vec![], (0..7).collect(), vec![], vec![7]])
        .rebatch(3, D)
        .collect()
        .await;
    assert_eq!(batches, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
}

#[tokio::test(start_paused = true)]
async fn a_partial_batch_is_yielded_once_its_first_item_waited_max_delay() {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u32>>(4);
    let mut batches = task::spawn(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx).rebatch(10, D),
    ));
    assert_pending!(batches.poll_next());
    let start = Instant::now();
    tx.send(vec![1, 2]).await.unwrap();
    assert_pending!(batches.poll_next());
    tokio::time::sleep(D / 2).await;
    tx.send(vec![3]).await.unwrap();
    assert_pending!(batches.poll_next());
    assert_eq!(batches.held(), 3);
    tokio::time::sleep_until(start + D).await;
    assert!(batches.is_woken(), "the batch timer wakes the stage");
    assert_ready_eq!(batches.poll_next(), Some(vec![1, 2, 3]));
    assert_eq!(batches.held(), 0);
    drop(tx);
    assert_ready_eq!(batches.poll_next(), None);
}

#[tokio::test(start_paused = true)]
async fn the_delay_never_fires_at_duration_max_and_the_size_is_unbounded_at_usize_max() {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u32>>(4);
    let mut batches = task::spawn(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx).rebatch(usize::MAX, Duration::MAX),
    ));
    tx.send(vec![1; 5000]).await.unwrap();
    tx.send(vec![2; 5000]).await.unwrap();
    assert_pending!(batches.poll_next());
    tokio::time::sleep(Duration::from_secs(365 * 24 * 3600)).await;
    assert_pending!(batches.poll_next());
    assert_eq!(batches.held(), 10_000);
    drop(tx);
    let batch = batches.poll_next();
    match batch {
        std::task::Poll::Ready(Some(batch)) => assert_eq!(batch.len(), 10_000),
        other => panic!("the end yields the batch, got {other:?}"),
    }
}

#[test]
#[should_panic(expected = "rebatch: max_items must be at least 1")]
fn rebatch_refuses_zero_items() {
    let _ = stream::iter([vec![1]]).rebatch(0, D);
}

#[test]
#[should_panic(expected = "rebatch: max_delay must be greater than zero")]
fn rebatch_refuses_a_zero_delay() {
    let _ = stream::iter([vec![1]]).rebatch(1, Duration::ZERO);
}

#[test]
#[should_panic(expected = "write_chunks: concurrency must be at least 1")]
fn write_chunks_refuses_zero_concurrency() {
    let _ = stream::iter([vec![1]]).write_chunks(1, D, 0, |rows: Vec<u32>| async move { rows });
}

#[test]
#[should_panic(expected = "write_chunks: max_items must be at least 1")]
fn write_chunks_refuses_zero_items() {
    let _ = stream::iter([vec![1]]).write_chunks(0, D, 1, |rows: Vec<u32>| async move { rows });
}

#[tokio::test(start_paused = true)]
async fn write_chunks_writes_every_item_once() {
    let chunks = (0..50u32).map(|c| (c * 37..(c + 1) * 37).collect::<Vec<_>>());
    let mut out =
        Box::pin(
            stream::iter(chunks).write_chunks(100, D, 3, |rows: Vec<u32>| async move {
                tokio::time::sleep(Duration::from_millis(u64::from(rows[0] % 7))).await;
                rows
            }),
        );
    let mut seen = Vec::new();
    while let Some(rows) = out.next().await {
        assert!(rows.len() <= 100);
        seen.extend(rows);
    }
    assert!(out.is_terminated());
    seen.sort_unstable();
    assert_eq!(seen, (0..50 * 37).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn write_chunks_runs_at_most_concurrency_writes_and_upstream_waits_for_room() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&pulled);
    let chunks = stream::iter((0..100u32).map(|i| vec![i; 10])).inspect(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    let (release, released) = tokio::sync::watch::channel(false);
    let mut out = task::spawn(Box::pin(chunks.write_chunks(
        10,
        D,
        2,
        move |rows: Vec<u32>| {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|go| *go).await;
                rows.len()
            }
        },
    )));
    assert_pending!(out.poll_next());
    assert_eq!(out.in_flight(), 2);
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        2,
        "no chunk is read ahead of room"
    );
    release.send(true).unwrap();
    let total: usize = out.collect::<Vec<_>>().await.iter().sum();
    assert_eq!(total, 1000);
    assert_eq!(pulled.load(Ordering::SeqCst), 100);
}
