//! Behaviour of `flowgate::group::CallGroup`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowgate::group::{AddError, CallGroup, Op, OpError, Outcome, Results, SetDeadlineError, Wait};
use proptest::prelude::*;
use tokio::sync::oneshot;
use tokio_test::{assert_pending, assert_ready, task};

type Group = CallGroup<u64, u64, String>;

#[tokio::test]
async fn every_result_by_id_in_add_order() {
    let mut group = Group::new();
    for id in [10, 20, 30] {
        let op = group.add(id, id * 2).unwrap();
        tokio::spawn(async move {
            if *op.msg() == 40 {
                op.finish(Err("twenty".into()));
            } else {
                let value = *op.msg();
                op.finish(Ok(value));
            }
        });
    }
    let results = group.wait().await;
    assert_eq!(results.len(), 3);
    assert_eq!(results.ids(), [10, 20, 30]);
    assert_eq!(results.get(&10), Some(&Outcome::Ok(20)));
    assert_eq!(results.get(&20), Some(&Outcome::Err("twenty".into())));
    assert_eq!(results.get(&30), Some(&Outcome::Ok(60)));
    assert_eq!(results.get(&40), None);
    assert_eq!(results.ok_count(), 2);
    assert!(!results.all_ok());
}

#[tokio::test]
async fn callback_runs_once_with_every_result() {
    let mut group = Group::new();
    let ops: Vec<_> = (0..5).map(|id| group.add(id, ()).unwrap()).collect();
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = oneshot::channel();
    let counter = Arc::clone(&calls);
    group.on_complete(move |results| {
        counter.fetch_add(1, Ordering::SeqCst);
        let _ = tx.send(results);
    });
    for op in ops {
        let value = op.index() as u64;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "completion before the last op"
        );
        op.finish(Ok(value));
    }
    let results = rx.await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let values: Vec<u64> = results.into_iter().map(|(_, o)| o.ok().unwrap()).collect();
    assert_eq!(values, [0, 1, 2, 3, 4]);
}

