//! `SinkError::is_transient` as the predicate of a flowgate `Retry`: busy or
//! cancelled writes are retried, rows that do not fit the table are not.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flowgate::resilience::{Backoff, Retry, StopReason};
use flowgate_sql::{SinkError, TableError};

#[tokio::test(start_paused = true)]
async fn transient_sink_errors_are_retried_permanent_ones_are_not() {
    let retry = Retry::new(Backoff::constant(Duration::from_millis(10)))
        .max_attempts(3)
        .when(SinkError::is_transient);

    let calls = AtomicU32::new(0);
    let err = retry
        .run(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(SinkError::Task("blocking task cancelled".to_owned()))
        })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(err.reason(), StopReason::AttemptsExhausted);
    assert!(err.is_transient());

    calls.store(0, Ordering::SeqCst);
    let err = retry
        .run(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(SinkError::Table(TableError::NoColumns))
        })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(err.reason(), StopReason::NotRetryable);
    assert!(!err.is_transient());
}
