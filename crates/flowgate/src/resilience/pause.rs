//! [`PauseHandle`]: a shared switch that stops sources from pulling new
//! items, and its RAII [`PauseGuard`].

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

use crate::telemetry::{Counter, Gauge, Name};

/// The series of a named [`PauseHandle`]; see [`PauseHandle::name`].
struct PauseMetrics {
    name: Name,
    /// `flowgate_pause_manual`: 1 while paused by `pause()`.
    manual: Gauge,
    /// `flowgate_pause_holds`: live [`PauseGuard`]s.
    holds: Gauge,
    /// `flowgate_pause_pauses_total`: `pause()` calls that paused.
    pauses: Counter,
    /// `flowgate_pause_resumes_total`: manual pauses lifted.
    resumes: Counter,
    /// `flowgate_pause_holds_total`: guards taken.
    holds_taken: Counter,
}

impl PauseMetrics {
    fn new(name: Name, manual: bool, holds: usize) -> Self {
        let metrics = PauseMetrics {
            manual: name.gauge("flowgate_pause_manual"),
            holds: name.gauge("flowgate_pause_holds"),
            pauses: name.counter("flowgate_pause_pauses_total"),
            resumes: name.counter("flowgate_pause_resumes_total"),
            holds_taken: name.counter("flowgate_pause_holds_total"),
            name,
        };
        metrics.manual.set(if manual { 1.0 } else { 0.0 });
        metrics.holds.set(holds as f64);
        metrics
    }
}

/// The state behind every clone of a [`PauseHandle`], every [`PauseGuard`]
/// and every [`pausable`](crate::pipeline::PipelineExt::pausable) stage.
pub(crate) struct PauseShared {
    /// Paused by [`PauseHandle::pause`] until [`PauseHandle::resume`].
    manual: AtomicBool,
    /// Live [`PauseGuard`]s: paused while any is held.
    holds: AtomicUsize,
    /// Live [`PauseHandle`]s. When the last one goes, nobody could resume a
    /// manual pause, so it is lifted rather than left to hang the source.
    handles: AtomicUsize,
    /// Woken (all waiters) whenever the pause may have been lifted.
    notify: Arc<Notify>,
    /// Set once, by the first [`PauseHandle::name`].
    metrics: OnceLock<PauseMetrics>,
}

// SeqCst on the flags: a waiter creates its `Notified` and then reads the
// flags; a resumer writes the flags and then notifies. Either the waiter
// reads the new flags, or its `Notified` (created before the notification)
// completes. The flags protect no other data.
impl PauseShared {
    pub(crate) fn is_paused(&self) -> bool {
        self.manual.load(Ordering::SeqCst) || self.holds.load(Ordering::SeqCst) > 0
    }

    /// A future completing at the next possible lift of the pause. Create it
    /// (and [`enable`](OwnedNotified::enable) it) *before* checking
    /// [`is_paused`](Self::is_paused), so no lift is missed in between.
    pub(crate) fn lifted(&self) -> OwnedNotified {
        Arc::clone(&self.notify).notified_owned()
    }

    fn lift(&self) {
        if !self.is_paused() {
            self.notify.notify_waiters();
        }
    }

    /// Turns the manual switch; returns whether it changed.
    fn set_manual(&self, paused: bool, why: &'static str) -> bool {
        let changed = self.manual.swap(paused, Ordering::SeqCst) != paused;
        if changed {
            let metrics = self.metrics.get();
            if let Some(metrics) = metrics {
                if paused {
                    metrics.pauses.inc();
                    metrics.manual.inc();
                } else {
                    metrics.resumes.inc();
                    metrics.manual.dec();
                }
            }
            let name = metrics.map_or("", |m| m.name.as_str());
            if paused {
                tracing::debug!(name, "paused");
            } else {
                tracing::debug!(name, why, "resumed");
            }
        }
        changed
    }
}