/// The seed's race: in Go, an op finishing while the loop was still adding
/// could complete the group early. Here every op finishes as soon as it is
/// added, and the completion still sees all of them, once.
#[tokio::test]
async fn no_starting_line_needed() {
    let mut group = Group::new();
    for id in 0..100 {
        group.add(id, ()).unwrap().finish(Ok(id));
        assert_eq!(group.remaining(), 0);
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = oneshot::channel();
    let counter = Arc::clone(&calls);
    group.on_complete(move |results| {
        counter.fetch_add(1, Ordering::SeqCst);
        let _ = tx.send(results.len());
    });
    // Sealing a group with nothing running completes it on the spot.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(rx.await.unwrap(), 100);
}

#[tokio::test]
async fn wait_resolves_only_after_the_last_op() {
    let mut group = Group::new();
    let a = group.add(1, ()).unwrap();
    let b = group.add(2, ()).unwrap();
    let mut wait = task::spawn(group.wait());
    assert_pending!(wait.poll());
    assert_eq!(wait.remaining(), 2);

    a.finish(Ok(1));
    assert!(!wait.is_woken(), "woken before the last op finished");
    assert_pending!(wait.poll());

    b.finish(Ok(2));
    assert!(wait.is_woken());
    let results = assert_ready!(wait.poll());
    assert!(results.all_ok());
}

#[tokio::test]
async fn group_into_future() {
    let mut group = Group::new();
    group.add(1, ()).unwrap().finish(Ok(7));
    let results = group.await;
    assert_eq!(results.get(&1), Some(&Outcome::Ok(7)));
}

#[tokio::test]
async fn empty_group_completes_at_once() {
    let results = Group::new().wait().await;
    assert!(results.is_empty());

    let (tx, rx) = oneshot::channel();
    Group::new().on_complete(move |results| {
        let _ = tx.send(results.len());
    });
    assert_eq!(rx.await.unwrap(), 0);
}

#[tokio::test]
async fn dropped_op_is_abandoned() {
    let mut group = Group::new();
    let kept = group.add(1, ()).unwrap();
    let dropped = group.add(2, ()).unwrap();
    drop(dropped);
    kept.finish(Ok(1));
    let results = group.wait().await;
    assert_eq!(results.get(&2), Some(&Outcome::Abandoned));
    assert_eq!(
        results.get(&2).unwrap().clone().into_result(),
        Err(OpError::Abandoned)
    );
}

#[tokio::test]
async fn panicking_task_abandons_its_op() {
    let mut group = Group::new();
    let op = group.add(1, ()).unwrap();
    let task = tokio::spawn(async move {
        let _op = op;
        panic!("worker failed");
    });
    assert!(task.await.unwrap_err().is_panic());
    let results = group.wait().await;
    assert_eq!(results.get(&1), Some(&Outcome::Abandoned));
}

#[tokio::test]
async fn cancelled_task_abandons_its_op() {
    let mut group = Group::new();
    let op = group.add(1, ()).unwrap();
    let task = tokio::spawn(async move {
        std::future::pending::<()>().await;
        op.finish(Ok(1));
    });
    tokio::task::yield_now().await;
    task.abort();
    let results = group.wait().await;
    assert_eq!(results.get(&1), Some(&Outcome::Abandoned));
}

#[tokio::test]
async fn duplicate_id_is_an_error_that_hands_back() {
    let mut group = Group::new();
    let first = group.add(5, "first").unwrap();
    let err: AddError<u64, &str> = group.add(5, "second").unwrap_err();
    assert_eq!(*err.id(), 5);
    assert_eq!(
        err.to_string(),
        "an operation with this id is already in the group"
    );
    assert_eq!(err.into_inner(), (5, "second"));
    assert_eq!(group.len(), 1);
    assert!(group.contains(&5));
    // The first op under the id is unaffected.
    first.finish(Ok(1));
    let results = group.wait().await;
    assert_eq!(results.len(), 1);
    assert_eq!(results.get(&5), Some(&Outcome::Ok(1)));
}

#[tokio::test(start_paused = true)]
async fn deadline_times_out_running_ops() {
    let mut group = Group::new();
    group.set_timeout(Duration::from_secs(1)).unwrap();
    let fast = group.add(1, ()).unwrap();
    let slow = group.add(2, ()).unwrap();
    let never = group.add(3, ()).unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        fast.finish(Ok(1));
    });
    let slow_task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(slow.is_closed(), "a late op sees the group closed");
        slow.finish(Ok(2)); // ignored
    });
    let start = tokio::time::Instant::now();
    let results = group.wait().await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(results.get(&1), Some(&Outcome::Ok(1)));
    assert_eq!(results.get(&2), Some(&Outcome::TimedOut));
    assert_eq!(results.get(&3), Some(&Outcome::TimedOut));
    assert!(never.is_closed());
    slow_task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn deadline_hand_polled() {
    let mut group = Group::new();
    group.set_timeout(Duration::from_secs(1)).unwrap();
    let op = group.add(1, ()).unwrap();
    let mut wait = task::spawn(group.wait());
    assert_pending!(wait.poll());
    tokio::time::advance(Duration::from_millis(999)).await;
    assert_pending!(wait.poll());
    assert!(!op.is_closed());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(wait.is_woken());
    let results = assert_ready!(wait.poll());
    assert_eq!(results.get(&1), Some(&Outcome::TimedOut));
    assert!(op.is_closed());
}

