//! [`Progress`]: counts and rates per pipeline stage, recorded by the
//! [`observe`](super::PipelineExt::observe) stage; with the `progress-bar`
//! feature, an [`indicatif`] bar per stage.
//!
//! [`indicatif`]: https://docs.rs/indicatif

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{Fuse, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::sync::lock;

/// One stage's counters, shared by its `Observe` stream and the `Progress`.
#[derive(Debug)]
struct StageState {
    name: Arc<str>,
    items: AtomicU64,
    /// The first poll of the stage.
    started: OnceLock<Instant>,
    /// When the stage's upstream ended.
    finished: OnceLock<Instant>,
    dropped: AtomicBool,
}

/// A handle on the progress of a pipeline's stages; see the
/// [`observe`](super::PipelineExt::observe) stage.
///
/// Cheap to clone; every clone sees the same stages. Read it from any task
/// with [`snapshot`](Self::snapshot) — to log, to export as metrics, or to
/// decide to slow a source down. Counting costs one relaxed atomic add per
/// item.
///
/// Times are read from tokio's clock, so rates are exact under paused time.
///
/// # Examples
///
/// ```
/// use flowgate::pipeline::Progress;
/// use flowgate::prelude::*;
/// use futures_util::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let progress = Progress::new();
/// let n = stream::iter(0..100u32)
///     .observe(&progress, "source")
///     .filter(|x| std::future::ready(x % 2 == 0))
///     .observe(&progress, "even")
///     .count()
///     .await;
/// assert_eq!(n, 50);
/// let stages = progress.snapshot();
/// assert_eq!((stages[0].name(), stages[0].items()), ("source", 100));
/// assert_eq!((stages[1].name(), stages[1].items()), ("even", 50));
/// assert!(stages.iter().all(|stage| stage.is_finished()));
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Progress {
    stages: Arc<Mutex<Vec<Arc<StageState>>>>,
}

impl Progress {
    /// A progress handle with no stages yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::pipeline::Progress;
    ///
    /// let progress = Progress::new();
    /// assert!(progress.snapshot().is_empty(), "no stage observed yet");
    /// ```
    pub fn new() -> Progress {
        Progress::default()
    }

    /// The counters of every stage observed so far, in the order the stages
    /// were created.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::Progress;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let progress = Progress::new();
    /// stream::iter(0..4u32)
    ///     .then(|x| async move {
    ///         tokio::time::sleep(Duration::from_millis(500)).await;
    ///         x
    ///     })
    ///     .observe(&progress, "slow")
    ///     .for_each(|_| async {})
    ///     .await;
    /// let stage = &progress.snapshot()[0];
    /// assert_eq!(progress.snapshot().len(), 1);
    /// assert_eq!((stage.name(), stage.items()), ("slow", 4));
    /// # }
    /// ```
    pub fn snapshot(&self) -> Vec<StageSnapshot> {
        let now = Instant::now();
        lock(&self.stages)
            .iter()
            .map(|stage| {
                let items = stage.items.load(Ordering::Relaxed);
                let elapsed = match (stage.started.get(), stage.finished.get()) {
                    (Some(start), Some(end)) => end.saturating_duration_since(*start),
                    (Some(start), None) => now.saturating_duration_since(*start),
                    (None, _) => Duration::ZERO,
                };
                StageSnapshot {
                    name: Arc::clone(&stage.name),
                    items,
                    elapsed,
                    finished: stage.finished.get().is_some(),
                    dropped: stage.dropped.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    fn register(&self, name: &str) -> Arc<StageState> {
        let stage = Arc::new(StageState {
            name: Arc::from(name),
            items: AtomicU64::new(0),
            started: OnceLock::new(),
            finished: OnceLock::new(),
            dropped: AtomicBool::new(false),
        });
        lock(&self.stages).push(Arc::clone(&stage));
        stage
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("stages", &self.snapshot())
            .finish()
    }
}

/// The counters of one stage at one moment, from [`Progress::snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct StageSnapshot {
    name: Arc<str>,
    items: u64,
    elapsed: Duration,
    finished: bool,
    dropped: bool,
}

impl StageSnapshot {
    /// The stage's name, as given to [`observe`](super::PipelineExt::observe).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::Progress;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let progress = Progress::new();
    /// stream::iter(0..4u32)
    ///     .then(|x| async move {
    ///         tokio::time::sleep(Duration::from_millis(500)).await;
    ///         x
    ///     })
    ///     .observe(&progress, "slow")
    ///     .for_each(|_| async {})
    ///     .await;
    /// let stage = &progress.snapshot()[0];
    /// assert_eq!(stage.name(), "slow");
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Items that passed the stage.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::Progress;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let progress = Progress::new();
    /// stream::iter(0..4u32)
    ///     .then(|x| async move {
    ///         tokio::time::sleep(Duration::from_millis(500)).await;
    ///         x
    ///     })
    ///     .observe(&progress, "slow")
    ///     .for_each(|_| async {})
    ///     .await;
    /// let stage = &progress.snapshot()[0];
    /// assert_eq!(stage.items(), 4);
    /// # }
    /// ```
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Time from the stage's first poll to now, or to its end once it has
    /// ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::Progress;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let progress = Progress::new();
    /// stream::iter(0..4u32)
    ///     .then(|x| async move {
    ///         tokio::time::sleep(Duration::from_millis(500)).await;
    ///         x
    ///     })
    ///     .observe(&progress, "slow")
    ///     .for_each(|_| async {})
    ///     .await;
    /// let stage = &progress.snapshot()[0];
    /// assert_eq!(stage.elapsed(), Duration::from_secs(2));
    /// # }
    /// ```
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Items per second over [`elapsed`](Self::elapsed); zero before any
    /// time has passed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::Progress;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let progress = Progress::new();
    /// stream::iter(0..4u32)
    ///     .then(|x| async move {
    ///         tokio::time::sleep(Duration::from_millis(500)).await;
    ///         x
    ///     })
    ///     .observe(&progress, "slow")
    ///     .for_each(|_| async {})
    ///     .await;
    /// let stage = &progress.snapshot()[0];
    /// assert_eq!(stage.rate(), 2.0, "4 items in 2 s");
    /// # }
    /// ```
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.items as f64 / secs
        } else {
            0.0
        }
    }

    /// Whether the stage's upstream has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowgate::pipeline::Progress;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let progress = Progress::new();
    /// stream::iter(0..4u32)
    ///     .then(|x| async move {
    ///         tokio::time::sleep(Duration::from_millis(500)).await;
    ///         x
    ///     })
    ///     .observe(&progress, "slow")
    ///     .for_each(|_| async {})
    ///     .await;
    /// let stage = &progress.snapshot()[0];
    /// assert!(stage.is_finished());
    /// # }
    /// ```
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether the stage's stream was dropped (before or after it ended).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::pipeline::Progress;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let progress = Progress::new();
    /// let mut stage = Box::pin(stream::iter(0..10u32).observe(&progress, "cut short"));
    /// assert_eq!(stage.next().await, Some(0));
    /// assert!(!progress.snapshot()[0].is_dropped());
    /// drop(stage);
    /// let snapshot = &progress.snapshot()[0];
    /// assert!(snapshot.is_dropped() && !snapshot.is_finished());
    /// # }
    /// ```
    pub fn is_dropped(&self) -> bool {
        self.dropped
    }
}

/// The stage's progress bar, if the feature is on.
#[cfg(feature = "progress-bar")]
type Bar = Option<indicatif::ProgressBar>;
#[cfg(not(feature = "progress-bar"))]
type Bar = ();

#[cfg(feature = "progress-bar")]
fn bar_inc(bar: &Bar) {
    if let Some(bar) = bar {
        bar.inc(1);
    }
}

#[cfg(not(feature = "progress-bar"))]
fn bar_inc(_bar: &Bar) {}

#[cfg(feature = "progress-bar")]
fn bar_finish(bar: &Bar) {
    if let Some(bar) = bar
        && !bar.is_finished()
    {
        bar.finish();
    }
}

#[cfg(not(feature = "progress-bar"))]
fn bar_finish(_bar: &Bar) {}

pin_project! {
    /// Stream for [`observe`](super::PipelineExt::observe): passes items
    /// through and counts them in a [`Progress`].
    #[must_use = "streams do nothing unless polled"]
    pub struct Observe<S> {
        #[pin]
        stream: Fuse<S>,
        stage: Arc<StageState>,
        bar: Bar,
    }

    impl<S> PinnedDrop for Observe<S> {
        fn drop(this: Pin<&mut Self>) {
            this.stage.dropped.store(true, Ordering::Relaxed);
        }
    }
}

impl<S: Stream> Observe<S> {
    pub(super) fn new(stream: S, progress: &Progress, name: &str) -> Self {
        Observe {
            stream: stream.fuse(),
            stage: progress.register(name),
            bar: Bar::default(),
        }
    }

    /// Also shows the stage on an [`indicatif::ProgressBar`]: the bar moves
    /// one step per item, its message is the stage's name, and it is
    /// finished when upstream ends.
    ///
    /// The bar's style decides what is shown; `{pos}` and `{per_sec}` give
    /// the count and the rate. Add bars to an `indicatif::MultiProgress` to
    /// show several stages.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::pipeline::Progress;
    /// use flowgate::prelude::*;
    /// use futures_util::{stream, StreamExt};
    /// use indicatif::{ProgressBar, ProgressStyle};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let progress = Progress::new();
    /// let bar = ProgressBar::hidden().with_style(
    ///     ProgressStyle::with_template("{msg}: {pos} items, {per_sec}").unwrap(),
    /// );
    /// let n = stream::iter(0..10u32)
    ///     .observe(&progress, "fetch")
    ///     .with_bar(bar.clone())
    ///     .count()
    ///     .await;
    /// assert_eq!((n, bar.position()), (10, 10));
    /// assert!(bar.is_finished());
    /// # }
    /// ```
    #[cfg(feature = "progress-bar")]
    #[cfg_attr(docsrs, doc(cfg(feature = "progress-bar")))]
    pub fn with_bar(mut self, bar: indicatif::ProgressBar) -> Self {
        bar.set_message(self.stage.name.to_string());
        self.bar = Some(bar);
        self
    }
}

impl<S: Stream> Stream for Observe<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let _ = this.stage.started.get_or_init(Instant::now);
        let polled = this.stream.poll_next(cx);
        match &polled {
            Poll::Ready(Some(_)) => {
                this.stage.items.fetch_add(1, Ordering::Relaxed);
                bar_inc(this.bar);
            }
            Poll::Ready(None) => {
                let _ = this.stage.finished.get_or_init(Instant::now);
                bar_finish(this.bar);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S: Stream> FusedStream for Observe<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

impl<S> fmt::Debug for Observe<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observe")
            .field("stage", &self.stage.name)
            .field("items", &self.stage.items.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
