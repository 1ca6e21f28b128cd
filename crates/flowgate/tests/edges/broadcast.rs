//! Edges of `flowgate::broadcast`.

use flowgate::broadcast::{BoundedPublisher, Publisher, TryPublishError, TryRecvError};

#[test]
#[should_panic(expected = "BoundedPublisher::new: bound must be at least 1")]
fn bounded_zero_panics() {
    let _ = BoundedPublisher::<u8>::new(0);
}

#[test]
fn bounded_one_holds_one_unread_event() {
    let mut publisher = BoundedPublisher::new(1);
    assert_eq!(publisher.bound(), 1);
    let mut sub = publisher.subscribe();
    publisher.try_publish(1).unwrap();
    assert!(matches!(
        publisher.try_publish(2),
        Err(TryPublishError::Full(2))
    ));
    assert_eq!(sub.try_recv(), Ok(1));
    publisher.try_publish(2).unwrap();
}

#[test]
fn bounded_max_never_fills_in_practice() {
    let mut publisher = BoundedPublisher::new(usize::MAX);
    assert_eq!(publisher.bound(), usize::MAX);
    let mut sub = publisher.subscribe();
    for i in 0..10_000u32 {
        publisher.try_publish(i).unwrap();
    }
    assert_eq!(sub.len(), 10_000);
    assert_eq!(sub.try_recv(), Ok(0));
}

#[test]
fn bounded_max_shared_never_fills_in_practice() {
    let publisher = BoundedPublisher::new(usize::MAX).into_shared();
    let mut sub = publisher.subscribe();
    for i in 0..1_000u32 {
        publisher.try_publish(i).unwrap();
    }
    assert_eq!(sub.try_recv(), Ok(0));
}

#[test]
fn unbounded_with_zero_subscribers_drops_events() {
    let mut publisher = Publisher::new();
    assert_eq!(publisher.subscriber_count(), 0);
    for i in 0..1_000u32 {
        publisher.publish(i);
    }
    assert_eq!(publisher.published(), 1_000);
    let mut late = publisher.subscribe();
    assert_eq!(late.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn bounded_with_zero_subscribers_never_waits() {
    let mut publisher = BoundedPublisher::new(1);
    for i in 0..1_000u32 {
        publisher.try_publish(i).unwrap();
    }
    assert_eq!(publisher.published(), 1_000);
}
