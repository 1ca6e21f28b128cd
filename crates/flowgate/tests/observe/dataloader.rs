//! `flowgate::dataloader`: the `flowgate_dataloader_*` series (feature
//! `metrics`), the batch series of its batcher, and its events.

use std::collections::HashMap;

use flowgate::dataloader::DataLoader;
use tracing::Level;

use crate::common::Traced;

/// Fetches keys: 0 fails the whole batch, 13 has its own error, 404 is
/// missing, 666 panics; the others are doubled.
async fn fetch(keys: Vec<u32>) -> Result<HashMap<u32, Result<u32, String>>, String> {
    if keys.contains(&666) {
        panic!("the database panicked");
    }
    if keys.contains(&0) {
        return Err("database down".to_owned());
    }
    Ok(keys
        .into_iter()
        .filter(|k| *k != 404)
        .map(|k| {
            (
                k,
                if k == 13 {
                    Err("unlucky".to_owned())
                } else {
                    Ok(k * 2)
                },
            )
        })
        .collect())
}

#[cfg(feature = "metrics")]
mod series {
    use std::time::Duration;

    use super::*;
    use crate::common::Recorded;

    const OUTCOMES: [&str; 6] = [
        "ok",
        "key_error",
        "missing",
        "fetch_error",
        "panic",
        "closed",
    ];

    fn counter(rec: &Recorded, metric: &str) -> u64 {
        rec.counter(metric, &[("name", "users")])
    }

    fn key_results(rec: &Recorded) -> Vec<(&'static str, u64)> {
        OUTCOMES
            .iter()
            .map(|o| {
                let labels = [("name", "users"), ("outcome", *o)];
                (
                    *o,
                    rec.counter("flowgate_dataloader_key_results_total", &labels),
                )
            })
            .collect()
    }

    fn expect_keys(nonzero: &[(&str, u64)]) -> Vec<(&'static str, u64)> {
        OUTCOMES
            .iter()
            .map(|o| {
                (
                    *o,
                    nonzero.iter().find(|(n, _)| n == o).map_or(0, |(_, v)| *v),
                )
            })
            .collect()
    }

