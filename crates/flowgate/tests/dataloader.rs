//! Behaviour tests of `flowgate::dataloader`: batching within a window, key
//! deduplication within and across windows, per-key errors, panics, the
//! cache (under paused tokio time), cancellation and shutdown.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::dataloader::{BuildError, DataLoader, LoadError, LoadStats};
use futures_core::future::BoxFuture;
use proptest::prelude::*;
use tokio::sync::Semaphore;
use tokio::time::{advance, sleep};
use tokio_test::{assert_pending, assert_ready, task};

/// The batch fetch of the tests: records every batch, waits `latency`,
/// answers `key * 10`, fails key 13 alone, and leaves key 404 out.
#[derive(Clone, Default)]
struct Backend {
    batches: Arc<Mutex<Vec<Vec<u64>>>>,
    latency: Duration,
}

type Loader = DataLoader<u64, u64, String>;

/// A batch fetch's result: a result per key, or an error for the batch.
type Batch = Result<HashMap<u64, Result<u64, String>>, String>;

impl Backend {
    fn fetcher(&self) -> impl FnMut(Vec<u64>) -> BoxFuture<'static, Batch> + Send + 'static {
        let backend = self.clone();
        move |keys| {
            backend.batches.lock().unwrap().push(keys.clone());
            let latency = backend.latency;
            Box::pin(async move {
                if !latency.is_zero() {
                    sleep(latency).await;
                }
                if keys.contains(&666) {
                    return Err("backend down".to_owned());
                }
                if keys.contains(&999) {
                    panic!("backend bug");
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
                                Ok(k * 10)
                            },
                        )
                    })
                    .collect())
            })
        }
    }

    fn batches(&self) -> Vec<Vec<u64>> {
        self.batches.lock().unwrap().clone()
    }
}

fn loader(backend: &Backend) -> Loader {
    DataLoader::builder()
        .max_batch(10)
        .delay(Duration::from_millis(5))
        .build(backend.fetcher())
        .unwrap()
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<Loader>();
    assert_send_sync::<LoadError<std::io::Error>>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let loader = loader(&Backend::default());
    assert_send(&loader.load(1));
    assert_send(&loader.load_many([1, 2]));
    assert_send(&loader.close());
}

#[test]
fn invalid_settings_are_refused() {
    let backend = Backend::default();
    let err = DataLoader::builder()
        .cache(0, Duration::from_secs(1))
        .build_pair::<_, u64, _, _, _, _>(backend.fetcher())
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroCacheCapacity);
    let err = DataLoader::builder()
        .cache(1, Duration::ZERO)
        .build_pair::<_, u64, _, _, _, _>(backend.fetcher())
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroCacheTtl);
    let err = DataLoader::builder()
        .max_batch(0)
        .build_pair::<_, u64, _, _, _, _>(backend.fetcher())
        .unwrap_err();
    assert_eq!(
        err,
        BuildError::Batch(flowgate::batch::BuildError::ZeroMaxItems)
    );
    assert_eq!(err.to_string(), "max_batch must be at least 1");
    let outside: Result<Loader, _> = DataLoader::builder().build(backend.fetcher());
    assert_eq!(
        outside.unwrap_err(),
        BuildError::Batch(flowgate::batch::BuildError::NoRuntime)
    );
}

