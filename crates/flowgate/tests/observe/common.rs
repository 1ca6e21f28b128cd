//! A test recorder and a test subscriber.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

/// Series recorded in one test: a `metrics` recorder of its own, read without
/// resetting anything (unlike `metrics-util`'s `DebuggingRecorder`, whose
/// snapshots swap counters and gauges to zero).
#[cfg(feature = "metrics")]
#[derive(Clone)]
pub(crate) struct Recorded {
    registry:
        Arc<metrics_util::registry::Registry<metrics::Key, metrics_util::registry::AtomicStorage>>,
}

#[cfg(feature = "metrics")]
impl Recorded {
    pub(crate) fn new() -> Self {
        Recorded {
            registry: Arc::new(metrics_util::registry::Registry::atomic()),
        }
    }

    /// Runs `f` with this recorder current: whatever `f` builds registers
    /// its series here.
    pub(crate) fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        metrics::with_local_recorder(self, f)
    }

    fn key(metric: &str, labels: &[(&str, &str)]) -> metrics::Key {
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(k.to_string(), v.to_string()))
            .collect();
        metrics::Key::from_parts(metric.to_string(), labels)
    }

    /// The counter's value; panics (naming the series and what exists) if it
    /// was never registered.
    pub(crate) fn counter(&self, metric: &str, labels: &[(&str, &str)]) -> u64 {
        let key = Self::key(metric, labels);
        match self.registry.get_counter(&key) {
            Some(c) => c.load(std::sync::atomic::Ordering::SeqCst),
            None => panic!("no counter {key:?}; registered: {:?}", self.names()),
        }
    }

    /// The gauge's value; panics if it was never registered.
    pub(crate) fn gauge(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let key = Self::key(metric, labels);
        match self.registry.get_gauge(&key) {
            Some(g) => f64::from_bits(g.load(std::sync::atomic::Ordering::SeqCst)),
            None => panic!("no gauge {key:?}; registered: {:?}", self.names()),
        }
    }

    /// Every value recorded by the histogram so far; panics if it was never
    /// registered.
    pub(crate) fn histogram(&self, metric: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        let key = Self::key(metric, labels);
        match self.registry.get_histogram(&key) {
            Some(h) => h.data(),
            None => panic!("no histogram {key:?}; registered: {:?}", self.names()),
        }
    }

    /// Every registered series, as `name{labels}` strings, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |key: &metrics::Key| {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            out.push(format!("{}{{{}}}", key.name(), labels.join(",")));
        };
        self.registry.visit_counters(|k, _| push(k));
        self.registry.visit_gauges(|k, _| push(k));
        self.registry.visit_histograms(|k, _| push(k));
        out.sort();
        out
    }

    /// Whether nothing at all was registered (an unnamed primitive).
    pub(crate) fn is_empty(&self) -> bool {
        self.names().is_empty()
    }
}

#[cfg(feature = "metrics")]
impl metrics::Recorder for Recorded {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        self.registry
            .get_or_create_counter(key, |c| metrics::Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        self.registry
            .get_or_create_gauge(key, |g| metrics::Gauge::from_arc(g.clone()))
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        self.registry
            .get_or_create_histogram(key, |h| metrics::Histogram::from_arc(h.clone()))
    }
}

/// One span seen by [`Traced`].
#[derive(Clone, Debug)]
pub(crate) struct SpanRecord {
    pub(crate) id: u64,
    pub(crate) target: String,
    pub(crate) name: String,
    pub(crate) level: tracing::Level,
    /// Field values as `Debug`-printed strings (strings unquoted), including
    /// those recorded after creation.
    pub(crate) fields: Vec<(String, String)>,
    /// Ids of the spans this one follows from.
    pub(crate) follows_from: Vec<u64>,
    pub(crate) parent: Option<u64>,
    pub(crate) closed: bool,
}

