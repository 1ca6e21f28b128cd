//! Property test of `flowgate::batch`: under random sizes, capacities, flush
//! concurrency, submitters and failures, every submitted item is flushed
//! exactly once, and every flushed future, callback and `submit_and_wait` resolves
//! exactly once with the outcome of the item's batch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::batch::{Batcher, FlushError, SubmitAndWaitError};
use futures_util::stream::{FuturesUnordered, StreamExt};
use proptest::prelude::*;

/// What the flush function does with a batch holding an item of this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fine,
    Fails,
    Panics,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    id: u32,
    kind: Kind,
    /// How many times the flush yields before finishing, to interleave
    /// concurrent flushes.
    yields: u8,
}

#[derive(Debug, Clone)]
struct Submitter {
    items: Vec<(Kind, u8)>,
    /// Await each flushed future before submitting the next item (the acknowledged
    /// consumer pattern), or submit everything first.
    lockstep: bool,
    /// How items are submitted and their outcomes awaited.
    mode: Mode,
    /// Request an explicit flush after this many items.
    flush_after: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `submit`, then await the `Flushed`.
    Handles,
    /// `submit_with` a callback.
    Callbacks,
    /// `submit_and_wait`; without lockstep, all of the submitter's items at
    /// once, polled together.
    Fused,
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::Handles),
        Just(Mode::Callbacks),
        Just(Mode::Fused)
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![8 => Just(Kind::Fine), 1 => Just(Kind::Fails), 1 => Just(Kind::Panics)]
}

fn submitter() -> impl Strategy<Value = Submitter> {
    (
        prop::collection::vec((kind(), 0u8..3), 0..25),
        any::<bool>(),
        mode(),
        prop::option::of(0usize..25),
    )
        .prop_map(|(items, lockstep, mode, flush_after)| Submitter {
            items,
            lockstep,
            mode,
            flush_after,
        })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Ok(u32),
    Failed,
    Panicked,
}

fn seen_fused(result: Result<u32, SubmitAndWaitError<Item, String>>) -> Seen {
    match result {
        Ok(out) => Seen::Ok(out),
        Err(SubmitAndWaitError::Flush(err)) => seen(Err(err)),
        Err(SubmitAndWaitError::Closed(item)) => panic!("item {} refused", item.id),
    }
}

fn seen(result: Result<u32, FlushError<String>>) -> Seen {
    match result {
        Ok(out) => Seen::Ok(out),
        Err(FlushError::Failed(_)) => Seen::Failed,
        Err(FlushError::Panicked(_)) => Seen::Panicked,
        Err(other) => panic!("unexpected flushed error {other:?}"),
    }
}

