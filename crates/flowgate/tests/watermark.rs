//! The acknowledgement watermark (`flowgate::source::{Watermark,
//! PartitionedWatermark, SharedWatermark}`): properties over random sparse
//! offsets and random ack orders, per-partition independence, the report of
//! changed partitions, the shared form under concurrent acks from many tasks,
//! and the typed errors.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flowgate::source::{
    AckError, PartitionedWatermark, SharedWatermark, TrackError, WatchError, Watermark,
};
use proptest::prelude::*;

/// Increasing offsets with gaps of 1 to 5 (1: dense).
fn sparse_offsets(max_len: usize) -> impl Strategy<Value = Vec<u64>> {
    (0u64..1_000, prop::collection::vec(1u64..6, 1..max_len)).prop_map(|(start, gaps)| {
        let mut next = start;
        gaps.into_iter()
            .map(|gap| {
                let offset = next;
                next += gap;
                offset
            })
            .collect()
    })
}

/// Offsets and an order to acknowledge all of them in.
fn offsets_and_ack_order() -> impl Strategy<Value = (Vec<u64>, Vec<usize>)> {
    sparse_offsets(200).prop_flat_map(|offsets| {
        let order: Vec<usize> = (0..offsets.len()).collect();
        (Just(offsets), Just(order).prop_shuffle())
    })
}