#[tokio::test(start_paused = true)]
async fn loads_within_a_window_become_one_fetch_of_distinct_keys() {
    let backend = Backend::default();
    let loader = loader(&backend);
    let results = loader.load_many([3, 1, 3, 2, 1, 3]).await;
    assert_eq!(
        results.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        vec![30, 10, 30, 20, 10, 30]
    );
    assert_eq!(backend.batches(), vec![vec![3, 1, 2]]);
    let stats = loader.stats();
    assert_eq!(
        (stats.loads, stats.joined, stats.batches, stats.keys_fetched),
        (6, 3, 1, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn the_window_and_max_batch_decide_when_a_batch_is_fetched() {
    let backend = Backend::default();
    let loader = loader(&backend);
    let mut one = task::spawn(loader.load(1));
    assert_pending!(one.poll());
    advance(Duration::from_millis(4)).await;
    assert_pending!(one.poll());
    assert!(backend.batches().is_empty(), "waits for the window");
    advance(Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    assert_eq!(assert_ready!(one.poll()).unwrap(), 10);
    // 25 distinct keys: two full batches at once, the rest after the window.
    let keys: Vec<u64> = (100..125).collect();
    let results = loader.load_many(keys.clone()).await;
    assert!(results.iter().all(Result::is_ok));
    let sizes: Vec<usize> = backend.batches()[1..].iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
}

#[tokio::test(start_paused = true)]
async fn errors_are_per_key_and_never_cached() {
    let backend = Backend::default();
    let loader: Loader = DataLoader::builder()
        .delay(Duration::from_millis(1))
        .cache(100, Duration::from_secs(60))
        .build(backend.fetcher())
        .unwrap();
    let results = loader.load_many([1, 13, 404]).await;
    assert_eq!(results[0], Ok(10));
    assert_eq!(
        results[1],
        Err(LoadError::Key(Arc::new("unlucky".to_owned())))
    );
    assert_eq!(results[2], Err(LoadError::Missing));
    assert_eq!(
        results[1].as_ref().unwrap_err().to_string(),
        "fetching the key failed: unlucky"
    );
    // A failed batch fails each of its keys.
    let failed = loader.load_many([2, 666]).await;
    for result in &failed {
        assert_eq!(
            result.as_ref().unwrap_err().fetch_error().unwrap(),
            "backend down"
        );
        assert!(matches!(result, Err(LoadError::Fetch(_))));
    }
    // 1 is cached; 13, 404 and 2 are fetched again.
    let again = loader.load_many([1, 13, 404, 2]).await;
    assert_eq!(again[0], Ok(10));
    assert_eq!(again[3], Ok(20));
    assert_eq!(backend.batches().last().unwrap(), &vec![13, 404, 2]);
    assert_eq!(loader.stats().cache_hits, 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_fetch_fails_its_batch_only() {
    let backend = Backend::default();
    let loader = loader(&backend);
    let results = loader.load_many([1, 999]).await;
    for result in &results {
        assert!(matches!(result, Err(LoadError::Panicked(msg)) if &**msg == "backend bug"));
    }
    assert_eq!(loader.load(1).await, Ok(10), "the loader keeps working");
}

#[tokio::test(start_paused = true)]
async fn a_load_during_a_fetch_of_its_key_joins_it() {
    let backend = Backend {
        latency: Duration::from_millis(50),
        ..Backend::default()
    };
    let loader = loader(&backend);
    let mut first = task::spawn(loader.load(7));
    assert_pending!(first.poll());
    sleep(Duration::from_millis(20)).await; // the fetch of 7 is running
    assert_eq!(backend.batches().len(), 1);
    let mut second = task::spawn(loader.load(7));
    assert_pending!(second.poll());
    sleep(Duration::from_millis(40)).await;
    assert_eq!(assert_ready!(first.poll()), Ok(70));
    assert_eq!(assert_ready!(second.poll()), Ok(70));
    assert_eq!(backend.batches(), vec![vec![7]], "fetched once");
    assert_eq!(loader.stats().joined, 1);
}

#[tokio::test(start_paused = true)]
async fn the_cache_expires_and_can_be_primed_and_cleared() {
    let backend = Backend::default();
    let loader: Loader = DataLoader::builder()
        .delay(Duration::from_millis(1))
        .cache(2, Duration::from_secs(10))
        .build(backend.fetcher())
        .unwrap();
    assert_eq!(loader.load(1).await, Ok(10));
    assert_eq!(loader.load(1).await, Ok(10));
    assert_eq!(backend.batches().len(), 1, "the second load was a hit");
    advance(Duration::from_secs(10)).await;
    assert_eq!(loader.load(1).await, Ok(10));
    assert_eq!(backend.batches().len(), 2, "expired, fetched again");
    assert!(loader.prime(5, 555));
    assert_eq!(loader.load(5).await, Ok(555), "primed values are served");
    assert!(loader.clear(&5));
    assert_eq!(loader.load(5).await, Ok(50));
    // Capacity 2: loading 2 and 3 evicts 1 and 5 in turn.
    loader.load_many([2, 3]).await;
    let before = backend.batches().len();
    assert_eq!(loader.load(1).await, Ok(10));
    assert_eq!(backend.batches().len(), before + 1);
    loader.clear_all();
    assert_eq!(loader.load(1).await, Ok(10));
    assert_eq!(backend.batches().len(), before + 2);
    let without: Loader = DataLoader::builder().build(backend.fetcher()).unwrap();
    assert!(!without.prime(1, 1), "no cache, nothing primed");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_submitter_does_not_strand_the_loads_waiting_on_it() {
    let backend = Backend {
        latency: Duration::from_millis(50),
        ..Backend::default()
    };
    let loader = loader(&backend);
    // Cancelled after its key was accepted: the fetch still serves the others.
    let mut first = task::spawn(loader.load(1));
    assert_pending!(first.poll());
    let mut joined = task::spawn(loader.load(1));
    assert_pending!(joined.poll());
    drop(first);
    sleep(Duration::from_millis(60)).await;
    assert_eq!(assert_ready!(joined.poll()), Ok(10));
    assert_eq!(backend.batches(), vec![vec![1]]);
}

#[tokio::test(start_paused = true)]
async fn a_submitter_cancelled_while_waiting_for_room_hands_over_its_key() {
    // One key of room, one fetch at a time, and a fetch that waits for us.
    let gate = Arc::new(Semaphore::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (g, s) = (Arc::clone(&gate), Arc::clone(&seen));
    let loader: DataLoader<u64, u64, ()> = DataLoader::builder()
        .max_batch(1)
        .capacity(1)
        .concurrency(1)
        .build(move |keys: Vec<u64>| {
            let (gate, seen) = (Arc::clone(&g), Arc::clone(&s));
            async move {
                seen.lock().unwrap().push(keys.clone());
                gate.acquire().await.unwrap().forget();
                Ok(keys.into_iter().map(|k| (k, k)).collect::<HashMap<_, _>>())
            }
        })
        .unwrap();
    let mut a = task::spawn(loader.load(1)); // being fetched
    assert_pending!(a.poll());
    sleep(Duration::from_millis(5)).await;
    let mut b = task::spawn(loader.load(2)); // holds the one key of room
    assert_pending!(b.poll());
    let mut c = task::spawn(loader.load(3)); // waits for room
    assert_pending!(c.poll());
    let mut c_joined = task::spawn(loader.load(3)); // waits on c
    assert_pending!(c_joined.poll());
    drop(c); // cancelled before its key was accepted
    assert!(c_joined.is_woken());
    assert_pending!(c_joined.poll(), "submits 3 itself, waits for room");
    gate.add_permits(3);
    sleep(Duration::from_millis(50)).await;
    assert_eq!(assert_ready!(a.poll()), Ok(1));
    assert_eq!(assert_ready!(b.poll()), Ok(2));
    assert!(c_joined.is_woken(), "room was made");
    assert_pending!(c_joined.poll()); // its key is accepted now
    sleep(Duration::from_millis(50)).await;
    assert_eq!(
        assert_ready!(c_joined.poll()),
        Ok(3),
        "submitted by the waiter"
    );
    assert_eq!(*seen.lock().unwrap(), vec![vec![1], vec![2], vec![3]]);
}

#[tokio::test(start_paused = true)]
async fn close_fetches_what_was_submitted_then_refuses() {
    let backend = Backend {
        latency: Duration::from_millis(10),
        ..Backend::default()
    };
    let loader = loader(&backend);
    let mut pending = task::spawn(loader.load(1));
    assert_pending!(pending.poll());
    loader.close().await;
    assert!(loader.is_closed());
    assert_eq!(assert_ready!(pending.poll()), Ok(10));
    assert_eq!(loader.load(2).await, Err(LoadError::Closed));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_worker_fails_waiting_loads_instead_of_hanging() {
    let backend = Backend::default();
    let (loader, worker): (Loader, _) =
        DataLoader::builder().build_pair(backend.fetcher()).unwrap();
    let mut waiting = task::spawn(loader.load(1));
    assert_pending!(waiting.poll());
    let mut joined = task::spawn(loader.load(1));
    assert_pending!(joined.poll());
    drop(worker);
    assert_eq!(assert_ready!(waiting.poll()), Err(LoadError::Closed));
    // The joined load retries, and finds the loader closed.
    assert_eq!(assert_ready!(joined.poll()), Err(LoadError::Closed));
}

#[tokio::test(start_paused = true)]
async fn a_flush_fetches_without_waiting_for_the_window() {
    let backend = Backend::default();
    let loader: Loader = DataLoader::builder()
        .delay(Duration::from_secs(60))
        .build(backend.fetcher())
        .unwrap();
    let mut load = task::spawn(loader.load(4));
    assert_pending!(load.poll());
    loader.flush().await;
    assert_eq!(assert_ready!(load.poll()), Ok(40));
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_loads_over_a_thousand_keys() {
    let backend = Backend::default();
    let loader: Loader = DataLoader::builder()
        .max_batch(100)
        .delay(Duration::from_millis(1))
        .build(backend.fetcher())
        .unwrap();
    let tasks: Vec<_> = (0..10_000u64)
        .map(|i| {
            let loader = loader.clone();
            let key = (i * 7919) % 1000 + 1000; // scrambled, no special keys
            tokio::spawn(async move { (key, loader.load(key).await) })
        })
        .collect();
    for task in tasks {
        let (key, value) = task.await.unwrap();
        assert_eq!(value, Ok(key * 10));
    }
    let LoadStats {
        loads,
        batches,
        keys_fetched,
        ..
    } = loader.stats();
    assert_eq!(loads, 10_000);
    assert_eq!(keys_fetched, 1000, "each key fetched once");
    assert_eq!(batches, 10);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the timing: every load gets its own key's value, every batch
    /// holds distinct keys, and no key is fetched more often than it was
    /// loaded.
    #[test]
    fn loads_get_their_own_values(
        loads in proptest::collection::vec((0u64..30, 0u64..20), 1..80),
        max_batch in 1usize..8,
        latency in 0u64..10,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let backend = Backend { latency: Duration::from_millis(latency), ..Backend::default() };
            let loader: Loader = DataLoader::builder()
                .max_batch(max_batch)
                .delay(Duration::from_millis(3))
                .build(backend.fetcher())
                .unwrap();
            let tasks: Vec<_> = loads
                .iter()
                .map(|&(key, at)| {
                    let loader = loader.clone();
                    tokio::spawn(async move {
                        sleep(Duration::from_millis(at)).await;
                        (key, loader.load(key + 100).await)
                    })
                })
                .collect();
            for task in tasks {
                let (key, value) = task.await.unwrap();
                prop_assert_eq!(value, Ok((key + 100) * 10));
            }
            for batch in backend.batches() {
                let distinct: BTreeSet<_> = batch.iter().collect();
                prop_assert_eq!(distinct.len(), batch.len());
                prop_assert!(batch.len() <= max_batch);
            }
            let stats = loader.stats();
            prop_assert!(stats.keys_fetched <= stats.loads);
            prop_assert_eq!(stats.loads, loads.len() as u64);
            Ok(())
        })?;
    }
}
