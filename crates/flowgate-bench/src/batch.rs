//! Fan-in batching with per-item acknowledgement (issue 2): 1000 submitters,
//! each awaiting its item's ack before submitting the next; max_items 1000; a
//! no-op flush.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;

use flowgate::batch::Batcher;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

/// Concurrent submitters.
pub const SUBMITTERS: u64 = 1000;
/// Items per batch.
pub const MAX_ITEMS: usize = 1000;
/// Delay bound of a batch (never reached while submitters keep up).
pub const MAX_DELAY: Duration = Duration::from_millis(50);

fn noop_flush(items: Vec<u64>) {
    black_box(items);
}

/// The batcher both flowgate workloads use.
fn batcher() -> Batcher<u64> {
    Batcher::builder()
        .max_items(MAX_ITEMS)
        .max_delay(MAX_DELAY)
        .build(|items: Vec<u64>| {
            noop_flush(items);
            std::future::ready(Ok::<(), Infallible>(()))
        })
        .expect("valid configuration")
}

/// `items` through a `flowgate::batch::Batcher`, each submitter calling
/// `submit` and then awaiting the returned `Flushed`.
pub async fn flowgate_batcher(items: u64) {
    let batcher = batcher();
    let mut tasks = Vec::with_capacity(SUBMITTERS as usize);
    for s in 0..SUBMITTERS {
        let batcher = batcher.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..items / SUBMITTERS {
                let ack = batcher.submit(s * items + i).await.expect("open");
                ack.await.expect("flushed");
            }
        }));
    }
    for task in tasks {
        task.await.expect("submitter panicked");
    }
    batcher.close().await;
}

/// `items` through a `flowgate::batch::Batcher`, each submitter using the
/// fused `submit_and_wait` instead of `submit` then `ack.await`.
pub async fn flowgate_submit_and_wait(items: u64) {
    let batcher = batcher();
    let mut tasks = Vec::with_capacity(SUBMITTERS as usize);
    for s in 0..SUBMITTERS {
        let batcher = batcher.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..items / SUBMITTERS {
                batcher
                    .submit_and_wait(s * items + i)
                    .await
                    .expect("flushed");
            }
        }));
    }
    for task in tasks {
        task.await.expect("submitter panicked");
    }
    batcher.close().await;
}

/// `items` through the straightforward tokio design: an `mpsc` channel of
/// `(item, oneshot::Sender)` and a flusher task that gathers with `recv_many`
/// until the batch is full or its delay passed, calls the flush function with
/// the items, then answers every oneshot.
pub async fn tokio_mpsc_oneshot(items: u64) {
    let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<()>)>(2 * MAX_ITEMS);
    let flusher = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(MAX_ITEMS);
        let mut deadline: Option<Instant> = None;
        let flush = |buf: &mut Vec<(u64, oneshot::Sender<()>)>| {
            let (items, acks): (Vec<u64>, Vec<oneshot::Sender<()>>) = buf.drain(..).unzip();
            noop_flush(items);
            for ack in acks {
                let _ = ack.send(());
            }
        };
        loop {
            let room = MAX_ITEMS - buf.len();
            let received = match deadline {
                Some(at) => tokio::select! {
                    n = rx.recv_many(&mut buf, room) => n,
                    () = sleep_until(at) => {
                        flush(&mut buf);
                        deadline = None;
                        continue;
                    }
                },
                None => rx.recv_many(&mut buf, room).await,
            };
            if received == 0 {
                flush(&mut buf);
                break;
            }
            if deadline.is_none() {
                deadline = Some(Instant::now() + MAX_DELAY);
            }
            if buf.len() >= MAX_ITEMS {
                flush(&mut buf);
                deadline = None;
            }
        }
    });
    let mut tasks = Vec::with_capacity(SUBMITTERS as usize);
    for s in 0..SUBMITTERS {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..items / SUBMITTERS {
                let (ack_tx, ack_rx) = oneshot::channel();
                tx.send((s * items + i, ack_tx))
                    .await
                    .expect("flusher alive");
                ack_rx.await.expect("flushed");
            }
        }));
    }
    drop(tx);
    for task in tasks {
        task.await.expect("submitter panicked");
    }
    flusher.await.expect("flusher panicked");
}

/// Not a batcher: the scheduling floor of this workload, for reference.
///
/// The same 1000 tasks, each "submitting" by registering its waker and
/// counting itself under a mutex, the last of a round waking a coordinator
/// task that wakes them all for the next round. No items, no outputs, no
/// flush: what any design costs that runs each submitter as a tokio task
/// woken once per item.
pub async fn scheduling_floor(items: u64) {
    let rounds = items / SUBMITTERS;
    let floor = Arc::new(Floor {
        state: Mutex::new((0, Vec::with_capacity(SUBMITTERS as usize))),
        round: AtomicU64::new(0),
        coordinator: AtomicWaker::new(),
    });
    let coordinator = {
        let floor = Arc::clone(&floor);
        tokio::spawn(std::future::poll_fn(move |cx| {
            floor.coordinator.register(cx.waker());
            let wakers = {
                let mut state = floor.state.lock().expect("not poisoned");
                if state.0 < SUBMITTERS {
                    return Poll::Pending;
                }
                state.0 = 0;
                std::mem::replace(&mut state.1, Vec::with_capacity(SUBMITTERS as usize))
            };
            let round = floor.round.fetch_add(1, Ordering::Release) + 1;
            for waker in wakers {
                waker.wake();
            }
            if round == rounds {
                Poll::Ready(())
            } else {
                // Woken again by the last submitter of the next round.
                Poll::Pending
            }
        }))
    };
    let mut tasks = Vec::with_capacity(SUBMITTERS as usize);
    for _ in 0..SUBMITTERS {
        let floor = Arc::clone(&floor);
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let mut entered = None;
                std::future::poll_fn(|cx| {
                    if let Some(round) = entered {
                        return if floor.round.load(Ordering::Acquire) > round {
                            Poll::Ready(())
                        } else {
                            Poll::Pending
                        };
                    }
                    let mut state = floor.state.lock().expect("not poisoned");
                    entered = Some(floor.round.load(Ordering::Acquire));
                    state.0 += 1;
                    state.1.push(cx.waker().clone());
                    let last = state.0 == SUBMITTERS;
                    drop(state);
                    if last {
                        floor.coordinator.wake();
                    }
                    Poll::Pending
                })
                .await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("submitter panicked");
    }
    coordinator.await.expect("coordinator panicked");
}

struct Floor {
    /// Submitters counted this round, and their wakers.
    state: Mutex<(u64, Vec<Waker>)>,
    /// Rounds completed.
    round: AtomicU64,
    coordinator: AtomicWaker,
}
