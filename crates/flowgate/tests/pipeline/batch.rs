use std::pin::pin;
use std::time::Duration;

use flowgate::pipeline::{Batch, BatchDedup, BatchFlush};
use flowgate::prelude::*;
use futures_util::stream::{self, FusedStream, Stream, StreamExt};
use proptest::prelude::*;
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready_eq, task};

use crate::common::{collect_timed, timed};

const D: Duration = Duration::from_millis(100);

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    type Iter = stream::Iter<std::vec::IntoIter<u8>>;
    assert_send_sync::<Batch<Iter>>();
    assert_send_sync::<BatchDedup<Iter, fn(&u8) -> u8, u8>>();
    assert_send_sync::<BatchFlush>();
}

fn channel() -> (
    tokio::sync::mpsc::UnboundedSender<u32>,
    impl Stream<Item = u32>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    (tx, stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

#[tokio::test(start_paused = true)]
async fn by_size_and_by_time_since_first_item() {
    let events = vec![
        (0, 1),
        (10, 2),
        (20, 3), // full at 20
        (50, 4), // opens a batch: delay until 150
        (140, 5),
        (300, 6), // ends at 300: yielded at once
    ];
    let s = pin!(timed(events).batch(3, D));
    let out = collect_timed(s).await;
    assert_eq!(
        out,
        vec![(20, vec![1, 2, 3]), (150, vec![4, 5]), (300, vec![6])]
    );
}

#[tokio::test(start_paused = true)]
async fn quiet_stream_yields_no_empty_batch() {
    let (tx, rx) = channel();
    let mut s = task::spawn(Box::pin(rx.batch(10, D)));
    assert_pending!(s.poll_next());
    advance(D * 5).await;
    assert!(!s.is_woken());
    assert_pending!(s.poll_next());
    tx.send(1).unwrap();
    assert!(s.is_woken());
    assert_pending!(s.poll_next());
    assert_eq!(s.pending(), 1);
    advance(D).await;
    assert!(s.is_woken());
    assert_ready_eq!(s.poll_next(), Some(vec![1]));
    drop(tx);
    assert_ready_eq!(s.poll_next(), None);
    assert!(s.is_terminated());
}

#[tokio::test(start_paused = true)]
async fn flush_on_demand() {
    let (tx, rx) = channel();
    let batches = rx.batch(10, D);
    let flush = batches.flush_handle();
    let mut s = task::spawn(Box::pin(batches));
    // A flush with nothing held does nothing, and is not remembered.
    flush.flush();
    assert_pending!(s.poll_next());
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_pending!(s.poll_next());
    flush.flush();
    assert!(s.is_woken(), "a flush wakes the stream");
    assert_ready_eq!(s.poll_next(), Some(vec![1, 2]));
    // The flushed batch's timer is gone: the next batch gets a fresh delay.
    tx.send(3).unwrap();
    advance(D / 2).await;
    assert_pending!(s.poll_next());
    advance(D / 2).await;
    assert_pending!(s.poll_next());
    advance(D / 2).await;
    assert_ready_eq!(s.poll_next(), Some(vec![3]));
    // Flushing from another task.
    tx.send(4).unwrap();
    assert_pending!(s.poll_next());
    let f = flush.clone();
    tokio::spawn(async move { f.flush() }).await.unwrap();
    assert!(s.is_woken());
    assert_ready_eq!(s.poll_next(), Some(vec![4]));
    drop(s);
    flush.flush(); // harmless after the stream is gone
}

#[tokio::test(start_paused = true)]
async fn dedup_keeps_first_of_each_key_and_counts_distinct() {
    // The seed's BatchFunc: 0..20 % 10, batches of 3 distinct ids.
    let s = stream::iter((0..20u32).map(|i| i % 10)).batch_dedup(3, Duration::from_secs(1));
    let batches: Vec<Vec<u32>> = s.collect().await;
    assert_eq!(
        batches,
        vec![
            vec![0, 1, 2],
            vec![3, 4, 5],
            vec![6, 7, 8],
            vec![9, 0, 1],
            vec![2, 3, 4],
            vec![5, 6, 7],
            vec![8, 9],
        ]
    );

    let mut s =
        Box::pin(stream::iter([1, 1, 2, 1, 2, 3, 3, 4]).batch_dedup_by_key(3, D, |x: &i32| *x));
    assert_eq!(s.next().await, Some(vec![1, 2, 3]));
    assert_eq!(s.duplicates(), 3);
    // Keys are forgotten with each batch: 3 is new again.
    assert_eq!(s.next().await, Some(vec![3, 4]));
    assert_eq!(s.next().await, None);
}

#[tokio::test]
async fn many_duplicates_yield_to_the_executor() {
    let mut s = task::spawn(Box::pin(
        stream::iter(std::iter::repeat_n(7u8, 10_000)).batch_dedup(2, D),
    ));
    // Not one poll for all 10,000 duplicates: it yields and wakes itself.
    assert_pending!(s.poll_next());
    assert!(s.is_woken());
}

#[tokio::test(start_paused = true)]
async fn size_hint() {
    let s = stream::iter(0..10).batch(3, D);
    assert_eq!(s.size_hint(), (1, Some(10)));
    let s = stream::iter(0..0).batch(3, D);
    assert_eq!(s.size_hint(), (0, Some(0)));
}

#[test]
#[should_panic(expected = "batch: max_items must be at least 1")]
fn zero_items_panics() {
    let _ = stream::iter([1]).batch(0, D);
}

#[test]
#[should_panic(expected = "batch: max_delay must be greater than zero")]
fn zero_delay_panics() {
    let _ = stream::iter([1]).batch(1, Duration::ZERO);
}

#[test]
#[should_panic(expected = "batch_dedup: max_items must be at least 1")]
fn zero_items_panics_dedup() {
    let _ = stream::iter([1]).batch_dedup(0, D);
}

#[test]
#[should_panic(expected = "batch_dedup_by_key: max_delay must be greater than zero")]
fn zero_delay_panics_dedup_by_key() {
    let _ = stream::iter([1]).batch_dedup_by_key(1, Duration::ZERO, |x| *x);
}

#[tokio::test(start_paused = true)]
async fn max_items_max_reserves_nothing_huge_and_yields_at_the_end() {
    // `usize::MAX` is "no size bound": no `Vec::with_capacity(usize::MAX)`,
    // and a long ready upstream is taken over several polls.
    let out: Vec<Vec<u32>> = stream::iter(0..10_000)
        .batch(usize::MAX, Duration::MAX)
        .collect()
        .await;
    assert_eq!(out, [(0..10_000).collect::<Vec<_>>()]);
    let out: Vec<Vec<u32>> = stream::iter([1, 1, 2])
        .batch_dedup(usize::MAX, Duration::MAX)
        .collect()
        .await;
    assert_eq!(out, [vec![1, 2]]);
}

#[tokio::test(start_paused = true)]
async fn max_items_one_yields_every_item_alone() {
    let out: Vec<Vec<u32>> = stream::iter(0..3)
        .batch(1, Duration::from_nanos(1))
        .collect()
        .await;
    assert_eq!(out, [vec![0], vec![1], vec![2]]);
}

#[tokio::test(start_paused = true)]
async fn huge_delay_never_fires() {
    let s = pin!(timed(vec![(0, 1), (10_000, 2)]).batch(5, Duration::MAX));
    let out = collect_timed(s).await;
    assert_eq!(out, vec![(10_000, vec![1, 2])]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Batching loses, duplicates and reorders nothing, and every batch
    /// respects `max_items`; with dedup, no batch holds a key twice and
    /// exactly the repeats within a batch are dropped.
    #[test]
    fn batches_partition_the_input(
        items in proptest::collection::vec(0u8..20, 0..200),
        max in 1usize..10,
        gaps in proptest::collection::vec(0u64..30, 200),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let events: Vec<(u64, u8)> = items
            .iter()
            .zip(gaps.iter().scan(0, |t, g| { *t += g; Some(*t) }))
            .map(|(item, at)| (at, *item))
            .collect();
        let (plain, deduped) = rt.block_on(async {
            let plain: Vec<Vec<u8>> = Box::pin(timed(events.clone()).batch(max, D)).collect().await;
            let deduped: Vec<Vec<u8>> = Box::pin(timed(events).batch_dedup(max, D)).collect().await;
            (plain, deduped)
        });
        prop_assert!(plain.iter().all(|b| !b.is_empty() && b.len() <= max));
        prop_assert_eq!(plain.concat(), items.clone());
        let mut total = 0;
        for batch in &deduped {
            prop_assert!(!batch.is_empty() && batch.len() <= max);
            let mut keys = batch.clone();
            keys.sort_unstable();
            keys.dedup();
            prop_assert_eq!(keys.len(), batch.len(), "a key twice in {:?}", batch);
            total += batch.len();
        }
        prop_assert!(total <= items.len());
        // Every input value is in some batch.
        for item in &items {
            prop_assert!(deduped.iter().any(|b| b.contains(item)));
        }
    }
}