/// A shared pause switch: while it is paused, every
/// [`pausable`](crate::pipeline::PipelineExt::pausable) source it was given
/// to pulls no new item.
///
/// The seed's use case: *pause the job on error, and retry after sleep*. A
/// stage that backs off after an error holds the pause for as long as it
/// sleeps (see [`Retry::pause_while_backing_off`](super::Retry::pause_while_backing_off)),
/// so the source stops feeding the pipeline — a database cursor is not read
/// ahead, a broker's messages are not pulled — and resumes by itself when the
/// backoff ends.
///
/// A handle is paused while either holds:
///
/// - it was [`pause`](Self::pause)d and not yet [`resume`](Self::resume)d
///   (a switch: pausing twice and resuming once resumes);
/// - any [`PauseGuard`] from [`hold`](Self::hold) is alive (a count: each
///   guard keeps it paused until dropped, whatever the switch says).
///
/// Clones share one switch. When the last handle is dropped a manual pause
/// is lifted, since nobody is left to resume it; guards still hold.
///
/// Items already pulled are not affected: stages downstream finish the work
/// they have. Only the pull of the *next* item waits.
///
/// # Examples
///
/// ```
/// use flowgate::prelude::*;
/// use flowgate::resilience::PauseHandle;
/// use futures_util::stream;
/// use tokio_test::{assert_pending, assert_ready, task};
///
/// let pause = PauseHandle::new();
/// let mut source = task::spawn(stream::iter(0..3).pausable(&pause));
/// assert_eq!(assert_ready!(source.poll_next()), Some(0));
///
/// pause.pause();
/// assert_pending!(source.poll_next()); // nothing pulled while paused
/// pause.resume();
/// assert!(source.is_woken());
/// assert_eq!(assert_ready!(source.poll_next()), Some(1));
///
/// let guard = pause.hold(); // e.g. a retry backing off
/// assert!(pause.is_paused());
/// drop(guard);
/// assert!(!pause.is_paused());
/// ```
pub struct PauseHandle {
    shared: Arc<PauseShared>,
}

impl PauseHandle {
    /// A handle that is not paused.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::PauseHandle;
    ///
    /// let pause = PauseHandle::new();
    /// assert!(!pause.is_paused());
    /// ```
    pub fn new() -> PauseHandle {
        PauseHandle {
            shared: Arc::new(PauseShared {
                manual: AtomicBool::new(false),
                holds: AtomicUsize::new(0),
                handles: AtomicUsize::new(1),
                notify: Arc::new(Notify::new()),
                metrics: OnceLock::new(),
            }),
        }
    }

    /// Names the switch: the `name` label of its series (feature `metrics`)
    /// and the `name` field of its events. Any string is accepted as given.
    /// The series are registered now, with the recorder current at this
    /// call. Name it once, when it is made: the first name given to a switch
    /// sticks, for every clone; later calls do nothing. Without a name, no
    /// metrics.
    ///
    /// Enables (see [`crate::metrics`] for the table):
    ///
    /// - `flowgate_pause_manual` (gauge): 1 while paused by
    ///   [`pause`](Self::pause), else 0;
    /// - `flowgate_pause_holds` (gauge): live [`PauseGuard`]s (retries
    ///   backing off, …); the switch is paused while either gauge is above 0;
    /// - `flowgate_pause_pauses_total`, `flowgate_pause_resumes_total`:
    ///   manual pauses made and lifted;
    /// - `flowgate_pause_holds_total`: guards taken.
    ///
    /// A manual pause and its lifting log a `debug` event each; guards log
    /// nothing (they follow a failure already logged, such as a retry).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::PauseHandle;
    ///
    /// let pause = PauseHandle::new().name("orders-source");
    /// pause.pause(); // flowgate_pause_manual{name="orders-source"} is 1
    /// assert!(pause.is_paused());
    /// pause.resume();
    /// assert!(!pause.is_paused());
    /// ```
    pub fn name(self, name: impl Into<String>) -> Self {
        let shared = &self.shared;
        // Registered with the switch's state now; a race with a pause made
        // at this very moment on another clone may be off by that pause.
        let _ = shared.metrics.get_or_init(|| {
            PauseMetrics::new(
                Name::new(name),
                shared.manual.load(Ordering::SeqCst),
                shared.holds.load(Ordering::SeqCst),
            )
        });
        self
    }

    /// Pauses until [`resume`](Self::resume) is called (on any clone).
    /// Pausing a paused handle does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::PauseHandle;
    ///
    /// let pause = PauseHandle::new();
    /// pause.pause();
    /// pause.pause();
    /// assert!(pause.is_paused());
    /// pause.resume();
    /// assert!(!pause.is_paused());
    /// ```
    pub fn pause(&self) {
        self.shared.set_manual(true, "");
    }

