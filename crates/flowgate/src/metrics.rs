//! What flowgate's primitives report: counters, gauges and histograms through
//! the [`metrics`](https://docs.rs/metrics) facade, and `tracing` spans and
//! events.
//!
//! # Metrics (feature `metrics`)
//!
//! With the `metrics` feature, every primitive that has a bound or a queue
//! records the series below through the `metrics` facade crate. flowgate
//! ships no exporter: install the recorder of your choice
//! (`metrics-exporter-prometheus`, as the `flowgate` binary does for
//! `--metrics-addr`, or any other) before building the primitives. Without
//! the feature there is no cost at all. With it and no recorder installed,
//! an unnamed primitive's updates are an inlined branch on an empty handle
//! and a named one's a call into a `metrics` no-op handle: measured, 1–5%
//! more instructions unnamed and 2–10% named on the hot paths of the
//! benchmarks (`dev/metrics-cost.sh`, BENCHMARKS.md).
//!
//! **A primitive records metrics once it has a name**: the `name` setter of
//! its builder (or stage). The name is the `name` label of every series of
//! that instance, so give each instance its own; any string is accepted as
//! given. Unnamed instances record nothing (two unnamed queues would
//! otherwise share one depth gauge). Handles are registered when the
//! primitive is built, with the recorder current at that moment (the global
//! one, or a [`metrics::with_local_recorder`](https://docs.rs/metrics/0.24/metrics/fn.with_local_recorder.html) scope), one series per label
//! value, so every series exists — at zero — from the start.
//!
//! How each primitive is named (a setter on its builder where it has one; a
//! constructor where clones or shared state exist from the start):
//!
//! | primitive | name it with |
//! |---|---|
//! | `Batcher`, `KeyedBatcher`, `DataLoader` | `name` on the builder |
//! | `Publisher`, `BoundedPublisher` | `Publisher::with_name(name)`, `BoundedPublisher::with_name(bound, name)` |
//! | `OpQueue` | `OpQueueBuilder::name` |
//! | `CallGroup`, `Idempotency` | `name` on the value |
//! | pipeline stages (`par_map`, `par_map_keyed`, `write_batches`, `write_chunks`, `rebatch`, `rate_limit`, …) | `name` on the stage: `stream.par_map(8, f).name("enrich")` |
//! | `RateLimiter`, `InFlightLimit` | `with_name` constructors |
//! | `KeyedRateLimiter`, `FairLimit`, `FairRate` | `name` on the builder |
//! | `CircuitBreaker`, `AdaptiveLimit`, `CursorSource` | `name` on the builder |
//! | `Retry`, `Guard`, `PauseHandle`, dead letters, watermarks | `name` on the value |
//!
//! Conventions: names start with `flowgate_<module>_`; counters end in
//! `_total`; durations are histograms in seconds (`_seconds`); extra labels
//! are fixed sets: `reason` (why an item was refused or dropped), `outcome`
//! (`ok`, `error`, …), `state`.
//!
//! ## Batcher and KeyedBatcher (`flowgate::batch`)
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_batch_items_submitted_total` | counter | `name` | Items accepted (`submit`, `try_submit`, `submit_with`, `try_submit_with`, `submit_and_wait`, permits). |
//! | `flowgate_batch_items_flushed_total` | counter | `name`, `outcome` = `ok`, `error`, `panic`, `mismatch`, `closed` | Items whose batch resolved, by outcome: flushed, the flush function's error, its panic, a wrong number of outputs, or `closed` (the worker was dropped before flushing them). |
//! | `flowgate_batch_items_pending` | gauge | `name` | Items submitted and not yet handed to the flush function: what `capacity` bounds. |
//! | `flowgate_batch_items_flushing` | gauge | `name` | Items handed to the flush function whose outcome is not resolved yet (with `resolve_in_order`, including finished batches held back for an earlier one). |
//! | `flowgate_batch_submitters_waiting` | gauge | `name` | Submitters waiting for room because the batcher is full (`submit`, `submit_with`, `submit_and_wait`, `reserve`). |
//! | `flowgate_batch_rejected_total` | counter | `name`, `reason` = `closed`, `full` | Submissions refused: `closed` (the batcher is closed, including submitters waiting for room when it closed, and `reserve`), `full` (`try_submit`/`try_submit_with` found no room). |
//! | `flowgate_batch_flushes_total` | counter | `name`, `trigger` = `size`, `bytes`, `delay`, `flush`, `close`, `open_keys`, `full` | Batches handed to the flush function, by what sealed them: `max_items`, `max_bytes`, `max_delay`, `flush()`, `close()` (or the last handle dropped), and for a `KeyedBatcher` only: the oldest open batch sent early to respect `max_open_keys` (`open_keys`) or to make room when full (`full`). |
//! | `flowgate_batch_flushes_completed_total` | counter | `name`, `outcome` = `ok`, `error`, `panic`, `mismatch` | Flushes whose future completed, by outcome (a flush cut short by a dropped worker never completes). |
//! | `flowgate_batch_flush_size` | histogram | `name` | Items per flush. |
//! | `flowgate_batch_flush_duration_seconds` | histogram | `name` | Time from handing a batch to the flush function until its future completed. |
//! | `flowgate_batch_oldest_item_age_seconds` | histogram | `name` | How long a batch's oldest item waited in the buffer: from its arrival until the batch's flush started (includes waiting for a flush slot, or behind the same key with `one_flush_per_key`). |
//! | `flowgate_batch_open_keys` | gauge | `name` | `KeyedBatcher` only: keys with an open batch. |
//!
//! ## DataLoader (`flowgate::dataloader`)
//!
//! Its batcher, named the same, also records every `flowgate_batch_*` series above (keys pending,
//! fetches by trigger, fetch duration, the time a key waited for its window).
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_dataloader_loads_total` | counter | `name` | Calls of `load` (each key of `load_many` counts). |
//! | `flowgate_dataloader_cache_hits_total` | counter | `name` | Loads answered from the cache. |
//! | `flowgate_dataloader_cache_misses_total` | counter | `name` | Cache lookups that found no value (stays 0 without a cache). |
//! | `flowgate_dataloader_joined_total` | counter | `name` | Loads that waited on a fetch of their key already in progress (deduplicated). |
//! | `flowgate_dataloader_fetch_size` | histogram | `name` | Keys per call of the batch fetch function. |
//! | `flowgate_dataloader_fetch_errors_total` | counter | `name`, `reason` = `error`, `panic` | Calls of the batch fetch function that failed as a whole: returned `Err`, or panicked. |
//! | `flowgate_dataloader_key_results_total` | counter | `name`, `outcome` = `ok`, `key_error`, `missing`, `fetch_error`, `panic`, `closed` | Keys submitted for fetching, by their result: a value, their own error, no entry, the whole fetch failed, it panicked, or the loader's worker stopped first. |
//!
//! ## Event stream (`flowgate::broadcast`: `Publisher`, `BoundedPublisher`, `SharedPublisher`, `Subscriber`)
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_broadcast_events_published_total` | counter | `name` | Events published. Counted a block (128 events) at a time, and brought up to date whenever the publisher wakes a waiting subscriber, finds no room (bounded), or closes: exact while subscribers keep up and at close, otherwise low by less than 128. |
//! | `flowgate_broadcast_subscribers` | gauge | `name` | Live subscribers (from `subscribe`, a `SubscribeHandle`, or cloning a subscriber). |
//! | `flowgate_broadcast_subscribers_left_total` | counter | `name`, `reason` = `finished`, `dropped` | Subscribers dropped: `finished` if it had read to the end of the closed stream, `dropped` otherwise (it left events unread, or the stream was still open). |
//! | `flowgate_broadcast_events_buffered` | gauge | `name` | Events held in memory for lagging subscribers, in whole blocks of 128: a block counts from when it fills until the last subscriber in it or behind it moves on. The slowest live subscriber's lag, rounded down to a block (within one block); 0 while every subscriber is in the block being written. |
//! | `flowgate_broadcast_publishers_waiting` | gauge | `name` | `publish`/`reserve` calls waiting for room in a bounded stream (`BoundedPublisher`, or a bounded `SharedPublisher`); a cancelled call stops counting. |
//! | `flowgate_broadcast_publish_rejected_total` | counter | `name`, `reason` = `full`, `closed` | Publishes refused, the event handed back: `full` (`try_publish` on a bounded stream whose slowest subscriber is `bound` behind), `closed` (`SharedPublisher::publish`/`try_publish` after close, including a `publish` that was waiting for room when the stream closed). |
//!
//! ## Coalescing queue (`flowgate::coalesce`: `OpQueue`, `Consumer`)
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_coalesce_items_enqueued_total` | counter | `name`, `outcome` = `queued`, `merged` | Items accepted: `queued` if the item queued its key (a new entry), `merged` if it joined the entry of a key already queued (coalesced). Sum over `outcome` for items in. |
//! | `flowgate_coalesce_items_dequeued_total` | counter | `name` | Items taken by consumers (each entry counts the items merged into it). |
//! | `flowgate_coalesce_items_dropped_total` | counter | `name` | Items dropped unprocessed because the last `Consumer` was dropped while they were queued. |
//! | `flowgate_coalesce_keys_queued` | gauge | `name` | Entries held (what `depth` bounds): queued keys, and in windowed mode open and released batches. |
//! | `flowgate_coalesce_items_queued` | gauge | `name` | Items held in all entries. |
//! | `flowgate_coalesce_enqueuers_waiting` | gauge | `name` | `enqueue` calls waiting for room (depth or width full); a cancelled call stops counting. |
//! | `flowgate_coalesce_enqueue_rejected_total` | counter | `name`, `reason` = `depth_full`, `width_full`, `closed` | Enqueues refused, the key and item handed back: `try_enqueue` at the `depth` or `width` bound, or either call on a closed queue (including an `enqueue` that was waiting when it closed). |
//! | `flowgate_coalesce_batches_released_total` | counter | `name`, `trigger` = `window`, `width`, `close` | Windowed queues only: batches released to consumers, by what released them (the window ended, the batch reached `width`, the queue closed). |
//! | `flowgate_coalesce_batch_size` | histogram | `name` | Windowed queues only: items in a batch when it was released. |
//!
//! ## Call group (`flowgate::group`: `CallGroup`, `Op`)
//!
//! Groups sharing a name add up into one set of series.
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_group_ops_added_total` | counter | `name` | Operations added. |
//! | `flowgate_group_ops_finished_total` | counter | `name`, `outcome` = `ok`, `error`, `abandoned`, `timed_out` | Operation outcomes recorded in a group's results: finished with `Ok`/`Err`, dropped unfinished (`abandoned`), or still running at the deadline (`timed_out`, counted when the deadline passes). |
//! | `flowgate_group_ops_late_total` | counter | `name` | Operations that finished (or were dropped) after their group timed out or was dropped: their result was dropped. |
//! | `flowgate_group_ops_in_flight` | gauge | `name` | Operations added whose `Op` is still alive (not finished, not dropped), including those whose group already ended. |
//! | `flowgate_group_groups_finished_total` | counter | `name`, `outcome` = `complete`, `timed_out`, `dropped` | Groups that ended: every operation finished (`complete`, through `wait` or `on_complete`), the deadline passed first (`timed_out`), or the group or its `Wait` was dropped before completing (`dropped`). |
//! | `flowgate_group_duration_seconds` | histogram | `name` | Time from a group's first operation added until it completed or timed out (tokio's clock). |
//!
//! ## Idempotency (`flowgate::idempotency`: `Idempotency`)
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_idempotency_effects_total` | counter | `name`, `outcome` = `ok`, `error` | Effects run, by result (`ok` includes an effect whose key could not be recorded afterwards). |
//! | `flowgate_idempotency_skipped_total` | counter | `name` | Runs skipped because the key was already processed (duplicates). |
//! | `flowgate_idempotency_store_errors_total` | counter | `name`, `reason` = `lookup`, `record` | Store failures: the lookup failed (the effect did not run), or recording the key after a successful effect failed (a redelivery would repeat it). |
//! | `flowgate_idempotency_effects_running` | gauge | `name` | Effects running now (a cancelled run stops counting). |
//! | `flowgate_idempotency_runs_waiting` | gauge | `name` | Runs waiting for a concurrent run of the same key in this process. |
//!
//! `name` is on every series; only the extra labels are listed.
//!
//! ## Pipeline stages (`flowgate::pipeline`, `name` on the stage)
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_pipeline_items_in_total` | counter | — | items the stage pulled from upstream (every named stage; `write_batches`: rows; `rebatch`, `write_chunks`: the items of the chunks, not the chunks; `batch_dedup`: duplicates included) |
//! | `flowgate_pipeline_items_out_total` | counter | — | items the stage yielded (batch stages: items in the yielded batches; `write_batches`, `write_chunks`: rows handed to a write; `par_map_retry`: outputs and dead letters; timeouts: items passed, not the timeout errors) |
//! | `flowgate_pipeline_in_flight` | gauge | — | calls running now: `par_map`, `par_map_unordered`, `par_map_keyed(_unordered)`, `par_map_adaptive`; attempts running for `par_map_retry`; writes for `write_batches` and `write_chunks` |
//! | `flowgate_pipeline_held` | gauge | — | items the stage holds besides its calls in flight: `par_map` (ordered) outputs finished early, waiting for an older one; `par_map_keyed(_unordered)` items waiting for their key or the stage, and outputs waiting for an earlier one; `par_map_retry` items backing off; `par_map_adaptive`, `rate_limit`, `limit_in_flight` the item taken from upstream and waiting for room (0 or 1); `batch`, `batch_dedup`, `write_batches` the open batch's items; `rebatch`, `write_chunks` those and the rest of a chunk waiting for the next batch |
//! | `flowgate_pipeline_items_dropped_total` | counter | `reason`: `duplicate`, `throttled`, `superseded` | items dropped: `duplicate` (`dedup_within`, `dedup_last`, `batch_dedup(_by_key)`), `throttled` (`throttle_keep(Keep::First)`: inside the window), `superseded` (`throttle_keep(Keep::Last)`, `debounce`: replaced by a newer item) |
//! | `flowgate_pipeline_timeouts_total` | counter | — | `item_timeout`: `Elapsed` errors yielded; `idle_timeout`: 1 once the stream ended with `IdleElapsed` |
//! | `flowgate_pipeline_batches_total` | counter | `trigger`: `size`, `delay`, `flush`, `end` | batches yielded by `batch`, `batch_dedup(_by_key)`, `write_batches`, `rebatch`, `write_chunks`, by what closed them: `max_items`, `max_delay`, a `BatchFlush`, upstream's end |
//! | `flowgate_pipeline_batch_size` | histogram | — | items per yielded batch |
//! | `flowgate_pipeline_batch_open_seconds` | histogram | — | how long each batch was open, first item to yield (one clock read per batch, only when named with the feature on) |
//! | `flowgate_pipeline_call_duration_seconds` | histogram | — | `par_map_adaptive` only: each call from admission to its end (the RTT it already measures for the limit) |
//!
//! ## Limiters (`flowgate::limit`)
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_limit_granted_total` | counter | — | cells (rate limiters) or permits (in-flight limiters) handed out, by every path (`acquire`, `try_acquire`, `run`, the `rate_limit` / `limit_in_flight` stages); a `FairLimit` permit handed to a waiter cancelled before taking it is passed on and counts again |
//! | `flowgate_limit_waiting` | gauge | — | `acquire` calls (and `rate_limit` / `limit_in_flight` stages holding an item) waiting now; a cancelled wait leaves it at once |
//! | `flowgate_limit_rejected_total` | counter | `reason`: `not_ready`, `no_capacity` | refused `try_acquire` calls: `not_ready` (`RateLimiter`, `KeyedRateLimiter`, `FairRate`: no cell free), `no_capacity` (`InFlightLimit`, `FairLimit`: no permit free) |
//! | `flowgate_limit_wait_seconds` | histogram | — | rate limiters (`RateLimiter`, `KeyedRateLimiter`, `FairRate`) only: how long each `acquire` (and each `rate_limit` stage item) waited, 0 for those that passed at once, from the times the GCRA reads anyway (no extra clock read) |
//! | `flowgate_limit_in_flight` | gauge | — | `InFlightLimit`, `FairLimit`: permits held now |
//! | `flowgate_limit_keys` | gauge | — | `KeyedRateLimiter`: keys with state now (its `len()`) |
//!
//! Tenants (`FairLimit`, `FairRate`) and keys are open sets (any `T`), so every series is the
//! aggregate over tenants/keys; nothing per tenant.
//!
//! **CircuitBreaker (`CircuitBreakerBuilder::name`)**
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_breaker_state` | gauge | — | The breaker's state: 0 closed, 1 half-open, 2 open. |
//! | `flowgate_breaker_transitions_total` | counter | `state` = `closed` / `half_open` / `open` | Transitions into each state. |
//! | `flowgate_breaker_calls_permitted_total` | counter | — | Calls admitted (permits handed out). |
//! | `flowgate_breaker_calls_rejected_total` | counter | `reason` = `open` / `half_open` | Calls rejected without running: the breaker was open, or half-open with its probes busy. |
//! | `flowgate_breaker_outcomes_total` | counter | `outcome` = `success` / `failure` | Outcomes reported on permits (a permit dropped reports none). |
//!
//! **Retry (`Retry::name`)**
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_retry_calls_total` | counter | — | Calls (retry loops) started, by `run`, `par_map_retry` and guards. |
//! | `flowgate_retry_attempts_total` | counter | — | Attempts started, first attempts included. |
//! | `flowgate_retry_retries_total` | counter | — | Retries scheduled after a failed attempt. |
//! | `flowgate_retry_gave_up_total` | counter | `reason` = `not_retryable` / `attempts_exhausted` / `budget_exhausted` | Calls that failed for good, by why the policy stopped. |
//! | `flowgate_retry_backoff_seconds` | histogram | — | Delays slept before retries. |
//!
//! **AdaptiveLimit (`AdaptiveLimitBuilder::name`)**
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_adaptive_limit` | gauge | — | The concurrency limit now. |
//! | `flowgate_adaptive_in_flight` | gauge | — | Calls admitted and not finished (every user: calls, stages, tower layers, guards). |
//! | `flowgate_adaptive_waiting` | gauge | — | Callers of `acquire` (and `run`, guards) waiting for room. |
//! | `flowgate_adaptive_increases_total` | counter | — | Times the limit grew (additive increase). |
//! | `flowgate_adaptive_decreases_total` | counter | — | Times the limit shrank (multiplicative decrease). |
//! | `flowgate_adaptive_overloads_total` | counter | — | Calls finished with back-pressure (`Outcome::Overload`). |
//! | `flowgate_adaptive_rtt_seconds` | histogram | — | Round-trip times of the calls finished with `Success` or `Overload`: the samples the limit adapts on. |
//!
//! **Guard (`Guard::name`)**
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_guard_calls_total` | counter | `outcome` = `ok` / `error` | Guarded calls that returned, by outcome. |
//! | `flowgate_guard_attempt_failures_total` | counter | `reason` = `timeout` / `rejected` / `error` | Failed attempts: timed out, rejected by the breaker, or the call's own error. |
//!
//! **PauseHandle (`PauseHandle::name`)**
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_pause_manual` | gauge | — | 1 while paused by `pause()`, else 0. |
//! | `flowgate_pause_holds` | gauge | — | Live `PauseGuard`s (retries backing off, ...); paused while this or the manual gauge is above 0. |
//! | `flowgate_pause_pauses_total` | counter | — | Manual pauses made (`pause()` on a running switch). |
//! | `flowgate_pause_resumes_total` | counter | — | Manual pauses lifted (`resume()`, or the last handle dropped). |
//! | `flowgate_pause_holds_total` | counter | — | Pause guards taken. |
//!
//! **DeadLetters (`DeadLetters::name`)**
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_dead_letter_received_total` | counter | — | Dead letters taken from the stream. |
//! | `flowgate_dead_letter_discarded_total` | counter | — | Dead letters still queued when the stream was dropped. |
//!
//! **CursorSource (`CursorSourceBuilder::name`)**
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_source_pages_fetched_total` | counter | — | Pages fetched (empty ones included). |
//! | `flowgate_source_items_fetched_total` | counter | — | Items fetched. |
//! | `flowgate_source_items_emitted_total` | counter | — | Items yielded by the stream. |
//! | `flowgate_source_items_acked_total` | counter | — | Items acknowledged. |
//! | `flowgate_source_items_unacked_total` | counter | — | Yielded items whose `CursorAck` was dropped without `ack()` (the source stops). |
//! | `flowgate_source_items_dropped_total` | counter | — | Fetched items never yielded (dropped by `stop_now` or with the stream). |
//! | `flowgate_source_items_in_flight` | gauge | — | Items yielded and neither acknowledged nor dropped yet. |
//! | `flowgate_source_pages_in_flight` | gauge | — | Pages being fetched, or fetched and not committed (what `max_pages_in_flight` bounds); 0 once the driver is gone. |
//! | `flowgate_source_fetch_errors_total` | counter | — | Failed fetches. |
//! | `flowgate_source_fetch_seconds` | histogram | — | Duration of successful fetches. |
//! | `flowgate_source_commits_total` | counter | `outcome` = `ok` / `error` | Commits to the checkpoint store, by outcome. |
//! | `flowgate_source_commit_seconds` | histogram | — | Duration of commits to the checkpoint store. |
//! | `flowgate_source_load_errors_total` | counter | — | Failed loads of the checkpoint (the source stops). |
//! | `flowgate_source_paused` | gauge | — | 1 while the source is paused, else 0 (0 once the driver is gone). |
//!
//! **Watermark, SharedWatermark, PartitionedWatermark (`name`)**
//!
//! | series | kind | labels | meaning |
//! |---|---|---|---|
//! | `flowgate_source_watermark_commit_point` | gauge | — | The commit point (0 until there is one; exact up to 2^53). Not for `PartitionedWatermark`. |
//! | `flowgate_source_watermark_pending` | gauge | — | Offsets tracked and not passed yet (summed over the partitions of a `PartitionedWatermark`). |
//! | `flowgate_source_watermark_partitions` | gauge | — | Partitions of a `PartitionedWatermark`. |
//!
//! # Tracing
//!
//! Targets start with the module (`flowgate::batch`,
//! `flowgate::resilience::breaker`, …), so `RUST_LOG=flowgate::batch=debug`
//! (with an `EnvFilter`) selects one module and `flowgate=debug` all of
//! them. Every event carries the primitive's `name` (`""` when unnamed). The
//! one span is the batcher's `flush` (one per batch handed to the flush
//! function, at `info`): the flush function's own spans are its children,
//! and it follows from the spans its items were submitted in, so a slow
//! acknowledgement can be traced from the submitter through the batch to the
//! sink.
//! Nothing is emitted per item at `info` level or above; every failure path
//! emits one event at `warn` (the primitive recovers or the caller gets the
//! error) or `error` (work is lost to the caller, e.g. a panicked flush).
//!
//! | target | span or event | level | fields | when |
//! |---|---|---|---|---|
//! | `flowgate::batch` | span `flush` | `info` | `name`, `size`, `trigger`, `outcome` (recorded when the flush completes: `ok`, `error`, `panic`, `mismatch`, or `closed` if cut short) | One per batch handed to the flush function, `Batcher` and `KeyedBatcher`. The flush function is called and its future polled (and dropped) inside it, so the sink's spans are its children; it `follows_from` each distinct span its items were submitted in; it closes once the batch's items are resolved. |
//! | `flowgate::batch` | event | `warn` | `name`, `size`, `error`, `error_type` | A flush returned an error or a wrong number of outputs; once per flush, inside its span; the submitters get the error. |
//! | `flowgate::batch` | event | `error` | `name`, `size`, `error` | A flush panicked (its items fail with `Panicked`); inside its span. |
//! | `flowgate::batch` | event | `error` | `name`, `items`, `flushing` | The worker was dropped with items not yet flushed (they fail with `Closed`); once. |
//! | `flowgate::batch` | event | `error` | `panic` | A `submit_with` callback panicked (caught); inside the flush span (which has the `name`). |
//! | `flowgate::dataloader` | event | `warn` | `name`, `keys`, `errors`, `missing` | A batch fetch returned errors for some keys; once per fetch, inside the flush span. (A fetch failing as a whole is the batcher's `WARN`/`ERROR` above, with the loader's name.) |
//! | `flowgate::dataloader` | event | `debug` | `name`, `keys`, `missing` | A batch fetch returned no entry for some keys and no errors; once per fetch. |
//! | `flowgate::broadcast` | event | `warn` | `name` | A `SharedPublisher` publish (`publish` or `try_publish`) found the stream closed; the event is handed back. Once per call. |
//! | `flowgate::broadcast` | event | `debug` | `name` | A `try_publish` found a bounded stream full (transient backpressure; the event is handed back). |
//! | `flowgate::coalesce` | event | `error` | `name`, `keys`, `items` | The last `Consumer` was dropped with items queued: they are dropped unprocessed. Once; not emitted if the queue was empty. |
//! | `flowgate::coalesce` | event | `warn` | `name` | An enqueue (`try_enqueue`, or `enqueue`, also one waiting for room) found the queue closed; key and item handed back. |
//! | `flowgate::coalesce` | event | `debug` | `name` | A `try_enqueue` was refused at the `depth` or `width` bound (transient). |
//! | `flowgate::group` | event | `warn` | `name`, `timed_out`, `abandoned`, `ops` | A group's deadline passed with operations still running (`wait` or `on_complete`). Once per group. |
//! | `flowgate::group` | event | `warn` | `name`, `abandoned`, `ops` | A group completed with operations dropped unfinished (`Outcome::Abandoned`). Once per group, not per op. |
//! | `flowgate::group` | event | `debug` | `name`, `running` | A group (or its `Wait`) was dropped with operations still running; their results will be dropped. |
//! | `flowgate::group` | event | `error` | `name`, `panic` | An `on_complete` callback panicked (caught). (Existed; now with `name` and this target.) |
//! | `flowgate::idempotency` | event | `warn` | `name` | An effect returned an error (handed to the caller; its key is not recorded, so a redelivery retries). No `error` field: `E` has no `Display` bound on `run`. |
//! | `flowgate::idempotency` | event | `warn` | `name`, `error` | The store lookup failed; the effect did not run. |
//! | `flowgate::idempotency` | event | `error` | `name`, `error` | The effect succeeded but its key could not be recorded: a redelivery would repeat the effect. `ERROR` rather than `WARN` although the output is returned: the at-most-once promise is broken for that key. |
//! | `flowgate::pipeline::timeout` | event "upstream idle too long, ending the stream" | `warn` | `name`, `timeout` | an `idle_timeout` stage ends its stream with `IdleElapsed` (once per stream; the caller gets the error) |
//! | `flowgate::pipeline::timeout` | event "no item within the timeout" | `debug` | `name`, `timeout` | each `Elapsed` an `item_timeout` stage yields (may be frequent, so debug; counted in `flowgate_pipeline_timeouts_total`) |
//! | `flowgate::limit::keyed` | event "KeyedRateLimiter configuration refused" | `warn` | `name`, `error` | `KeyedRateLimiterBuilder::build` returns a `BuildError` |
//! | `flowgate::limit::fair::limit` | event "FairLimit configuration refused" | `warn` | `name`, `error` | `FairLimitBuilder::build` returns a `BuildError` |
//! | `flowgate::limit::fair::rate` | event "FairRate configuration refused" | `warn` | `name`, `error` | `FairRateBuilder::build` returns a `BuildError` |
//! | `flowgate::resilience::breaker` | event "circuit breaker opened" | `warn` | `name`, `from`, `window_calls`, `window_failures`, `failure_ratio`, `consecutive_failures`, `cooldown` | closed → open (trip) |
//! | `flowgate::resilience::breaker` | event "circuit breaker opened again: a half-open probe failed" | `warn` | `name`, `from`, `cooldown` | half-open → open |
//! | `flowgate::resilience::breaker` | event "circuit breaker half-open" | `debug` | `name`, `from` | open → half-open (seen by the first call after the cooldown) |
//! | `flowgate::resilience::breaker` | event "circuit breaker closed" | `info` | `name`, `from` | half-open → closed |
//! | `flowgate::resilience::retry` | event "retrying after a failed attempt" | `debug` | `name`, `attempt`, `delay` | each retry scheduled (`run`, `par_map_retry`, guards) |
//! | `flowgate::resilience::retry` | event "retry gave up: {reason}" | `warn` | `name`, `attempts`, `reason` (`not_retryable`, `attempts_exhausted`, `budget_exhausted`) | once per call that fails for good (`run`, `par_map_retry`; not inside a guard, which logs its own) |
//! | `flowgate::resilience::guard` | event "guarded call failed" | `warn` | `name`, `retry` (the retry's name), `failure` (`timeout`, `rejected`, `error`), `attempts`, `reason` (with a retry policy) | once per `Guard::run` that fails |
//! | `flowgate::resilience::adaptive` | event "adaptive limit decreased" | `debug` | `name`, `from`, `limit`, `mean_rtt` | multiplicative decrease (at most once per window) |
//! | `flowgate::resilience::adaptive` | event "adaptive limit increased" | `trace` | `name`, `limit` | additive increase (at most once per window) |
//! | `flowgate::resilience::pause` | event "paused" / "resumed" | `debug` | `name`, `why` (resumed: `resume`, `last handle dropped`) | the manual switch turns |
//! | `flowgate::resilience::dead_letter` | event "dead-letter stream dropped with dead letters queued: they are discarded" | `warn` | `name`, `discarded` | a `DeadLetters` dropped with errors queued |
//! | `flowgate::source::driver` | event "cursor source: fetch failed; the source stops" (or "…; the source pauses until resumed") | `warn` | `name` | a fetch returned `Err` |
//! | `flowgate::source::driver` | event "cursor source: loading the checkpoint failed; the source stops" | `warn` | `name`, `error` | `CheckpointStore::load` failed |
//! | `flowgate::source::driver` | event "cursor source: committing the checkpoint failed; the source stops" | `warn` | `name`, `error` | `CheckpointStore::commit` failed |
//! | `flowgate::source::driver` | event "cursor source: an item's CursorAck was dropped without ack(); the checkpoint cannot pass its page, the source stops" | `warn` | `name` | the first dropped ack |
//! | `flowgate::source::driver` | event "cursor source finished" | `debug` | `name` | the driver completes |
//! | `flowgate::source::control` | event "cursor source paused" / "cursor source resumed" | `debug` | `name` | `pause()`, `resume()`, or a failed fetch with `OnFetchError::Pause` |
//! | `flowgate::source::watermark` | event "watermark: an offset was abandoned (its ack dropped); the commit point will never pass it" | `warn` | `name`, `offset` | the first `WatermarkAck` of a `SharedWatermark` dropped unacknowledged (not for a cursor source's own watermark: the driver logs that) |

#[cfg(feature = "metrics")]
mod describe;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use describe::{Kind, METRICS, MetricInfo, describe};