/// The commit point by definition: one past the end of the longest prefix
/// of tracked offsets that are all acknowledged.
fn model_commit_point(tracked: &[u64], acked: &[bool]) -> Option<u64> {
    let prefix = acked.iter().take_while(|acked| **acked).count();
    prefix.checked_sub(1).map(|last| tracked[last] + 1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every offset tracked first, then all acknowledged in a random order.
    #[test]
    fn never_passes_an_unacked_offset_is_monotone_and_reaches_the_end_exactly_when_all_are_acked(
        (offsets, order) in offsets_and_ack_order(),
    ) {
        let mut watermark = Watermark::new();
        for &offset in &offsets {
            watermark.track(offset).unwrap();
        }
        let end = offsets.last().unwrap() + 1;
        let mut acked = vec![false; offsets.len()];
        let mut previous = watermark.commit_point();
        prop_assert_eq!(previous, None);
        for (step, &index) in order.iter().enumerate() {
            let moved = watermark.ack(offsets[index]).unwrap();
            acked[index] = true;
            let point = watermark.commit_point();
            // Never past an unacknowledged tracked offset.
            if let Some(point) = point {
                for (offset, acked) in offsets.iter().zip(&acked) {
                    prop_assert!(*offset >= point || *acked, "{} passed unacked", offset);
                }
            }
            prop_assert_eq!(point, model_commit_point(&offsets, &acked));
            prop_assert!(point >= previous, "moved back from {:?} to {:?}", previous, point);
            // `ack` reports exactly the moves.
            prop_assert_eq!(moved, if point != previous { point } else { None });
            let all_acked = step + 1 == offsets.len();
            prop_assert_eq!(point == Some(end), all_acked);
            prop_assert_eq!(watermark.pending() == 0, all_acked);
            // Memory: exactly the offsets not passed.
            let passed = acked.iter().take_while(|acked| **acked).count();
            prop_assert_eq!(watermark.pending(), offsets.len() - passed);
            prop_assert_eq!(watermark.first_unacked(), offsets.get(passed).copied());
            previous = point;
        }
    }

    /// Tracks and acks interleaved, with a `max_pending` limit, duplicate
    /// acks and acks of offsets never tracked: every outcome as the model
    /// says, and the watermark unchanged by every error.
    #[test]
    fn interleaved_tracks_acks_and_refusals_match_the_model(
        offsets in sparse_offsets(120),
        max_pending in 1usize..20,
        ops in prop::collection::vec((0u8..4, any::<usize>()), 1..400),
    ) {
        let mut watermark = Watermark::with_max_pending(max_pending);
        let mut tracked: Vec<u64> = Vec::new();
        let mut acked: Vec<bool> = Vec::new();
        for (kind, pick) in ops {
            let passed = acked.iter().take_while(|acked| **acked).count();
            let pending = tracked.len() - passed;
            match kind {
                // Track the next offset.
                0 => {
                    let Some(&offset) = offsets.get(tracked.len()) else { continue };
                    if pending == max_pending {
                        prop_assert_eq!(
                            watermark.track(offset),
                            Err(TrackError::Full { offset, max_pending })
                        );
                        prop_assert!(watermark.is_full());
                    } else {
                        prop_assert_eq!(watermark.track(offset), Ok(()));
                        tracked.push(offset);
                        acked.push(false);
                    }
                }
                // Ack a pending, unacknowledged offset.
                1 => {
                    let open: Vec<usize> = (0..tracked.len()).filter(|&i| !acked[i]).collect();
                    if open.is_empty() { continue }
                    let index = open[pick % open.len()];
                    let before = model_commit_point(&tracked, &acked);
                    acked[index] = true;
                    let after = model_commit_point(&tracked, &acked);
                    let expected = if after != before { after } else { None };
                    prop_assert_eq!(watermark.ack(tracked[index]), Ok(expected));
                }
                // Ack an acknowledged offset again.
                2 => {
                    let done: Vec<usize> = (0..tracked.len()).filter(|&i| acked[i]).collect();
                    if done.is_empty() { continue }
                    let index = done[pick % done.len()];
                    let offset = tracked[index];
                    let expected = if index < passed {
                        AckError::Passed { offset }
                    } else {
                        AckError::Duplicate { offset }
                    };
                    prop_assert_eq!(watermark.ack(offset), Err(expected));
                }
                // Ack an offset never tracked (a gap, or past the end).
                _ => {
                    let limit = tracked.last().map_or(10, |last| last + 10);
                    let offset = (pick as u64) % limit;
                    if tracked.contains(&offset) { continue }
                    let last_passed = passed.checked_sub(1).map(|last| tracked[last]);
                    let expected = if last_passed.is_some_and(|last| offset <= last) {
                        AckError::Passed { offset }
                    } else {
                        AckError::Untracked { offset }
                    };
                    prop_assert_eq!(watermark.ack(offset), Err(expected));
                }
            }
            let passed = acked.iter().take_while(|acked| **acked).count();
            prop_assert_eq!(watermark.commit_point(), model_commit_point(&tracked, &acked));
            prop_assert_eq!(watermark.pending(), tracked.len() - passed);
            prop_assert_eq!(watermark.last_tracked(), tracked.last().copied());
        }
        // Acknowledging the rest reaches one past the last tracked offset.
        for index in 0..tracked.len() {
            if !acked[index] {
                watermark.ack(tracked[index]).unwrap();
            }
        }
        prop_assert_eq!(watermark.commit_point(), tracked.last().map(|last| last + 1));
        prop_assert_eq!(watermark.pending(), 0);
    }

    /// Each partition of a `PartitionedWatermark` behaves exactly as a
    /// `Watermark` of its own, whatever happens to the others; and
    /// `take_changed` lists exactly the partitions whose commit points
    /// differ from the last report, each once, in the order they moved.
    #[test]
    fn partitions_are_independent_and_take_changed_reports_exactly_the_moved_ones(
        ops in prop::collection::vec((0u8..4, 0u8..4, 0u64..40), 1..400),
    ) {
        let mut partitioned = PartitionedWatermark::with_max_pending(16);
        let mut alone: HashMap<u8, Watermark> = HashMap::new();
        let mut next: HashMap<u8, u64> = HashMap::new();
        let mut reported: HashMap<u8, u64> = HashMap::new();
        let mut moved_order: Vec<u8> = Vec::new();
        for (kind, partition, value) in ops {
            match kind {
                0 | 1 => {
                    // Track the partition's next offset (gaps of 1 to 3).
                    let offset = *next.entry(partition).or_insert(value) ;
                    let single = alone
                        .entry(partition)
                        .or_insert_with(|| Watermark::with_max_pending(16));
                    let expected = single.track(offset);
                    prop_assert_eq!(partitioned.track(partition, offset), expected);
                    if expected.is_ok() {
                        next.insert(partition, offset + 1 + value % 3);
                    }
                }
                2 => {
                    // Ack some offset of the partition (tracked or not).
                    let offset = next.get(&partition).map_or(value, |n| n.saturating_sub(value % 8 + 1));
                    let expected = match alone.get_mut(&partition) {
                        Some(single) => single.ack(offset),
                        None => Err(AckError::Untracked { offset }),
                    };
                    let got = partitioned.ack(&partition, offset);
                    prop_assert_eq!(got, expected);
                    if got.is_ok_and(|moved| moved.is_some()) && !moved_order.contains(&partition) {
                        moved_order.push(partition);
                    }
                }
                _ => {
                    let changed = partitioned.take_changed();
                    // By definition: the partitions whose commit point is
                    // not the one last reported.
                    let mut expected: Vec<(u8, u64)> = alone
                        .iter()
                        .filter_map(|(p, single)| {
                            let point = single.commit_point()?;
                            (reported.get(p) != Some(&point)).then_some((*p, point))
                        })
                        .collect();
                    expected.sort_unstable();
                    let mut sorted = changed.clone();
                    sorted.sort_unstable();
                    prop_assert_eq!(&sorted, &expected);
                    // In the order they first moved.
                    let order: Vec<u8> = changed.iter().map(|(p, _)| *p).collect();
                    prop_assert_eq!(&order, &moved_order);
                    moved_order.clear();
                    for (p, point) in changed {
                        reported.insert(p, point);
                    }
                }
            }
            for (p, single) in &alone {
                prop_assert_eq!(partitioned.commit_point(p), single.commit_point());
                prop_assert_eq!(partitioned.get(p).map(Watermark::pending), Some(single.pending()));
            }
        }
    }
}

#[test]
fn errors_for_double_untracked_passed_and_non_increasing() {
    let mut watermark = Watermark::new();
    assert_eq!(watermark.ack(0), Err(AckError::Untracked { offset: 0 }));
    for offset in [10, 20, 30] {
        watermark.track(offset).unwrap();
    }
    // Non-increasing: equal, and below.
    assert_eq!(
        watermark.track(30),
        Err(TrackError::NotIncreasing {
            offset: 30,
            last: 30
        })
    );
    assert_eq!(
        watermark.track(15),
        Err(TrackError::NotIncreasing {
            offset: 15,
            last: 30
        })
    );
    // Gaps, below the first offset, past the last: untracked.
    for offset in [5, 15, 25, 31, u64::MAX] {
        assert_eq!(watermark.ack(offset), Err(AckError::Untracked { offset }));
    }
    assert_eq!(watermark.ack(20), Ok(None));
    assert_eq!(watermark.ack(20), Err(AckError::Duplicate { offset: 20 }));
    assert_eq!(watermark.ack(10), Ok(Some(21)));
    // Behind the watermark now: acked before, or never tracked.
    for offset in [0, 10, 15, 20] {
        assert_eq!(watermark.ack(offset), Err(AckError::Passed { offset }));
    }
    // Between the watermark and the next pending offset: a gap.
    assert_eq!(watermark.ack(25), Err(AckError::Untracked { offset: 25 }));
    assert_eq!(
        watermark.track(u64::MAX),
        Err(TrackError::OutOfRange { offset: u64::MAX })
    );
    // None of that changed anything.
    assert_eq!(watermark.commit_point(), Some(21));
    assert_eq!(watermark.pending(), 1);
    assert_eq!(watermark.ack(30), Ok(Some(31)));
    let err = watermark.ack(30).unwrap_err();
    assert_eq!((err.offset(), err.is_transient()), (30, false));
    assert!(err.to_string().contains("30"));
}

#[test]
fn full_is_transient_and_room_comes_back_only_when_the_lowest_is_acked() {
    let mut watermark = Watermark::with_max_pending(3);
    for offset in 0..3 {
        watermark.track(offset).unwrap();
    }
    let full = watermark.track(3).unwrap_err();
    assert_eq!(
        full,
        TrackError::Full {
            offset: 3,
            max_pending: 3
        }
    );
    assert!(full.is_transient());
    watermark.ack(2).unwrap();
    watermark.ack(1).unwrap();
    assert!(watermark.track(3).is_err(), "acks behind 0 free nothing");
    watermark.ack(0).unwrap();
    assert_eq!(watermark.pending(), 0);
    for offset in 3..6 {
        watermark.track(offset).unwrap();
    }
    assert!(watermark.is_full());
}

#[test]
fn a_removed_partition_is_forgotten_and_can_start_again() {
    let mut partitioned = PartitionedWatermark::new();
    partitioned.track("a", 5).unwrap();
    partitioned.track("b", 5).unwrap();
    partitioned.ack(&"a", 5).unwrap();
    partitioned.ack(&"b", 5).unwrap();
    let removed = partitioned.remove(&"a").unwrap();
    assert_eq!(removed.commit_point(), Some(6));
    assert_eq!(partitioned.take_changed(), vec![("b", 6)]);
    assert_eq!(
        partitioned.ack(&"a", 5),
        Err(AckError::Untracked { offset: 5 })
    );
    assert!(partitioned.remove(&"a").is_none());
    // Tracking it again starts a new watermark, from any offset.
    partitioned.track("a", 1).unwrap();
    assert_eq!(partitioned.commit_point(&"a"), None);
    partitioned.ack(&"a", 1).unwrap();
    assert_eq!(partitioned.take_changed(), vec![("a", 2)]);
}

#[test]
fn a_refused_first_track_creates_no_partition() {
    let mut partitioned = PartitionedWatermark::<u8>::new();
    assert_eq!(
        partitioned.track(0, u64::MAX),
        Err(TrackError::OutOfRange { offset: u64::MAX })
    );
    assert!(partitioned.get(&0).is_none());
}

/// A permutation of `0..n`, from a fixed seed (no dev-dependency on a
/// random crate; the property tests cover orders widely).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = (state >> 33) as usize % (i + 1);
        order.swap(i, j);
    }
    order
}

