use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowgate::prelude::*;
use futures_util::stream::{self, FusedStream, StreamExt};
use tokio::time::Instant;

const D: Duration = Duration::from_millis(100);

#[tokio::test(start_paused = true)]
async fn every_token_comes_back_once_with_its_batchs_output() {
    let items = stream::iter((0..2500u32).map(|i| (i, i)));
    let mut out = Box::pin(
        items.write_batches(1000, D, 2, |rows: Vec<u32>| async move {
            rows.iter().map(|r| u64::from(*r)).sum::<u64>()
        }),
    );
    let mut tokens = Vec::new();
    let mut sizes = Vec::new();
    while let Some((sum, batch)) = out.next().await {
        assert_eq!(
            sum,
            batch.iter().map(|t| u64::from(*t)).sum::<u64>(),
            "rows and tokens stay paired"
        );
        sizes.push(batch.len());
        tokens.extend(batch);
    }
    assert!(out.is_terminated());
    sizes.sort_unstable();
    assert_eq!(sizes, [500, 1000, 1000]);
    tokens.sort_unstable();
    assert_eq!(tokens, (0..2500).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn at_most_concurrency_writes_run_and_upstream_waits_for_room() {
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let pulled = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&pulled);
    let items = stream::iter(0..100u32).map(move |i| {
        counted.fetch_add(1, Ordering::SeqCst);
        (i, ())
    });
    let (r, m) = (Arc::clone(&running), Arc::clone(&most));
    let mut out = Box::pin(items.write_batches(10, D, 3, move |rows: Vec<u32>| {
        let (running, most) = (Arc::clone(&r), Arc::clone(&m));
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(D).await;
            running.fetch_sub(1, Ordering::SeqCst);
            rows.len()
        }
    }));
    let first = out.next().await.unwrap();
    assert_eq!(first.0, 10);
    // 3 writes started, one batch forming at most: the rest is not pulled.
    assert!(
        pulled.load(Ordering::SeqCst) <= 4 * 10 + 1,
        "pulled {}",
        pulled.load(Ordering::SeqCst)
    );
    let mut total = first.1.len();
    while let Some((n, tokens)) = out.next().await {
        assert_eq!(n, tokens.len());
        total += n;
    }
    assert_eq!(total, 100);
    assert_eq!(most.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_partial_batch_is_written_after_max_delay() {
    let (tx, rx) = tokio::sync::mpsc::channel::<(u32, u32)>(8);
    let rx = stream::unfold(rx, |mut rx| async { rx.recv().await.map(|x| (x, rx)) });
    let mut out = Box::pin(rx.write_batches(100, D, 1, |rows: Vec<u32>| async move { rows }));
    let start = Instant::now();
    tx.send((1, 10)).await.unwrap();
    tx.send((2, 20)).await.unwrap();
    let (rows, tokens) = out.next().await.unwrap();
    assert_eq!((rows, tokens), (vec![1, 2], vec![10, 20]));
    assert_eq!(start.elapsed(), D, "flushed by the delay, not by size");
    drop(tx);
    assert!(out.next().await.is_none());
}

#[test]
#[should_panic(expected = "write_batches: concurrency must be at least 1")]
fn zero_concurrency_is_refused() {
    let _ = stream::iter([(1u8, ())]).write_batches(1, D, 0, |rows: Vec<u8>| async move { rows });
}

#[test]
#[should_panic(expected = "write_batches: max_items must be at least 1")]
fn zero_max_items_is_refused() {
    let _ = stream::iter([(1u8, ())]).write_batches(0, D, 1, |rows: Vec<u8>| async move { rows });
}

#[test]
#[should_panic(expected = "write_batches: max_delay must be greater than zero")]
fn zero_max_delay_is_refused() {
    let _ =
        stream::iter([(1u8, ())])
            .write_batches(1, Duration::ZERO, 1, |rows: Vec<u8>| async move { rows });
}

#[tokio::test(start_paused = true)]
async fn maxima_mean_no_bound_and_never() {
    let out: Vec<(usize, Vec<u32>)> = stream::iter((0..5000u32).map(|i| (i, i)))
        .write_batches(
            usize::MAX,
            Duration::MAX,
            usize::MAX,
            |rows: Vec<u32>| async move { rows.len() },
        )
        .collect()
        .await;
    assert_eq!(out.len(), 1, "one batch, at the end of upstream");
    assert_eq!(out[0].0, 5000);
}

#[tokio::test(start_paused = true)]
async fn with_concurrency_batches_come_out_as_their_writes_finish() {
    // Batches of one; the write of row `ms` takes `ms` milliseconds.
    let items = stream::iter([30u64, 10, 20].map(|ms| (ms, ms)));
    let out: Vec<(u64, Vec<u64>)> = items
        .write_batches(1, D, 3, |rows: Vec<u64>| async move {
            tokio::time::sleep(Duration::from_millis(rows[0])).await;
            rows[0]
        })
        .collect()
        .await;
    assert_eq!(out, [(10, vec![10]), (20, vec![20]), (30, vec![30])]);

    // With a concurrency of 1, in upstream order.
    let items = stream::iter([30u64, 10, 20].map(|ms| (ms, ms)));
    let out: Vec<Vec<u64>> = items
        .write_batches(1, D, 1, |rows: Vec<u64>| async move {
            tokio::time::sleep(Duration::from_millis(rows[0])).await;
        })
        .map(|((), tokens)| tokens)
        .collect()
        .await;
    assert_eq!(out, [vec![30], vec![10], vec![20]]);
}
