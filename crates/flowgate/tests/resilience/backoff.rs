use std::time::Duration;

use flowgate::resilience::{Backoff, Jitter, Retry, Schedule};
use proptest::prelude::*;
use tokio::time::Instant;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn take(backoff: Backoff, n: usize) -> Vec<Duration> {
    backoff.schedule().take(n).collect()
}

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync + Unpin>() {}
    assert_send_sync::<Backoff>();
    assert_send_sync::<Schedule>();
    assert_send_sync::<Jitter>();
}

#[test]
fn constant_schedule() {
    assert_eq!(take(Backoff::constant(ms(250)), 4), [ms(250); 4]);
    // A cap below the delay caps it.
    assert_eq!(
        take(Backoff::constant(ms(250)).max_delay(ms(100)), 2),
        [ms(100); 2]
    );
}

#[test]
fn linear_schedule() {
    assert_eq!(
        take(Backoff::linear(ms(100), ms(50)), 5),
        [ms(100), ms(150), ms(200), ms(250), ms(300)]
    );
    assert_eq!(
        take(Backoff::linear(ms(100), ms(50)).max_delay(ms(220)), 5),
        [ms(100), ms(150), ms(200), ms(220), ms(220)]
    );
}

#[test]
fn exponential_schedule_is_exact() {
    // Integer nanoseconds: no f32 drift (100 ms × 2^n exactly).
    let delays = take(Backoff::exponential(ms(100)), 12);
    for (n, d) in delays.iter().enumerate() {
        assert_eq!(*d, ms(100) * 2u32.pow(n as u32), "delay {n}");
    }
    assert_eq!(
        take(
            Backoff::exponential(ms(100))
                .factor(3.0)
                .max_delay(ms(2000)),
            5
        ),
        [ms(100), ms(300), ms(900), ms(2000), ms(2000)]
    );
    assert_eq!(
        take(Backoff::exponential(ms(100)).factor(1.5), 4),
        [ms(100), ms(150), ms(225), Duration::from_micros(337_500)]
    );
}

