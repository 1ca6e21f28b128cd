//! The acknowledgement watermark against the one a good engineer writes by
//! hand: a `BTreeSet` of pending offsets, whose first element (or one past
//! the last tracked offset) is the commit point. 1,000,000 track+ack pairs
//! per iteration, on one thread.
//!
//! Offsets are tracked a block of 64 ahead of the acks, and each block is
//! acknowledged in a scrambled order (as `par_map_unordered` workers would
//! finish them), so 64 to 128 offsets are pending at any time:
//!
//! - `dense_*`: offsets 0, 1, 2, …;
//! - `sparse_*`: gaps of 1 to 4 (a compacted topic);
//! - `in_order_*`: dense, acked in order (still a block behind the tracks).
//!
//! Per shape: `flowgate_watermark` (the plain `Watermark`), `btreeset` (the
//! hand-written peer), and for the dense shape `flowgate_shared_tokens`
//! (`SharedWatermark::try_track` + `WatermarkAck::ack`: a lock per call)
//! beside `btreeset_in_a_mutex`.
//!
//! Run: `cargo bench -p flowgate-bench --bench watermark`
//!
//! Each group is reported twice: in wall time, and in the process's CPU
//! time (user + system, all threads; the same group name prefixed `cpu/`;
//! `flowgate_bench::cpu`).

use std::collections::{BTreeSet, VecDeque};
use std::hint::black_box;
use std::sync::Mutex;

use criterion::{Criterion, Throughput};
use flowgate::source::{SharedWatermark, Watermark, WatermarkAck};
use flowgate_bench::cpu::Clock;

const PAIRS: usize = 1_000_000;
const BLOCK: usize = 64;

/// The hand-written peer.
#[derive(Default)]
struct BTreeWatermark {
    pending: BTreeSet<u64>,
    last: Option<u64>,
}

impl BTreeWatermark {
    fn track(&mut self, offset: u64) {
        self.pending.insert(offset);
        self.last = Some(offset);
    }

    /// The new commit point if it moved.
    fn ack(&mut self, offset: u64) -> Option<u64> {
        let lowest = self.pending.first() == Some(&offset);
        assert!(self.pending.remove(&offset), "tracked");
        if !lowest {
            return None;
        }
        Some(match self.pending.first() {
            Some(first) => *first,
            None => self.last.expect("tracked") + 1,
        })
    }
}

/// A permutation of `0..n` from a fixed seed.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    order
}

/// The offsets, and the order to ack them in: each block scrambled.
struct Shape {
    offsets: Vec<u64>,
    acks: Vec<u64>,
}

fn shape(gap: impl Fn(usize) -> u64) -> Shape {
    let mut offsets = Vec::with_capacity(PAIRS);
    let mut next = 0;
    for i in 0..PAIRS {
        offsets.push(next);
        next += gap(i);
    }
    let orders: Vec<Vec<usize>> = (0..16).map(|seed| shuffled(BLOCK, seed)).collect();
    let acks = offsets
        .chunks(BLOCK)
        .enumerate()
        .flat_map(|(block, chunk)| {
            orders[block % orders.len()]
                .iter()
                .map(|&i| chunk[i])
                .collect::<Vec<_>>()
        })
        .collect();
    Shape { offsets, acks }
}

/// What the benchmark drives.
trait Acks {
    fn track(&mut self, offset: u64);
    fn ack(&mut self, offset: u64);
    fn commit_point(&self) -> Option<u64>;
}

impl Acks for Watermark {
    fn track(&mut self, offset: u64) {
        Watermark::track(self, offset).unwrap();
    }
    fn ack(&mut self, offset: u64) {
        black_box(Watermark::ack(self, offset).unwrap());
    }
    fn commit_point(&self) -> Option<u64> {
        Watermark::commit_point(self)
    }
}

/// The peer, remembering its last commit point as a caller would.
#[derive(Default)]
struct Peer {
    watermark: BTreeWatermark,
    point: Option<u64>,
}

