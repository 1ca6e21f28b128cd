//! `SourceError::is_transient` as the predicate of a flowgate `Retry`: a
//! refused connection is retried, a broken configuration is not. No server
//! needed.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flowgate::resilience::{Backoff, Retry, StopReason};
use flowgate_redis::{BuildError, SourceError};

#[tokio::test(start_paused = true)]
async fn transient_source_errors_are_retried_permanent_ones_are_not() {
    let retry = Retry::new(Backoff::exponential(Duration::from_millis(10)))
        .max_attempts(4)
        .when(SourceError::is_transient);

    let calls = AtomicU32::new(0);
    let out = retry
        .run(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(SourceError::Connect {
                    server: "127.0.0.1:6379/0".to_owned(),
                    source: redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "connection refused",
                    )),
                }),
                _ => Ok("read"),
            }
        })
        .await;
    assert_eq!(out.unwrap(), "read");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    calls.store(0, Ordering::SeqCst);
    let err = retry
        .run(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(SourceError::Build(BuildError::ZeroBatchSize))
        })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(err.reason(), StopReason::NotRetryable);
}