    fn fetch_errors(rec: &Recorded, reason: &str) -> u64 {
        let labels = [("name", "users"), ("reason", reason)];
        rec.counter("flowgate_dataloader_fetch_errors_total", &labels)
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn loads_hits_misses_joins_and_keys_per_fetch() {
        let rec = Recorded::new();
        let loader: DataLoader<u32, u32, String> = rec
            .scope(|| {
                DataLoader::builder()
                    .name("users")
                    .cache(100, Duration::from_secs(60))
                    .build(fetch)
            })
            .unwrap();
        // Registered at build, at zero.
        assert_eq!(counter(&rec, "flowgate_dataloader_loads_total"), 0);
        assert_eq!(key_results(&rec), expect_keys(&[]));

        // 1 is fetched once, the second load of it joins; all three miss.
        let values = loader.load_many([1, 1, 2]).await;
        assert_eq!(values, [Ok(2), Ok(2), Ok(4)]);
        loader.load(2).await.unwrap(); // from the cache
        assert_eq!(counter(&rec, "flowgate_dataloader_loads_total"), 4);
        assert_eq!(counter(&rec, "flowgate_dataloader_cache_hits_total"), 1);
        assert_eq!(counter(&rec, "flowgate_dataloader_cache_misses_total"), 3);
        assert_eq!(counter(&rec, "flowgate_dataloader_joined_total"), 1);
        assert_eq!(
            rec.histogram("flowgate_dataloader_fetch_size", &[("name", "users")]),
            [2.0]
        );
        assert_eq!(key_results(&rec), expect_keys(&[("ok", 2)]));
        assert_eq!(
            (fetch_errors(&rec, "error"), fetch_errors(&rec, "panic")),
            (0, 0)
        );
        // Its batcher has its name: the keys' queue.
        assert_eq!(counter(&rec, "flowgate_batch_items_submitted_total"), 2);
        assert_eq!(
            rec.gauge("flowgate_batch_items_pending", &[("name", "users")]),
            0.0
        );
        assert_eq!(
            rec.counter(
                "flowgate_batch_flushes_total",
                &[("name", "users"), ("trigger", "delay")]
            ),
            1
        );
        // The default 1 ms window.
        assert_eq!(
            rec.histogram(
                "flowgate_batch_oldest_item_age_seconds",
                &[("name", "users")]
            ),
            [0.001]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn each_key_result_and_each_failed_fetch_is_counted() {
        let rec = Recorded::new();
        let loader: DataLoader<u32, u32, String> = rec
            .scope(|| DataLoader::builder().name("users").build(fetch))
            .unwrap();
        let values = loader.load_many([1, 13, 404]).await;
        assert!(values[0].is_ok());
        assert!(values[1].as_ref().unwrap_err().fetch_error().is_some());
        assert!(values[2].as_ref().unwrap_err().is_missing());
        let values = loader.load_many([0, 5]).await;
        assert!(values.iter().all(Result::is_err));
        let values = loader.load_many([666, 7]).await;
        assert!(values.iter().all(Result::is_err));
        assert_eq!(
            key_results(&rec),
            expect_keys(&[
                ("ok", 1),
                ("key_error", 1),
                ("missing", 1),
                ("fetch_error", 2),
                ("panic", 2),
            ])
        );
        assert_eq!(
            (fetch_errors(&rec, "error"), fetch_errors(&rec, "panic")),
            (1, 1)
        );
        assert_eq!(
            rec.histogram("flowgate_dataloader_fetch_size", &[("name", "users")]),
            [3.0, 2.0, 2.0]
        );
        // No cache: no lookups, so no misses.
        assert_eq!(counter(&rec, "flowgate_dataloader_cache_misses_total"), 0);
        let outcome = |o| {
            rec.counter(
                "flowgate_batch_flushes_completed_total",
                &[("name", "users"), ("outcome", o)],
            )
        };
        assert_eq!(
            (outcome("ok"), outcome("error"), outcome("panic")),
            (1, 1, 1)
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_panic_in_the_fetch_call_itself_is_counted() {
        let rec = Recorded::new();
        let loader: DataLoader<u32, u32, String> = rec
            .scope(|| {
                DataLoader::builder().name("users").build(|keys: Vec<u32>| {
                    assert!(!keys.contains(&1), "no future for you");
                    std::future::ready(Ok::<_, String>(HashMap::<u32, u32>::new()))
                })
            })
            .unwrap();
        let err = loader.load(1).await.unwrap_err();
        assert!(
            matches!(err, flowgate::dataloader::LoadError::Panicked(_)),
            "{err:?}"
        );
        assert_eq!(fetch_errors(&rec, "panic"), 1);
        assert_eq!(key_results(&rec), expect_keys(&[("panic", 1)]));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_dropped_worker_resolves_keys_as_closed() {
        let rec = Recorded::new();
        let (loader, worker) = rec
            .scope(|| DataLoader::builder().name("users").build_pair(fetch))
            .unwrap();
        let loader: DataLoader<u32, u32, String> = loader;
        let mut load = std::pin::pin!(loader.load(1));
        // The first poll submits the key.
        assert!(futures_util::poll!(load.as_mut()).is_pending());
        drop(worker);
        assert!(load.await.unwrap_err().is_closed());
        assert_eq!(key_results(&rec), expect_keys(&[("closed", 1)]));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn an_unnamed_loader_registers_nothing() {
        let rec = Recorded::new();
        let loader: DataLoader<u32, u32, String> = rec
            .scope(|| {
                DataLoader::builder()
                    .cache(10, Duration::from_secs(1))
                    .build(fetch)
            })
            .unwrap();
        let _ = loader.load_many([1, 1, 13, 0]).await;
        loader.close().await;
        assert!(rec.is_empty(), "{:?}", rec.names());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_series_a_named_loader_registers() {
        let rec = Recorded::new();
        let _loader: DataLoader<u32, u32, String> = rec
            .scope(|| DataLoader::builder().name("u").build(fetch))
            .unwrap();
        let names: Vec<String> = rec
            .names()
            .into_iter()
            .filter(|n| n.starts_with("flowgate_dataloader_"))
            .collect();
        let mut expected: Vec<String> = vec![
            "flowgate_dataloader_cache_hits_total{name=u}".into(),
            "flowgate_dataloader_cache_misses_total{name=u}".into(),
            "flowgate_dataloader_fetch_errors_total{name=u,reason=error}".into(),
            "flowgate_dataloader_fetch_errors_total{name=u,reason=panic}".into(),
            "flowgate_dataloader_fetch_size{name=u}".into(),
            "flowgate_dataloader_joined_total{name=u}".into(),
            "flowgate_dataloader_loads_total{name=u}".into(),
        ];
        expected.extend(
            OUTCOMES
                .iter()
                .map(|o| format!("flowgate_dataloader_key_results_total{{name=u,outcome={o}}}")),
        );
        expected.sort();
        assert_eq!(names, expected);
        assert!(
            rec.names()
                .iter()
                .any(|n| n == "flowgate_batch_items_pending{name=u}")
        );
    }
}

// ===== tracing (with or without the feature) =====

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn key_errors_warn_once_per_fetch_and_missing_keys_are_debug() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let loader: DataLoader<u32, u32, String> =
        DataLoader::builder().name("users").build(fetch).unwrap();
    let _ = loader.load_many([13, 14, 404]).await;
    let _ = loader.load_many([404, 405]).await;
    let events: Vec<_> = traced
        .events_at_least(Level::DEBUG, "flowgate::dataloader")
        .into_iter()
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let warn = &events[0];
    assert_eq!(warn.level, Level::WARN);
    assert_eq!(warn.field("name"), Some("users"));
    assert_eq!(warn.field("keys"), Some("3"));
    assert_eq!(warn.field("errors"), Some("1"));
    assert_eq!(warn.field("missing"), Some("1"));
    let debug = &events[1];
    assert_eq!(debug.level, Level::DEBUG);
    assert_eq!(debug.field("keys"), Some("2"));
    assert_eq!(debug.field("missing"), Some("1"));
    // Both inside the fetch's flush span, named after the loader.
    let flush = traced.spans_named("flowgate::batch", "flush");
    assert_eq!(flush.len(), 2);
    assert_eq!(flush[0].field("name"), Some("users"));
    assert_eq!(warn.span, Some(flush[0].id));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failed_fetch_warns_once_as_a_failed_flush() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let loader: DataLoader<u32, u32, String> =
        DataLoader::builder().name("users").build(fetch).unwrap();
    let _ = loader.load_many([0, 1, 2]).await;
    let events = traced.events_at_least(Level::WARN, "flowgate::");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].target, "flowgate::batch");
    assert_eq!(events[0].level, Level::WARN);
    assert_eq!(events[0].field("name"), Some("users"));
    assert_eq!(events[0].field("size"), Some("3"));
}