impl SpanRecord {
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One event seen by [`Traced`].
#[derive(Clone, Debug)]
pub(crate) struct EventRecord {
    pub(crate) target: String,
    pub(crate) level: tracing::Level,
    pub(crate) message: String,
    pub(crate) fields: Vec<(String, String)>,
    /// The span the event was emitted in.
    pub(crate) span: Option<u64>,
}

impl EventRecord {
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Log {
    spans: Vec<SpanRecord>,
    events: Vec<EventRecord>,
}

/// Spans and events recorded in one test (every level, every target).
#[derive(Clone, Default)]
pub(crate) struct Traced {
    log: Arc<Mutex<Log>>,
}

impl Traced {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records what this thread emits until the guard drops.
    ///
    /// One subscriber is installed globally, once, and routes each span and
    /// event to the `Traced` of the thread it happens on. (Thread-local
    /// subscribers, one per test, race with tracing's global per-callsite
    /// interest cache when tests run in parallel: an event could be missed.)
    pub(crate) fn set_default(&self) -> TracedGuard {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            use tracing_subscriber::layer::SubscriberExt;
            let subscriber = tracing_subscriber::registry().with(Layer);
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber");
        });
        CURRENT.with(|c| *c.borrow_mut() = Some(self.log.clone()));
        TracedGuard(())
    }

    pub(crate) fn spans(&self) -> Vec<SpanRecord> {
        self.log.lock().unwrap().spans.clone()
    }

    /// Spans of `target` named `name`.
    pub(crate) fn spans_named(&self, target: &str, name: &str) -> Vec<SpanRecord> {
        self.spans()
            .into_iter()
            .filter(|s| s.target == target && s.name == name)
            .collect()
    }

    pub(crate) fn events(&self) -> Vec<EventRecord> {
        self.log.lock().unwrap().events.clone()
    }

    /// Events at `level` or more severe whose target starts with `target`.
    pub(crate) fn events_at_least(&self, level: tracing::Level, target: &str) -> Vec<EventRecord> {
        self.events()
            .into_iter()
            .filter(|e| e.level <= level && e.target.starts_with(target))
            .collect()
    }
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Arc<Mutex<Log>>>> = const { std::cell::RefCell::new(None) };
}

/// The log of the current thread's [`Traced`], if one is set.
fn current() -> Option<Arc<Mutex<Log>>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Stops recording this thread's spans and events when dropped.
pub(crate) struct TracedGuard(());

impl Drop for TracedGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

struct Layer;

#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_string(), value.to_string()));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((field.name().to_string(), format!("{value:?}")));
    }
}

impl<S> tracing_subscriber::Layer<S> for Layer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(log) = current() else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let parent = if attrs.is_root() {
            None
        } else if let Some(p) = attrs.parent() {
            Some(p.into_u64())
        } else {
            ctx.current_span().id().map(|i| i.into_u64())
        };
        let meta = attrs.metadata();
        log.lock().unwrap().spans.push(SpanRecord {
            id: id.into_u64(),
            target: meta.target().to_string(),
            name: meta.name().to_string(),
            level: *meta.level(),
            fields: fields.0,
            follows_from: Vec::new(),
            parent,
            closed: false,
        });
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(log) = current() else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        let mut log = log.lock().unwrap();
        if let Some(span) = log
            .spans
            .iter_mut()
            .rev()
            .find(|s| s.id == id.into_u64() && !s.closed)
        {
            span.fields.extend(fields.0);
        }
    }

    fn on_follows_from(
        &self,
        span: &tracing::span::Id,
        follows: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(log) = current() else { return };
        let mut log = log.lock().unwrap();
        if let Some(s) = log
            .spans
            .iter_mut()
            .rev()
            .find(|s| s.id == span.into_u64() && !s.closed)
        {
            s.follows_from.push(follows.into_u64());
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(log) = current() else { return };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields
            .0
            .iter()
            .position(|(k, _)| k == "message")
            .map(|i| fields.0.remove(i).1)
            .unwrap_or_default();
        let meta = event.metadata();
        let span = ctx.event_span(event).map(|s| s.id().into_u64());
        log.lock().unwrap().events.push(EventRecord {
            target: meta.target().to_string(),
            level: *meta.level(),
            message,
            fields: fields.0,
            span,
        });
    }

    fn on_close(&self, id: tracing::span::Id, _: tracing_subscriber::layer::Context<'_, S>) {
        let Some(log) = current() else { return };
        let mut log = log.lock().unwrap();
        if let Some(s) = log
            .spans
            .iter_mut()
            .rev()
            .find(|s| s.id == id.into_u64() && !s.closed)
        {
            s.closed = true;
        }
    }
}