#[tokio::test(start_paused = true)]
async fn deadline_with_callback() {
    let mut group = Group::new();
    group.set_timeout(Duration::from_secs(1)).unwrap();
    let done = group.add(1, ()).unwrap();
    let _running = group.add(2, ()).unwrap();
    let (tx, rx) = oneshot::channel();
    group.on_complete(move |results| {
        let _ = tx.send(results.into_map());
    });
    done.finish(Ok(1));
    let start = tokio::time::Instant::now();
    let results = rx.await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(results[&1], Outcome::Ok(1));
    assert_eq!(results[&2], Outcome::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn completion_before_the_deadline_cancels_the_timer() {
    let mut group = Group::new();
    group.set_timeout(Duration::from_secs(1)).unwrap();
    let op = group.add(1, ()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    group.on_complete(move |results| {
        assert!(results.all_ok());
        counter.fetch_add(1, Ordering::SeqCst);
    });
    op.finish(Ok(1));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the timer fired after completion"
    );
}

#[test]
fn deadline_needs_a_runtime() {
    let mut group = Group::new();
    let op = group.add(1, ()).unwrap();
    let err = group.set_timeout(Duration::from_secs(1)).unwrap_err();
    // The group is unchanged and still usable.
    assert!(!op.is_closed());
    assert_eq!(group.len(), 1);
    assert_eq!(err, SetDeadlineError::NoRuntime);
    assert_eq!(
        err.to_string(),
        "a call group deadline needs a tokio runtime"
    );
}

#[test]
fn wait_without_deadline_needs_no_runtime() {
    let mut group = Group::new();
    let op = group.add(1, ()).unwrap();
    std::thread::spawn(move || op.finish(Ok(3)));
    let results = block_on(group.wait());
    assert_eq!(results.get(&1), Some(&Outcome::Ok(3)));
}

/// A minimal `block_on` with a thread-parking waker, to show that `Wait`
/// needs no tokio runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

#[tokio::test]
async fn dropping_the_group_unsealed_closes_its_ops() {
    let mut group = Group::new();
    let op = group.add(1, ()).unwrap();
    assert!(!op.is_closed());
    drop(group);
    assert!(op.is_closed());
    op.finish(Ok(1)); // harmless
}

#[tokio::test]
async fn dropping_wait_closes_running_ops() {
    let mut group = Group::new();
    let op = group.add(1, ()).unwrap();
    let mut wait = task::spawn(group.wait());
    assert_pending!(wait.poll());
    drop(wait);
    assert!(op.is_closed());
    op.finish(Ok(1));
}

#[tokio::test]
async fn cancelled_wait_can_be_polled_again() {
    let mut group = Group::new();
    let op = group.add(1, ()).unwrap();
    let mut wait = group.wait();
    tokio::select! {
        biased;
        _ = &mut wait => panic!("nothing finished yet"),
        () = tokio::task::yield_now() => {}
    }
    op.finish(Ok(9));
    let results = wait.await;
    assert_eq!(results.get(&1), Some(&Outcome::Ok(9)));
}

#[tokio::test]
async fn panicking_callback_is_contained() {
    let mut group = Group::new();
    let op = group.add(1, ()).unwrap();
    group.on_complete(|_| panic!("callback failed"));
    // Completion runs inside `finish`; the panic must not escape into it.
    op.finish(Ok(1));
}

#[tokio::test]
async fn results_lookups_by_borrowed_id() {
    let mut group = CallGroup::<String, usize, ()>::with_capacity(2);
    for name in ["alpha", "beta"] {
        let op = group.add(name.to_owned(), name).unwrap();
        let len = op.msg().len();
        op.finish(Ok(len));
    }
    let results = group.wait().await;
    assert_eq!(results.get("alpha"), Some(&Outcome::Ok(5)));
    assert_eq!(results.get("beta").cloned().and_then(Outcome::ok), Some(4));
    let pairs: Vec<(&String, &Outcome<usize, ()>)> = (&results).into_iter().collect();
    assert_eq!(pairs.len(), 2);
    assert_eq!(results.outcomes()[1], Outcome::Ok(4));
    assert!(format!("{results:?}").contains("alpha"));
}

#[tokio::test]
async fn op_into_msg_and_index() {
    let mut group = CallGroup::<u8, String, ()>::new();
    let first = group.add(b'a', String::from("x")).unwrap();
    let mut second = group.add(b'b', String::from("y")).unwrap();
    assert_eq!((first.index(), second.index()), (0, 1));
    let (msg, first) = first.into_msg();
    first.finish(Ok(msg));
    second.msg_mut().push('!');
    let (msg, second) = second.into_msg();
    second.finish(Ok(msg));
    let results = group.wait().await;
    assert_eq!(
        results.into_outcomes(),
        [Outcome::Ok("x".to_owned()), Outcome::Ok("y!".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_ops_finished_across_threads() {
    for round in 0..50u64 {
        let mut group = CallGroup::<u64, u64, ()>::with_capacity(200);
        for id in 0..200 {
            let op = group.add(id, id * round).unwrap();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                let value = *op.msg();
                op.finish(Ok(value));
            });
        }
        let results = group.wait().await;
        assert_eq!(results.len(), 200);
        for (id, outcome) in results {
            assert_eq!(outcome, Outcome::Ok(id * round));
        }
    }
}

#[test]
fn outcome_and_error_helpers() {
    let err: Outcome<u8, &str> = Outcome::Err("bad");
    assert!(!err.is_ok());
    assert_eq!(err.as_ref(), Outcome::Err(&"bad"));
    let op_err = err.into_result().unwrap_err();
    assert_eq!(op_err.failed(), Some(&"bad"));
    assert_eq!(op_err.to_string(), "operation failed: bad");
    assert!(OpError::<()>::Abandoned.is_abandoned());
    assert!(OpError::<()>::TimedOut.is_timed_out());
    assert_eq!(
        OpError::<String>::TimedOut.to_string(),
        "operation did not finish before the group's deadline"
    );
    let io = OpError::Failed(std::io::Error::other("disk"));
    assert!(std::error::Error::source(&io).is_some());
    assert_eq!(Outcome::<u8, ()>::from(Ok(1)), Outcome::Ok(1));
}

#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    fn unpin<T: Unpin>() {}
    send_sync::<CallGroup<u64, String, std::io::Error>>();
    send_sync::<Op<String, u64, std::io::Error>>();
    send_sync::<Wait<u64, String, std::io::Error>>();
    send_sync::<Results<u64, String, std::io::Error>>();
    send_sync::<AddError<u64, String>>();
    send_sync::<OpError<std::io::Error>>();
    send_sync::<SetDeadlineError>();
    send::<Op<std::cell::Cell<u8>, u64, ()>>();
    // Unpin, so `&mut wait` works in `select!` without pinning.
    unpin::<Wait<std::marker::PhantomPinned, u8, ()>>();
}

/// What a test does with one op.
#[derive(Debug, Clone)]
enum Fate {
    Ok(u64),
    Err(u64),
    Drop,
}

fn settle(op: Op<Fate, u64, u64>) {
    match op.msg().clone() {
        Fate::Ok(v) => op.finish(Ok(v)),
        Fate::Err(e) => op.finish(Err(e)),
        Fate::Drop => drop(op),
    }
}

proptest! {
    /// Whatever order ops are finished or dropped in, and wherever the group
    /// is sealed among them, the completion runs exactly once, after the
    /// last op, with exactly the outcome of every op.
    #[test]
    fn completion_is_exact(
        fates in proptest::collection::vec(
            prop_oneof![
                any::<u64>().prop_map(Fate::Ok),
                any::<u64>().prop_map(Fate::Err),
                Just(Fate::Drop),
            ],
            0..40,
        ),
        order in any::<proptest::sample::Index>(),
        seal_at in any::<proptest::sample::Index>(),
    ) {
        let mut group = CallGroup::<usize, u64, u64>::new();
        let mut ops: Vec<_> = fates
            .iter()
            .enumerate()
            .map(|(id, fate)| group.add(id, fate.clone()).unwrap())
            .collect();
        // A rotation of the add order, as the finishing order.
        if !ops.is_empty() {
            let by = order.index(ops.len());
            ops.rotate_left(by);
        }
        let rest = ops.split_off(seal_at.index(ops.len() + 1));
        for op in ops {
            settle(op);
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(None));
        {
            let calls = Arc::clone(&calls);
            let seen = Arc::clone(&seen);
            group.on_complete(move |results| {
                calls.fetch_add(1, Ordering::SeqCst);
                *seen.lock().unwrap() = Some(results);
            });
        }
        for op in rest {
            prop_assert_eq!(calls.load(Ordering::SeqCst), 0);
            settle(op);
        }
        prop_assert_eq!(calls.load(Ordering::SeqCst), 1);
        let results = seen.lock().unwrap().take().unwrap();
        prop_assert_eq!(results.len(), fates.len());
        for (id, fate) in fates.iter().enumerate() {
            let expected = match fate {
                Fate::Ok(v) => Outcome::Ok(*v),
                Fate::Err(e) => Outcome::Err(*e),
                Fate::Drop => Outcome::Abandoned,
            };
            prop_assert_eq!(results.get(&id), Some(&expected));
        }
    }
}