    /// Lifts a pause made by [`pause`](Self::pause). The handle stays paused
    /// while any [`PauseGuard`] is held.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::PauseHandle;
    ///
    /// let pause = PauseHandle::new();
    /// pause.pause();
    /// let guard = pause.hold();
    /// pause.resume();
    /// assert!(pause.is_paused()); // the guard still holds
    /// drop(guard);
    /// assert!(!pause.is_paused());
    /// ```
    pub fn resume(&self) {
        self.shared.set_manual(false, "resume");
        self.shared.lift();
    }

    /// Pauses until the returned guard is dropped. Guards count: the handle
    /// stays paused while any is alive, whatever
    /// [`resume`](Self::resume) says. Use it to pause for the length of a
    /// scope (a backoff, a reconnect) without racing other users of the
    /// switch.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::PauseHandle;
    ///
    /// let pause = PauseHandle::new();
    /// let (a, b) = (pause.hold(), pause.hold());
    /// drop(a);
    /// assert!(pause.is_paused());
    /// drop(b);
    /// assert!(!pause.is_paused());
    /// ```
    pub fn hold(&self) -> PauseGuard {
        PauseGuard::new(&self.shared)
    }

    /// Whether sources are paused now.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::resilience::PauseHandle;
    ///
    /// let pause = PauseHandle::new();
    /// assert!(!pause.is_paused());
    /// let guard = pause.hold();
    /// assert!(pause.is_paused());
    /// ```
    pub fn is_paused(&self) -> bool {
        self.shared.is_paused()
    }

    /// Waits while the handle is paused: resolves at once when it is not,
    /// otherwise as soon as it is resumed (by [`resume`](Self::resume), the
    /// last guard being dropped, or the last *other* handle being dropped).
    ///
    /// Use it to make a hand-written producer pausable:
    /// `loop { pause.paused().await; produce().await; }`.
    ///
    /// If this handle is the last one and it was paused with
    /// [`pause`](Self::pause), nobody else can resume it: the call waits
    /// until the guards are gone *and* something resumes it, which is
    /// nothing. Keep another handle where the decision is made.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it holds nothing and changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::resilience::PauseHandle;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let pause = PauseHandle::new();
    /// pause.pause();
    /// let resumer = {
    ///     let pause = pause.clone();
    ///     tokio::spawn(async move {
    ///         tokio::time::sleep(Duration::from_secs(1)).await;
    ///         pause.resume();
    ///     })
    /// };
    /// let start = tokio::time::Instant::now();
    /// pause.paused().await;
    /// assert_eq!(start.elapsed(), Duration::from_secs(1));
    /// resumer.await.unwrap();
    /// # }
    /// ```
    pub async fn paused(&self) {
        loop {
            let lifted = self.shared.lifted();
            tokio::pin!(lifted);
            lifted.as_mut().enable();
            if !self.shared.is_paused() {
                return;
            }
            lifted.await;
        }
    }

    pub(crate) fn shared(&self) -> &Arc<PauseShared> {
        &self.shared
    }
}

impl Default for PauseHandle {
    fn default() -> Self {
        PauseHandle::new()
    }
}

impl Clone for PauseHandle {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::SeqCst);
        PauseHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for PauseHandle {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Nobody is left to resume a manual pause: lift it rather than
            // leave a pausable source waiting forever.
            self.shared.set_manual(false, "last handle dropped");
            self.shared.lift();
        }
    }
}

impl fmt::Debug for PauseHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PauseHandle")
            .field("paused", &self.is_paused())
            .field("manual", &self.shared.manual.load(Ordering::SeqCst))
            .field("holds", &self.shared.holds.load(Ordering::SeqCst))
            .finish()
    }
}

/// Keeps a [`PauseHandle`] paused until dropped; from
/// [`PauseHandle::hold`].
#[must_use = "the pause is lifted as soon as the guard is dropped"]
pub struct PauseGuard {
    shared: Arc<PauseShared>,
}

impl PauseGuard {
    pub(crate) fn new(shared: &Arc<PauseShared>) -> PauseGuard {
        shared.holds.fetch_add(1, Ordering::SeqCst);
        if let Some(metrics) = shared.metrics.get() {
            metrics.holds_taken.inc();
            metrics.holds.inc();
        }
        PauseGuard {
            shared: Arc::clone(shared),
        }
    }
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        self.shared.holds.fetch_sub(1, Ordering::SeqCst);
        if let Some(metrics) = self.shared.metrics.get() {
            metrics.holds.dec();
        }
        self.shared.lift();
    }
}

impl fmt::Debug for PauseGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PauseGuard").finish_non_exhaustive()
    }
}
