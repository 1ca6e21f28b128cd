//! The list of every series flowgate records, for [`describe`] and for
//! tooling (dashboards, tests).

/// Which kind of series a [`MetricInfo`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A monotonic counter (`_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution.
    Histogram,
}

/// One series flowgate records: its name, kind, unit, extra labels and help
/// text (the same as the table in [the module docs](crate::metrics)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricInfo {
    /// The series name, e.g. `flowgate_batch_items_submitted_total`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The unit, as the `metrics` crate names it.
    pub unit: metrics::Unit,
    /// Labels besides `name`, with their fixed values, e.g.
    /// `&[("reason", &["full", "closed"])]`.
    pub labels: &'static [(&'static str, &'static [&'static str])],
    /// What it counts or measures (the Prometheus `# HELP` line).
    pub help: &'static str,
}

/// Every series flowgate records, in the order of the table in
/// [the module docs](crate::metrics).
///
/// ```
/// let names: Vec<_> = flowgate::metrics::METRICS.iter().map(|m| m.name).collect();
/// assert!(names.iter().all(|n| n.starts_with("flowgate_")));
/// ```
pub const METRICS: &[MetricInfo] = &[
    // ---- batch: Batcher, KeyedBatcher ----
    MetricInfo {
        name: "flowgate_batch_items_submitted_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items accepted by a batcher.",
    },
    MetricInfo {
        name: "flowgate_batch_items_flushed_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("outcome", &["ok", "error", "panic", "mismatch", "closed"])],
        help: "Items whose batch resolved, by outcome (closed: the worker stopped before flushing them).",
    },
    MetricInfo {
        name: "flowgate_batch_items_pending",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items submitted and not yet handed to the flush function.",
    },
    MetricInfo {
        name: "flowgate_batch_items_flushing",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items handed to the flush function and not yet resolved.",
    },
    MetricInfo {
        name: "flowgate_batch_submitters_waiting",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Submitters waiting for room in a full batcher.",
    },
    MetricInfo {
        name: "flowgate_batch_rejected_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("reason", &["closed", "full"])],
        help: "Submissions refused, by reason.",
    },
    MetricInfo {
        name: "flowgate_batch_flushes_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[(
            "trigger",
            &[
                "size",
                "bytes",
                "delay",
                "flush",
                "close",
                "open_keys",
                "full",
            ],
        )],
        help: "Batches handed to the flush function, by what sealed them (open_keys, full: keyed batchers only).",
    },
    MetricInfo {
        name: "flowgate_batch_flushes_completed_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("outcome", &["ok", "error", "panic", "mismatch"])],
        help: "Flushes whose future completed, by outcome.",
    },
    MetricInfo {
        name: "flowgate_batch_flush_size",
        kind: Kind::Histogram,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items per flush.",
    },
    MetricInfo {
        name: "flowgate_batch_flush_duration_seconds",
        kind: Kind::Histogram,
        unit: metrics::Unit::Seconds,
        labels: &[],
        help: "Time from handing a batch to the flush function until its future completed.",
    },
    MetricInfo {
        name: "flowgate_batch_oldest_item_age_seconds",
        kind: Kind::Histogram,
        unit: metrics::Unit::Seconds,
        labels: &[],
        help: "Time a batch's oldest item waited, from its arrival until the batch's flush started.",
    },
    MetricInfo {
        name: "flowgate_batch_open_keys",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Keys with an open batch (KeyedBatcher only).",
    },
    // ---- dataloader ----
    MetricInfo {
        name: "flowgate_dataloader_loads_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Calls of load (each key of load_many counts).",
    },
    MetricInfo {
        name: "flowgate_dataloader_cache_hits_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Loads answered from the cache.",
    },
    MetricInfo {
        name: "flowgate_dataloader_cache_misses_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Cache lookups that found no value.",
    },
    MetricInfo {
        name: "flowgate_dataloader_joined_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Loads that waited on a fetch of their key already in progress.",
    },
    MetricInfo {
        name: "flowgate_dataloader_fetch_size",
        kind: Kind::Histogram,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Keys per call of the batch fetch function.",
    },
    MetricInfo {
        name: "flowgate_dataloader_fetch_errors_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("reason", &["error", "panic"])],
        help: "Calls of the batch fetch function that failed as a whole, by reason.",
    },
    MetricInfo {
        name: "flowgate_dataloader_key_results_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[(
            "outcome",
            &[
                "ok",
                "key_error",
                "missing",
                "fetch_error",
                "panic",
                "closed",
            ],
        )],
        help: "Keys submitted for fetching, by their result.",
    },
    // ---- broadcast ----
    MetricInfo {
        name: "flowgate_broadcast_events_published_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Events published to a stream (counted a block of 128 at a time; exact at close and while subscribers keep up).",
    },
    MetricInfo {
        name: "flowgate_broadcast_subscribers",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Live subscribers of a stream.",
    },
    MetricInfo {
        name: "flowgate_broadcast_subscribers_left_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("reason", &["finished", "dropped"])],
        help: "Subscribers dropped, by whether they had read to the end of the closed stream.",
    },
    MetricInfo {
        name: "flowgate_broadcast_events_buffered",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Events held for lagging subscribers, in whole blocks of 128 (the slowest subscriber's lag, to a block).",
    },
    MetricInfo {
        name: "flowgate_broadcast_publishers_waiting",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Publish and reserve calls waiting for room in a bounded stream.",
    },
    MetricInfo {
        name: "flowgate_broadcast_publish_rejected_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("reason", &["full", "closed"])],
        help: "Publishes refused (the event handed back), by reason.",
    },
    // ---- coalesce ----
    MetricInfo {
        name: "flowgate_coalesce_items_enqueued_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("outcome", &["queued", "merged"])],
        help: "Items accepted by a coalescing queue: queued a new key, or merged into a queued key.",
    },
    MetricInfo {
        name: "flowgate_coalesce_items_dequeued_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items taken by consumers of a coalescing queue.",
    },
    MetricInfo {
        name: "flowgate_coalesce_items_dropped_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items dropped unprocessed because the last consumer was dropped.",
    },
    MetricInfo {
        name: "flowgate_coalesce_keys_queued",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Entries (keys, or windowed batches) held by a coalescing queue: what depth bounds.",
    },
    MetricInfo {
        name: "flowgate_coalesce_items_queued",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items held by a coalescing queue.",
    },
    MetricInfo {
        name: "flowgate_coalesce_enqueuers_waiting",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Enqueue calls waiting for room in a coalescing queue.",
    },
    MetricInfo {
        name: "flowgate_coalesce_enqueue_rejected_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("reason", &["depth_full", "width_full", "closed"])],
        help: "Enqueues refused (key and item handed back), by reason.",
    },
    MetricInfo {
        name: "flowgate_coalesce_batches_released_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("trigger", &["window", "width", "close"])],
        help: "Windowed batches released to consumers, by what released them.",
    },
    MetricInfo {
        name: "flowgate_coalesce_batch_size",
        kind: Kind::Histogram,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items in a windowed batch when it was released.",
    },
    // ---- group ----
    MetricInfo {
        name: "flowgate_group_ops_added_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Operations added to call groups.",
    },
    MetricInfo {
        name: "flowgate_group_ops_finished_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("outcome", &["ok", "error", "abandoned", "timed_out"])],
        help: "Operation outcomes recorded in call group results, by outcome.",
    },
    MetricInfo {
        name: "flowgate_group_ops_late_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Operations that finished after their group timed out or was dropped (result dropped).",
    },
    MetricInfo {
        name: "flowgate_group_ops_in_flight",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Operations added and not yet finished or dropped.",
    },
    MetricInfo {
        name: "flowgate_group_groups_finished_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("outcome", &["complete", "timed_out", "dropped"])],
        help: "Call groups that ended, by how: complete, deadline passed, or dropped first.",
    },
    MetricInfo {
        name: "flowgate_group_duration_seconds",
        kind: Kind::Histogram,
        unit: metrics::Unit::Seconds,
        labels: &[],
        help: "Time from a call group's first operation until it completed or timed out.",
    },
    // ---- idempotency ----
    MetricInfo {
        name: "flowgate_idempotency_effects_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("outcome", &["ok", "error"])],
        help: "Idempotent effects run, by result.",
    },
    MetricInfo {
        name: "flowgate_idempotency_skipped_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Runs skipped because their key was already processed.",
    },
    MetricInfo {
        name: "flowgate_idempotency_store_errors_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("reason", &["lookup", "record"])],
        help: "Idempotency store failures: lookup (effect not run) or record (after the effect ran).",
    },
    MetricInfo {
        name: "flowgate_idempotency_effects_running",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Idempotent effects running now.",
    },
    MetricInfo {
        name: "flowgate_idempotency_runs_waiting",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Runs waiting for a concurrent run of the same key.",
    },
    // ----- pipeline stages -----
    MetricInfo {
        name: "flowgate_pipeline_items_in_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items a named pipeline stage pulled from upstream.",
    },
    MetricInfo {
        name: "flowgate_pipeline_items_out_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items a named pipeline stage yielded downstream (batch stages: the items of the yielded batches).",
    },
    MetricInfo {
        name: "flowgate_pipeline_in_flight",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Calls (or attempts, or writes) a named pipeline stage is running now.",
    },
    MetricInfo {
        name: "flowgate_pipeline_held",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items a named pipeline stage holds besides its calls in flight: waiting for room, for their key, for an earlier output, backing off, or in the open batch.",
    },
    MetricInfo {
        name: "flowgate_pipeline_items_dropped_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("reason", &["duplicate", "throttled", "superseded"])],
        help: "Items a named lossy pipeline stage dropped, by reason.",
    },
    MetricInfo {
        name: "flowgate_pipeline_timeouts_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Timeouts a named item_timeout or idle_timeout stage reported.",
    },
    MetricInfo {
        name: "flowgate_pipeline_batches_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("trigger", &["size", "delay", "flush", "end"])],
        help: "Batches a named batch stage yielded, by what closed them.",
    },
    MetricInfo {
        name: "flowgate_pipeline_batch_size",
        kind: Kind::Histogram,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items per batch yielded by a named batch stage.",
    },
    MetricInfo {
        name: "flowgate_pipeline_batch_open_seconds",
        kind: Kind::Histogram,
        unit: metrics::Unit::Seconds,
        labels: &[],
        help: "How long each batch of a named batch stage was open, from its first item to its yield.",
    },
    MetricInfo {
        name: "flowgate_pipeline_call_duration_seconds",
        kind: Kind::Histogram,
        unit: metrics::Unit::Seconds,
        labels: &[],
        help: "Duration of each call of a named par_map_adaptive stage, from admission to its end.",
    },
    // ----- limiters -----
    MetricInfo {
        name: "flowgate_limit_granted_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Cells or permits a named limiter handed out.",
    },
    MetricInfo {
        name: "flowgate_limit_waiting",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Callers waiting on a named limiter now.",
    },
    MetricInfo {
        name: "flowgate_limit_rejected_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("reason", &["not_ready", "no_capacity"])],
        help: "try_acquire calls a named limiter refused, by reason.",
    },
    MetricInfo {
        name: "flowgate_limit_wait_seconds",
        kind: Kind::Histogram,
        unit: metrics::Unit::Seconds,
        labels: &[],
        help: "How long each acquire on a named rate limiter waited (0 when it passed at once).",
    },
    MetricInfo {
        name: "flowgate_limit_in_flight",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Permits of a named InFlightLimit or FairLimit held now.",
    },
    MetricInfo {
        name: "flowgate_limit_keys",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Keys a named KeyedRateLimiter keeps state for now.",
    },
    // CircuitBreaker
    MetricInfo {
        name: "flowgate_breaker_state",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "The breaker's state: 0 closed, 1 half-open, 2 open.",
    },
    MetricInfo {
        name: "flowgate_breaker_transitions_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("state", &["closed", "half_open", "open"])],
        help: "Transitions into each state.",
    },
    MetricInfo {
        name: "flowgate_breaker_calls_permitted_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Calls admitted (permits handed out).",
    },
    MetricInfo {
        name: "flowgate_breaker_calls_rejected_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("reason", &["open", "half_open"])],
        help: "Calls rejected without running: the breaker was open, or half-open with its probes busy.",
    },
    MetricInfo {
        name: "flowgate_breaker_outcomes_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("outcome", &["success", "failure"])],
        help: "Outcomes reported on permits (a permit dropped reports none).",
    },
    // Retry
    MetricInfo {
        name: "flowgate_retry_calls_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Calls (retry loops) started, by run, par_map_retry and guards.",
    },
    MetricInfo {
        name: "flowgate_retry_attempts_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Attempts started, first attempts included.",
    },
    MetricInfo {
        name: "flowgate_retry_retries_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Retries scheduled after a failed attempt.",
    },
    MetricInfo {
        name: "flowgate_retry_gave_up_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[(
            "reason",
            &["not_retryable", "attempts_exhausted", "budget_exhausted"],
        )],
        help: "Calls that failed for good, by why the policy stopped.",
    },
    MetricInfo {
        name: "flowgate_retry_backoff_seconds",
        kind: Kind::Histogram,
        unit: metrics::Unit::Seconds,
        labels: &[],
        help: "Delays slept before retries.",
    },
    // AdaptiveLimit
    MetricInfo {
        name: "flowgate_adaptive_limit",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "The concurrency limit now.",
    },
    MetricInfo {
        name: "flowgate_adaptive_in_flight",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Calls admitted and not finished (every user: calls, stages, tower layers, guards).",
    },
    MetricInfo {
        name: "flowgate_adaptive_waiting",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Callers of acquire (and run, guards) waiting for room.",
    },
    MetricInfo {
        name: "flowgate_adaptive_increases_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Times the limit grew (additive increase).",
    },
    MetricInfo {
        name: "flowgate_adaptive_decreases_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Times the limit shrank (multiplicative decrease).",
    },
    MetricInfo {
        name: "flowgate_adaptive_overloads_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Calls finished with back-pressure (Outcome::Overload).",
    },
    MetricInfo {
        name: "flowgate_adaptive_rtt_seconds",
        kind: Kind::Histogram,
        unit: metrics::Unit::Seconds,
        labels: &[],
        help: "Round-trip times of the calls finished with Success or Overload: the samples the limit adapts on.",
    },
    // Guard
    MetricInfo {
        name: "flowgate_guard_calls_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("outcome", &["ok", "error"])],
        help: "Guarded calls that returned, by outcome.",
    },
    MetricInfo {
        name: "flowgate_guard_attempt_failures_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("reason", &["timeout", "rejected", "error"])],
        help: "Failed attempts: timed out, rejected by the breaker, or the call's own error.",
    },
    // PauseHandle
    MetricInfo {
        name: "flowgate_pause_manual",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "1 while paused by pause(), else 0.",
    },
    MetricInfo {
        name: "flowgate_pause_holds",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Live PauseGuards (retries backing off, ...); paused while this or the manual gauge is above 0.",
    },
    MetricInfo {
        name: "flowgate_pause_pauses_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Manual pauses made (pause() on a running switch).",
    },
    MetricInfo {
        name: "flowgate_pause_resumes_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Manual pauses lifted (resume(), or the last handle dropped).",
    },
    MetricInfo {
        name: "flowgate_pause_holds_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Pause guards taken.",
    },
    // DeadLetters
    MetricInfo {
        name: "flowgate_dead_letter_received_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Dead letters taken from the stream.",
    },
    MetricInfo {
        name: "flowgate_dead_letter_discarded_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Dead letters still queued when the stream was dropped.",
    },
    // CursorSource
    MetricInfo {
        name: "flowgate_source_pages_fetched_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Pages fetched (empty ones included).",
    },
    MetricInfo {
        name: "flowgate_source_items_fetched_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items fetched.",
    },
    MetricInfo {
        name: "flowgate_source_items_emitted_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items yielded by the stream.",
    },
    MetricInfo {
        name: "flowgate_source_items_acked_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items acknowledged.",
    },
    MetricInfo {
        name: "flowgate_source_items_unacked_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Yielded items whose CursorAck was dropped without ack() (the source stops).",
    },
    MetricInfo {
        name: "flowgate_source_items_dropped_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Fetched items never yielded (dropped by stop_now or with the stream).",
    },
    MetricInfo {
        name: "flowgate_source_items_in_flight",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Items yielded and neither acknowledged nor dropped yet.",
    },
    MetricInfo {
        name: "flowgate_source_pages_in_flight",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Pages being fetched, or fetched and not committed (what max_pages_in_flight bounds); 0 once the driver is gone.",
    },
    MetricInfo {
        name: "flowgate_source_fetch_errors_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Failed fetches.",
    },
    MetricInfo {
        name: "flowgate_source_fetch_seconds",
        kind: Kind::Histogram,
        unit: metrics::Unit::Seconds,
        labels: &[],
        help: "Duration of successful fetches.",
    },
    MetricInfo {
        name: "flowgate_source_commits_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[("outcome", &["ok", "error"])],
        help: "Commits to the checkpoint store, by outcome.",
    },
    MetricInfo {
        name: "flowgate_source_commit_seconds",
        kind: Kind::Histogram,
        unit: metrics::Unit::Seconds,
        labels: &[],
        help: "Duration of commits to the checkpoint store.",
    },
    MetricInfo {
        name: "flowgate_source_load_errors_total",
        kind: Kind::Counter,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Failed loads of the checkpoint (the source stops).",
    },
    MetricInfo {
        name: "flowgate_source_paused",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "1 while the source is paused, else 0 (0 once the driver is gone).",
    },
    // Watermark, SharedWatermark, PartitionedWatermark
    MetricInfo {
        name: "flowgate_source_watermark_commit_point",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "The commit point (0 until there is one; exact up to 2^53). Not for PartitionedWatermark.",
    },
    MetricInfo {
        name: "flowgate_source_watermark_pending",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Offsets tracked and not passed yet (summed over the partitions of a PartitionedWatermark).",
    },
    MetricInfo {
        name: "flowgate_source_watermark_partitions",
        kind: Kind::Gauge,
        unit: metrics::Unit::Count,
        labels: &[],
        help: "Partitions of a PartitionedWatermark.",
    },
];

/// Describes every series of [`METRICS`] (unit and help text) to the
/// installed recorder: call it once, after installing the recorder, so that
/// an exporter prints `# HELP` lines and units.
///
/// Optional: series are recorded without it.
///
/// ```
/// // With no recorder installed this does nothing.
/// flowgate::metrics::describe();
/// ```
pub fn describe() {
    for info in METRICS {
        match info.kind {
            Kind::Counter => metrics::describe_counter!(info.name, info.unit, info.help),
            Kind::Gauge => metrics::describe_gauge!(info.name, info.unit, info.help),
            Kind::Histogram => metrics::describe_histogram!(info.name, info.unit, info.help),
        }
    }
}
