//! Edges of `flowgate::group`.

use std::time::Duration;

use flowgate::group::{CallGroup, Outcome, SetDeadlineError};

/// Long enough that anything timed would have fired: about 100 years.
const LONG: Duration = Duration::from_secs(60 * 60 * 24 * 365 * 100);

type Group = CallGroup<u32, u32, ()>;

#[test]
fn with_capacity_zero_one_and_max() {
    for capacity in [0, 1, usize::MAX] {
        let mut group = Group::with_capacity(capacity);
        group.add(1, ()).unwrap().finish(Ok(1));
        group.add(2, ()).unwrap().finish(Ok(2));
        assert_eq!(group.len(), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn empty_group_completes_at_once() {
    let results = Group::new().wait().await;
    assert!(results.is_empty());
    assert!(results.all_ok());
}

#[tokio::test(start_paused = true)]
async fn timeout_zero_times_out_unfinished_ops_at_once() {
    let mut group = Group::new();
    group.set_timeout(Duration::ZERO).unwrap();
    group.add(1, ()).unwrap().finish(Ok(1));
    let _late = group.add(2, ()).unwrap();
    let start = tokio::time::Instant::now();
    let results = group.wait().await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(results.get(&1), Some(&Outcome::Ok(1)));
    assert_eq!(results.get(&2), Some(&Outcome::TimedOut));
}

#[tokio::test(start_paused = true)]
async fn timeout_one_nanosecond() {
    let mut group = Group::new();
    group.set_timeout(Duration::from_nanos(1)).unwrap();
    let _late = group.add(1, ()).unwrap();
    assert_eq!(group.wait().await.get(&1), Some(&Outcome::TimedOut));
}

#[tokio::test(start_paused = true)]
async fn timeout_max_never_fires() {
    let mut group = Group::new();
    group.set_timeout(Duration::MAX).unwrap();
    let op = group.add(1, ()).unwrap();
    let wait = group.wait();
    tokio::pin!(wait);
    assert!(tokio::time::timeout(LONG, &mut wait).await.is_err());
    op.finish(Ok(7));
    assert_eq!(wait.await.get(&1), Some(&Outcome::Ok(7)));
}

#[test]
fn timeout_outside_a_runtime_is_refused() {
    let mut group = Group::new();
    assert!(matches!(
        group.set_timeout(Duration::MAX),
        Err(SetDeadlineError::NoRuntime)
    ));
    assert!(matches!(
        group.set_timeout(Duration::ZERO),
        Err(SetDeadlineError::NoRuntime)
    ));
}