#[test]
fn exponential_saturates_instead_of_overflowing() {
    let delays = take(Backoff::exponential(Duration::from_secs(1)), 80);
    assert_eq!(*delays.last().unwrap(), Duration::from_nanos(u64::MAX));
    assert!(delays.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn cap_does_not_slow_growth_after_it() {
    // The raw growth continues under the cap: lifting nothing, but a capped
    // linear schedule stays at the cap rather than restarting.
    let delays = take(Backoff::exponential(ms(1)).max_delay(ms(5)), 10);
    assert_eq!(&delays[..4], [ms(1), ms(2), ms(4), ms(5)]);
    assert!(delays[4..].iter().all(|d| *d == ms(5)));
}

#[test]
#[should_panic(expected = "Backoff::factor: factor must be finite and at least 1")]
fn factor_below_one_panics() {
    let _ = Backoff::exponential(ms(1)).factor(0.5);
}

#[test]
fn full_jitter_within_zero_and_delay() {
    let raw = take(Backoff::exponential(ms(100)).max_delay(ms(3000)), 20);
    let jittered: Vec<Duration> = Backoff::exponential(ms(100))
        .max_delay(ms(3000))
        .jitter(Jitter::Full)
        .schedule_seeded(1)
        .take(20)
        .collect();
    assert!(jittered.iter().zip(&raw).all(|(j, r)| j <= r));
    assert_ne!(jittered, raw, "jitter changes something");
}

#[test]
fn equal_jitter_within_half_and_delay() {
    let raw = take(Backoff::linear(ms(100), ms(100)), 20);
    let jittered: Vec<Duration> = Backoff::linear(ms(100), ms(100))
        .jitter(Jitter::Equal)
        .schedule_seeded(2)
        .take(20)
        .collect();
    for (j, r) in jittered.iter().zip(&raw) {
        assert!(*j >= *r / 2 && j <= r, "{j:?} vs {r:?}");
    }
}

#[test]
fn decorrelated_schedule_bounds() {
    let delays: Vec<Duration> = Backoff::decorrelated(ms(100))
        .max_delay(ms(5000))
        .schedule_seeded(3)
        .take(50)
        .collect();
    assert!(delays[0] >= ms(100) && delays[0] <= ms(300));
    for w in delays.windows(2) {
        assert!(w[1] >= ms(100) && w[1] <= (w[0] * 3).min(ms(5000)).max(ms(100)));
    }
    // It wanders up to the cap.
    assert!(delays.iter().any(|d| *d > ms(1000)));
}

#[test]
fn seeded_schedules_repeat() {
    for backoff in [
        Backoff::exponential(ms(10)).jitter(Jitter::Full),
        Backoff::constant(ms(10)).jitter(Jitter::Equal),
        Backoff::decorrelated(ms(10)),
    ] {
        let a: Vec<_> = backoff.schedule_seeded(42).take(10).collect();
        let b: Vec<_> = backoff.schedule_seeded(42).take(10).collect();
        let c: Vec<_> = backoff.schedule_seeded(43).take(10).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

/// When each attempt of a call that always fails started, under paused time.
async fn attempt_times(retry: Retry<()>) -> Vec<Duration> {
    let start = Instant::now();
    let mut times = Vec::new();
    let _ = retry
        .run(|| {
            times.push(start.elapsed());
            async { Err::<(), ()>(()) }
        })
        .await;
    times
}

#[tokio::test(start_paused = true)]
async fn every_schedule_drives_retries_exactly_under_paused_time() {
    let cases: [(Backoff, [u64; 5]); 4] = [
        (Backoff::constant(ms(100)), [0, 100, 200, 300, 400]),
        (Backoff::linear(ms(100), ms(100)), [0, 100, 300, 600, 1000]),
        (Backoff::exponential(ms(100)), [0, 100, 300, 700, 1500]),
        (
            Backoff::exponential(ms(100)).max_delay(ms(250)),
            [0, 100, 300, 550, 800],
        ),
    ];
    for (backoff, expected) in cases {
        let times = attempt_times(Retry::new(backoff).max_attempts(5)).await;
        let expected: Vec<Duration> = expected.iter().map(|&t| ms(t)).collect();
        assert_eq!(times, expected, "{backoff:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn jittered_schedules_drive_retries_at_their_seeded_delays() {
    for backoff in [
        Backoff::exponential(ms(100)).jitter(Jitter::Full),
        Backoff::exponential(ms(100)).jitter(Jitter::Equal),
        Backoff::decorrelated(ms(100)).max_delay(ms(2000)),
    ] {
        let times = attempt_times(Retry::new(backoff).max_attempts(6).jitter_seed(9)).await;
        // The first call of a policy seeded with 9 draws the schedule seeded
        // with 9: each gap is that delay, rounded up to tokio's 1 ms timer.
        let delays: Vec<Duration> = backoff.schedule_seeded(9).take(5).collect();
        assert_eq!(times.len(), 6);
        for (w, delay) in times.windows(2).zip(delays) {
            let gap = w[1] - w[0];
            assert!(gap >= delay && gap - delay < ms(1), "{gap:?} for {delay:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn exponential_is_monotone_capped_and_exact(
        initial_ms in 0u64..10_000,
        factor in 1u32..5,
        cap_ms in 1u64..1_000_000,
        n in 1usize..64,
    ) {
        let backoff = Backoff::exponential(ms(initial_ms)).factor(f64::from(factor)).max_delay(ms(cap_ms));
        let delays = take(backoff, n);
        let mut expected = u128::from(initial_ms);
        for d in &delays {
            prop_assert!(*d <= ms(cap_ms));
            prop_assert_eq!(d.as_millis(), expected.min(u128::from(cap_ms)));
            expected = expected.saturating_mul(u128::from(factor));
        }
        prop_assert!(delays.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn jitter_stays_within_bounds(
        initial_ms in 0u64..10_000,
        step_ms in 0u64..10_000,
        cap_ms in 1u64..100_000,
        seed in any::<u64>(),
        equal in any::<bool>(),
    ) {
        let base = Backoff::linear(ms(initial_ms), ms(step_ms)).max_delay(ms(cap_ms));
        let jitter = if equal { Jitter::Equal } else { Jitter::Full };
        let raw = take(base, 32);
        let jittered: Vec<Duration> = base.jitter(jitter).schedule_seeded(seed).take(32).collect();
        for (j, r) in jittered.iter().zip(&raw) {
            prop_assert!(j <= r);
            prop_assert!(*j <= ms(cap_ms));
            if equal {
                prop_assert!(j.as_nanos() >= r.as_nanos() / 2);
            }
        }
    }

    #[test]
    fn decorrelated_stays_between_base_and_three_times_previous(
        base_ms in 1u64..1000,
        cap_ms in 1u64..100_000,
        seed in any::<u64>(),
    ) {
        let delays: Vec<Duration> = Backoff::decorrelated(ms(base_ms))
            .max_delay(ms(cap_ms))
            .schedule_seeded(seed)
            .take(32)
            .collect();
        let floor = ms(base_ms).min(ms(cap_ms));
        let mut previous = ms(base_ms);
        for d in delays {
            prop_assert!(d >= floor);
            prop_assert!(d <= ms(cap_ms));
            prop_assert!(d <= (previous * 3).max(ms(base_ms)));
            previous = d;
        }
    }
}