fn run(
    max_items: usize,
    extra_capacity: usize,
    concurrency: usize,
    delay_ms: u64,
    submitters: Vec<Submitter>,
) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let flushed: Arc<Mutex<Vec<Vec<Item>>>> = Arc::default();
    let outcomes: Arc<Mutex<HashMap<u32, Vec<Seen>>>> = Arc::default();
    let log = Arc::clone(&flushed);

    // Virtual time: if any flushed never resolved, this times out instead of hanging.
    let deadline = Duration::from_secs(24 * 3600);
    let task_outcomes = Arc::clone(&outcomes);
    let finished = runtime.block_on(async move {
        tokio::time::timeout(deadline, async {
            let batcher = Batcher::builder()
                .max_items(max_items)
                .capacity(max_items + extra_capacity)
                .flush_concurrency(concurrency)
                .max_delay(Duration::from_millis(delay_ms))
                .build(move |items: Vec<Item>| {
                    log.lock().unwrap().push(items.clone());
                    async move {
                        let yields = items.iter().map(|i| i.yields).max().unwrap_or(0);
                        for _ in 0..yields {
                            tokio::task::yield_now().await;
                        }
                        if items.iter().any(|i| i.kind == Kind::Panics) {
                            panic!("flush panicked");
                        }
                        if items.iter().any(|i| i.kind == Kind::Fails) {
                            return Err("flush failed".to_owned());
                        }
                        Ok(items.iter().map(|i| i.id * 2).collect::<Vec<_>>())
                    }
                })
                .unwrap();

            let mut tasks = Vec::new();
            let mut next_id = 0u32;
            for submitter in submitters {
                let items: Vec<Item> = submitter
                    .items
                    .iter()
                    .map(|&(kind, yields)| {
                        next_id += 1;
                        Item {
                            id: next_id,
                            kind,
                            yields,
                        }
                    })
                    .collect();
                let batcher = batcher.clone();
                let outcomes = Arc::clone(&task_outcomes);
                tasks.push(tokio::spawn(async move {
                    let mut pending = Vec::new();
                    let mut fused = FuturesUnordered::new();
                    for (n, item) in items.into_iter().enumerate() {
                        if submitter.flush_after == Some(n) {
                            batcher.flush().await;
                        }
                        let record = Arc::clone(&outcomes);
                        match submitter.mode {
                            Mode::Callbacks => {
                                let (tx, rx) = tokio::sync::oneshot::channel();
                                batcher
                                    .submit_with(item, move |result| {
                                        record
                                            .lock()
                                            .unwrap()
                                            .entry(item.id)
                                            .or_default()
                                            .push(seen(result));
                                        tx.send(()).unwrap();
                                    })
                                    .await
                                    .unwrap();
                                if submitter.lockstep {
                                    rx.await.unwrap();
                                }
                            }
                            Mode::Handles => {
                                let flushed = batcher.submit(item).await.unwrap();
                                if submitter.lockstep {
                                    let result = seen(flushed.await);
                                    record
                                        .lock()
                                        .unwrap()
                                        .entry(item.id)
                                        .or_default()
                                        .push(result);
                                } else {
                                    pending.push((item.id, flushed));
                                }
                            }
                            Mode::Fused => {
                                let batcher = &batcher;
                                let waiting = async move {
                                    (item.id, seen_fused(batcher.submit_and_wait(item).await))
                                };
                                if submitter.lockstep {
                                    let (id, result) = waiting.await;
                                    record.lock().unwrap().entry(id).or_default().push(result);
                                } else {
                                    fused.push(waiting);
                                }
                            }
                        }
                    }
                    for (id, flushed) in pending {
                        let result = seen(flushed.await);
                        outcomes.lock().unwrap().entry(id).or_default().push(result);
                    }
                    while let Some((id, result)) = fused.next().await {
                        outcomes.lock().unwrap().entry(id).or_default().push(result);
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            batcher.close().await;
            let stats = batcher.stats();
            assert_eq!(stats.submitted, u64::from(next_id));
            assert_eq!(stats.pending, 0);
            assert_eq!(stats.flushed + stats.failed, u64::from(next_id));
            next_id
        })
        .await
    });
    let Ok(total) = finished else {
        return Err(TestCaseError::fail("a flushed or a submit never resolved"));
    };

    let flushed = flushed.lock().unwrap();
    let outcomes = outcomes.lock().unwrap();
    let mut flush_count: HashMap<u32, usize> = HashMap::new();
    for batch in flushed.iter() {
        prop_assert!(!batch.is_empty() && batch.len() <= max_items);
        let expected = if batch.iter().any(|i| i.kind == Kind::Panics) {
            None
        } else if batch.iter().any(|i| i.kind == Kind::Fails) {
            Some(Seen::Failed)
        } else {
            Some(Seen::Ok(0))
        };
        for item in batch {
            *flush_count.entry(item.id).or_default() += 1;
            let got = outcomes
                .get(&item.id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            prop_assert_eq!(
                got.len(),
                1,
                "item {} resolved {} times",
                item.id,
                got.len()
            );
            let want = match expected {
                None => Seen::Panicked,
                Some(Seen::Ok(_)) => Seen::Ok(item.id * 2),
                Some(ref other) => other.clone(),
            };
            prop_assert_eq!(&got[0], &want);
        }
    }
    prop_assert_eq!(outcomes.len(), total as usize, "every item resolved");
    prop_assert_eq!(flush_count.len(), total as usize, "every item was flushed");
    prop_assert!(
        flush_count.values().all(|&n| n == 1),
        "flushed at most once"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_item_is_flushed_once_and_every_ack_resolves_once(
        max_items in 1usize..8,
        extra_capacity in 0usize..8,
        concurrency in 1usize..4,
        delay_ms in 1u64..50,
        submitters in prop::collection::vec(submitter(), 1..6),
    ) {
        run(max_items, extra_capacity, concurrency, delay_ms, submitters)?;
    }
}