/// Many tasks on a multi-thread runtime ack sparse offsets in scrambled
/// orders; a watcher checks every commit point it sees against the acks
/// made so far, and sees the end. No timing assumption: every task runs to
/// completion, and the watcher waits for a value that must come.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_watermark_under_concurrent_acks_ends_at_the_end() {
    const OFFSETS: usize = 20_000;
    const TASKS: usize = 16;
    let offsets: Arc<Vec<u64>> = Arc::new(
        (0..OFFSETS as u64)
            .map(|i| i * 3 + (i * 7) % 3) // sparse, increasing
            .collect(),
    );
    let end = offsets.last().unwrap() + 1;
    let done: Arc<Vec<AtomicBool>> =
        Arc::new((0..OFFSETS).map(|_| AtomicBool::new(false)).collect());

    let watermark = SharedWatermark::new();
    let mut watch = watermark.watch();
    let watcher = {
        let offsets = Arc::clone(&offsets);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut checked = 0;
            loop {
                let point = watch.changed().await.expect("moves until the end");
                // Everything below the commit point was acked before it moved.
                while checked < offsets.len() && offsets[checked] < point {
                    assert!(
                        done[checked].load(Ordering::Acquire),
                        "passed unacked {}",
                        offsets[checked]
                    );
                    checked += 1;
                }
                assert!(seen.last().is_none_or(|last| *last < point), "not monotone");
                seen.push(point);
                if point == end {
                    break;
                }
            }
            (seen, watch)
        })
    };

    let mut per_task: Vec<Vec<(usize, flowgate::source::WatermarkAck)>> =
        (0..TASKS).map(|_| Vec::new()).collect();
    for (index, &offset) in offsets.iter().enumerate() {
        per_task[index % TASKS].push((index, watermark.try_track(offset).unwrap()));
    }
    let tasks: Vec<_> = per_task
        .into_iter()
        .enumerate()
        .map(|(task, acks)| {
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut acks: Vec<Option<_>> = acks.into_iter().map(Some).collect();
                for (n, i) in shuffled(acks.len(), task as u64).into_iter().enumerate() {
                    let (index, ack) = acks[i].take().unwrap();
                    done[index].store(true, Ordering::Release);
                    ack.ack();
                    if n % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(watermark.commit_point(), Some(end));
    assert_eq!(watermark.pending(), 0);
    let (seen, mut watch) = watcher.await.unwrap();
    assert_eq!(seen.last(), Some(&end));
    // Every handle and token gone: the watch is closed, not waiting.
    drop(watermark);
    assert_eq!(watch.changed().await, Err(WatchError::Closed));
}

#[tokio::test]
async fn a_dropped_token_abandons_its_offset_and_the_watch_reports_stuck() {
    let watermark = SharedWatermark::new();
    let mut watch = watermark.watch();
    let first = watermark.try_track(1).unwrap();
    drop(watermark.try_track(2).unwrap());
    let third = watermark.try_track(3).unwrap();
    assert_eq!(watermark.abandoned(), Some(2));
    third.ack();
    assert_eq!(watermark.commit_point(), None);
    first.ack();
    // The move up to the abandoned offset is seen, then it is stuck.
    assert_eq!(watch.changed().await, Ok(2));
    assert_eq!(watch.changed().await, Err(WatchError::Stuck { offset: 2 }));
    assert_eq!(watermark.commit_point(), Some(2));
    assert_eq!(watermark.first_unacked(), Some(2));
    assert_eq!(watermark.pending(), 2, "2 abandoned, 3 acked behind it");
    // A new watch made after it is stuck reports it at once.
    assert_eq!(
        watermark.watch().changed().await,
        Err(WatchError::Stuck { offset: 2 })
    );
}

#[tokio::test]
async fn a_watch_waits_while_a_token_is_out_and_is_closed_once_all_are_gone() {
    let watermark = SharedWatermark::new();
    let mut watch = watermark.watch();
    let ack = watermark.try_track(0).unwrap();
    drop(watermark); // the token keeps the watermark alive
    let mut changed = tokio_test::task::spawn(watch.changed());
    assert!(changed.poll().is_pending());
    ack.ack();
    assert!(changed.is_woken());
    assert_eq!(changed.await, Ok(1));
    assert_eq!(watch.changed().await, Err(WatchError::Closed));
}

#[tokio::test]
async fn track_waits_for_room_and_fails_once_the_front_is_abandoned() {
    let watermark = SharedWatermark::with_max_pending(2);
    let first = watermark.try_track(0).unwrap();
    let second = watermark.try_track(1).unwrap();
    assert!(matches!(
        watermark.try_track(2),
        Err(TrackError::Full { .. })
    ));
    {
        let mut waiting = tokio_test::task::spawn(watermark.track(2));
        assert!(waiting.poll().is_pending());
        second.ack(); // behind 0: no room yet
        assert!(waiting.poll().is_pending());
        first.ack();
        assert!(waiting.is_woken());
        let tracked = match waiting.poll() {
            std::task::Poll::Ready(tracked) => tracked.unwrap(),
            std::task::Poll::Pending => panic!("room came back"),
        };
        assert_eq!(tracked.offset(), 2);
        tracked.ack();
    }
    // Full, then the front is abandoned: the waiting track fails.
    let front = watermark.try_track(3).unwrap();
    let next = watermark.try_track(4).unwrap();
    let mut waiting = tokio_test::task::spawn(watermark.track(5));
    assert!(waiting.poll().is_pending());
    drop(front);
    assert!(waiting.is_woken());
    assert_eq!(
        waiting.await.unwrap_err(),
        TrackError::Stuck {
            offset: 5,
            abandoned: 3
        }
    );
    assert_eq!(
        watermark.try_track(5).unwrap_err(),
        TrackError::Stuck {
            offset: 5,
            abandoned: 3
        }
    );
    next.ack();
    // A cancelled track tracked nothing.
    assert_eq!(watermark.pending(), 2);
}

#[tokio::test]
async fn shared_try_track_refuses_as_the_core_does() {
    let watermark = SharedWatermark::new();
    watermark.try_track(7).unwrap().ack();
    assert_eq!(
        watermark.try_track(7).unwrap_err(),
        TrackError::NotIncreasing { offset: 7, last: 7 }
    );
    assert_eq!(
        watermark.track(u64::MAX).await.unwrap_err(),
        TrackError::OutOfRange { offset: u64::MAX }
    );
    assert_eq!(watermark.last_acked_contiguous(), Some(7));
}

#[test]
fn shared_types_are_send_sync_and_static() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Watermark>();
    check::<PartitionedWatermark<String>>();
    check::<SharedWatermark>();
    check::<flowgate::source::WatermarkAck>();
    check::<flowgate::source::WatermarkWatch>();
    fn send<T: Send>(_: T) {}
    let watermark = SharedWatermark::new();
    send(watermark.track(0));
    send(watermark.watch().changed());
}

#[test]
fn a_long_dense_run_with_out_of_order_acks_matches_a_btreeset() {
    // The obvious implementation, over a longer run than the property tests:
    // with dense offsets from 0 the commit point is the lowest pending
    // offset (none while it is 0), or one past the last once none is.
    const N: u64 = 100_000;
    const WINDOW: usize = 64;
    let mut watermark = Watermark::new();
    let mut pending = BTreeSet::new();
    for base in (0..N).step_by(WINDOW) {
        let len = WINDOW.min((N - base) as usize);
        for offset in base..base + len as u64 {
            watermark.track(offset).unwrap();
            pending.insert(offset);
        }
        for i in shuffled(len, base) {
            let offset = base + i as u64;
            watermark.ack(offset).unwrap();
            pending.remove(&offset);
            let expected = match pending.first() {
                Some(0) => None,
                Some(lowest) => Some(*lowest),
                None => Some(base + len as u64),
            };
            assert_eq!(watermark.commit_point(), expected);
        }
    }
    assert_eq!(watermark.commit_point(), Some(N));
}
