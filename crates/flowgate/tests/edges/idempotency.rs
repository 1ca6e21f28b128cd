//! Edges of `flowgate::idempotency`.

use std::time::Duration;

use flowgate::idempotency::{Idempotency, IdempotencyStore, MemoryIdempotencyStore, Processed};

/// Long enough that anything timed would have fired: about 100 years.
const LONG: Duration = Duration::from_secs(60 * 60 * 24 * 365 * 100);

#[test]
#[should_panic(expected = "MemoryIdempotencyStore::new: capacity must be at least 1")]
fn memory_store_capacity_zero_panics() {
    let _ = MemoryIdempotencyStore::<u8>::new(0, Duration::from_secs(1));
}

#[test]
#[should_panic(expected = "MemoryIdempotencyStore::new: ttl must be greater than zero")]
fn memory_store_ttl_zero_panics() {
    let _ = MemoryIdempotencyStore::<u8>::new(1, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn memory_store_capacity_one_keeps_the_newest_key() {
    let store = MemoryIdempotencyStore::new(1, Duration::from_secs(60));
    store.record(&1).await.unwrap();
    store.record(&2).await.unwrap();
    assert!(!store.contains(&1).await.unwrap());
    assert!(store.contains(&2).await.unwrap());
    assert_eq!(store.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn memory_store_ttl_one_nanosecond_expires_at_the_next_tick() {
    let store = MemoryIdempotencyStore::new(10, Duration::from_nanos(1));
    store.record(&1).await.unwrap();
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(!store.contains(&1).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn memory_store_max_capacity_and_ttl_never_expire() {
    let store = MemoryIdempotencyStore::new(usize::MAX, Duration::MAX);
    for key in 0..1_000u32 {
        store.record(&key).await.unwrap();
    }
    tokio::time::advance(LONG).await;
    assert!(store.contains(&0).await.unwrap());
    assert_eq!(store.len(), 1_000);
    let once = Idempotency::new(store);
    assert_eq!(
        once.run(0, || async { Ok::<_, ()>(()) }).await.unwrap(),
        Processed::Skipped
    );
}