impl Acks for Peer {
    fn track(&mut self, offset: u64) {
        self.watermark.track(offset);
    }
    fn ack(&mut self, offset: u64) {
        if let Some(moved) = black_box(self.watermark.ack(offset)) {
            self.point = Some(moved);
        }
    }
    fn commit_point(&self) -> Option<u64> {
        self.point
    }
}

/// The shared form: a token per offset, kept by offset (dense) until acked.
struct Tokens {
    watermark: SharedWatermark,
    tokens: VecDeque<Option<WatermarkAck>>,
    /// The offset of `tokens[0]`.
    base: u64,
}

impl Acks for Tokens {
    fn track(&mut self, offset: u64) {
        self.tokens
            .push_back(Some(self.watermark.try_track(offset).unwrap()));
    }
    fn ack(&mut self, offset: u64) {
        let token = self.tokens[(offset - self.base) as usize]
            .take()
            .expect("pending");
        token.ack();
        while self.tokens.front().is_some_and(Option::is_none) {
            self.tokens.pop_front();
            self.base += 1;
        }
    }
    fn commit_point(&self) -> Option<u64> {
        self.watermark.commit_point()
    }
}

/// The peer behind a lock, as many tasks would share it.
#[derive(Default)]
struct LockedPeer {
    watermark: Mutex<BTreeWatermark>,
    point: Option<u64>,
}

impl Acks for LockedPeer {
    fn track(&mut self, offset: u64) {
        self.watermark.lock().unwrap().track(offset);
    }
    fn ack(&mut self, offset: u64) {
        if let Some(moved) = black_box(self.watermark.lock().unwrap().ack(offset)) {
            self.point = Some(moved);
        }
    }
    fn commit_point(&self) -> Option<u64> {
        self.point
    }
}

/// Tracks block `b + 1` before acking block `b` (`shape.acks` for the
/// scrambled shapes, the offsets themselves for in-order): `PAIRS` tracks
/// and `PAIRS` acks. Checks that it ends one past the last offset.
fn run(shape: &Shape, acks: &[u64], mut watermark: impl Acks) {
    let blocks = PAIRS.div_ceil(BLOCK);
    for &offset in &shape.offsets[..BLOCK] {
        watermark.track(offset);
    }
    for block in 0..blocks {
        let ahead = ((block + 1) * BLOCK).min(PAIRS);
        for &offset in &shape.offsets[ahead..(ahead + BLOCK).min(PAIRS)] {
            watermark.track(offset);
        }
        for &offset in &acks[block * BLOCK..ahead] {
            watermark.ack(offset);
        }
    }
    assert_eq!(watermark.commit_point(), Some(shape.offsets[PAIRS - 1] + 1));
}

fn watermark<M: Clock>(c: &mut Criterion<M>) {
    let dense = shape(|_| 1);
    let sparse = shape(|i| 1 + (i as u64 * 7) % 4);

    let mut group = c.benchmark_group(M::group_name("watermark/1m_track_ack_pairs"));
    group.throughput(Throughput::Elements(PAIRS as u64));
    group.sample_size(10);

    for (name, shape, acks) in [
        ("dense", &dense, &dense.acks),
        ("sparse", &sparse, &sparse.acks),
        ("in_order", &dense, &dense.offsets),
    ] {
        group.bench_function(format!("{name}_flowgate_watermark"), |b| {
            b.iter(|| run(shape, acks, Watermark::new()));
        });
        group.bench_function(format!("{name}_btreeset"), |b| {
            b.iter(|| run(shape, acks, Peer::default()));
        });
    }
    group.bench_function("dense_flowgate_shared_tokens", |b| {
        b.iter(|| {
            run(
                &dense,
                &dense.acks,
                Tokens {
                    watermark: SharedWatermark::new(),
                    tokens: VecDeque::with_capacity(2 * BLOCK),
                    base: 0,
                },
            )
        });
    });
    group.bench_function("dense_btreeset_in_a_mutex", |b| {
        b.iter(|| run(&dense, &dense.acks, LockedPeer::default()));
    });
    group.finish();
}

flowgate_bench::wall_and_cpu_main!(watermark);
