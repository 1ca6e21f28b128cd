//! `flowgate::group`: the series of a named `CallGroup`, and its failure
//! events.

use std::time::Duration;

use flowgate::group::{CallGroup, Outcome};
use tracing::Level;

use crate::common::Traced;

#[cfg(feature = "metrics")]
mod metrics {
    use std::time::Duration;

    use flowgate::group::{CallGroup, Outcome};

    use crate::common::Recorded;

    const ADDED: &str = "flowgate_group_ops_added_total";
    const FINISHED: &str = "flowgate_group_ops_finished_total";
    const LATE: &str = "flowgate_group_ops_late_total";
    const IN_FLIGHT: &str = "flowgate_group_ops_in_flight";
    const GROUPS: &str = "flowgate_group_groups_finished_total";
    const DURATION: &str = "flowgate_group_duration_seconds";

    #[test]
    fn every_series_is_registered_when_the_group_is_named() {
        let rec = Recorded::new();
        let _group = rec.scope(|| CallGroup::<u32, (), ()>::new().name("g"));
        assert_eq!(
            rec.names(),
            [
                "flowgate_group_duration_seconds{name=g}",
                "flowgate_group_groups_finished_total{name=g,outcome=complete}",
                "flowgate_group_groups_finished_total{name=g,outcome=dropped}",
                "flowgate_group_groups_finished_total{name=g,outcome=timed_out}",
                "flowgate_group_ops_added_total{name=g}",
                "flowgate_group_ops_finished_total{name=g,outcome=abandoned}",
                "flowgate_group_ops_finished_total{name=g,outcome=error}",
                "flowgate_group_ops_finished_total{name=g,outcome=ok}",
                "flowgate_group_ops_finished_total{name=g,outcome=timed_out}",
                "flowgate_group_ops_in_flight{name=g}",
                "flowgate_group_ops_late_total{name=g}",
            ]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn ops_by_outcome_in_flight_and_a_timed_out_group() {
        let rec = Recorded::new();
        let mut group = rec.scope(|| CallGroup::<u32, u32, String>::new().name("fan"));
        let n = &[("name", "fan")];
        let finished = |outcome| rec.counter(FINISHED, &[("name", "fan"), ("outcome", outcome)]);
        let groups = |outcome| rec.counter(GROUPS, &[("name", "fan"), ("outcome", outcome)]);

        let ops: Vec<_> = (0..4).map(|id| group.add(id, ()).unwrap()).collect();
        assert_eq!(rec.counter(ADDED, n), 4);
        assert_eq!(rec.gauge(IN_FLIGHT, n), 4.0);
        let mut ops = ops.into_iter();
        ops.next().unwrap().finish(Ok(1));
        ops.next().unwrap().finish(Err("no".into()));
        drop(ops.next().unwrap());
        let straggler = ops.next().unwrap();
        assert_eq!(
            (finished("ok"), finished("error"), finished("abandoned")),
            (1, 1, 1)
        );
        assert_eq!(rec.gauge(IN_FLIGHT, n), 1.0);

        tokio::time::sleep(Duration::from_millis(5)).await;
        group.set_timeout(Duration::from_millis(10)).unwrap();
        let results = group.wait().await;
        assert_eq!(results.get(&3), Some(&Outcome::TimedOut));
        assert_eq!(finished("timed_out"), 1);
        assert_eq!(
            (groups("complete"), groups("timed_out"), groups("dropped")),
            (0, 1, 0)
        );
        // From the first op added to the deadline.
        assert_eq!(rec.histogram(DURATION, n), [0.015]);
        assert_eq!(rec.gauge(IN_FLIGHT, n), 1.0, "the straggler still runs");

        straggler.finish(Ok(4));
        assert_eq!(rec.counter(LATE, n), 1);
        assert_eq!(rec.gauge(IN_FLIGHT, n), 0.0);
        assert_eq!(finished("ok"), 1, "a late result is not an outcome");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn groups_complete_or_are_dropped_and_share_a_name() {
        let rec = Recorded::new();
        let n = &[("name", "req")];
        let groups = |outcome| rec.counter(GROUPS, &[("name", "req"), ("outcome", outcome)]);

        // Completed through `wait`.
        let mut group = rec.scope(|| CallGroup::<u32, u32, ()>::new().name("req"));
        let op = group.add(1, ()).unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
        op.finish(Ok(1));
        assert_eq!(group.wait().await.get(&1), Some(&Outcome::Ok(1)));
        assert_eq!(groups("complete"), 1);
        assert_eq!(rec.histogram(DURATION, n), [0.003]);

        // Completed through a callback.
        let mut group = rec.scope(|| CallGroup::<u32, u32, ()>::new().name("req"));
        let op = group.add(1, ()).unwrap();
        group.on_complete(|_| {});
        op.finish(Ok(2));
        assert_eq!(groups("complete"), 2);
        assert_eq!(rec.histogram(DURATION, n), [0.003, 0.0]);

        // Dropped before it was sealed: its op still runs, then is late.
        let mut group = rec.scope(|| CallGroup::<u32, u32, ()>::new().name("req"));
        let op = group.add(1, ()).unwrap();
        drop(group);
        assert_eq!(groups("dropped"), 1);
        assert_eq!(rec.gauge(IN_FLIGHT, n), 1.0);
        drop(op);
        assert_eq!(rec.counter(LATE, n), 1);
        assert_eq!(rec.gauge(IN_FLIGHT, n), 0.0);

        // A `Wait` dropped before completion.
        let mut group = rec.scope(|| CallGroup::<u32, u32, ()>::new().name("req"));
        let op = group.add(1, ()).unwrap();
        drop(group.wait());
        op.finish(Ok(3));
        assert_eq!((groups("complete"), groups("dropped")), (2, 2));
        assert_eq!(rec.counter(ADDED, n), 4);
        assert_eq!(rec.counter(LATE, n), 2);
        assert_eq!(
            rec.counter(FINISHED, &[("name", "req"), ("outcome", "ok")]),
            2
        );
        assert_eq!(
            rec.histogram(DURATION, n).len(),
            2,
            "dropped groups have no duration"
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_callback_group_that_times_out() {
        let rec = Recorded::new();
        let mut group = rec.scope(|| CallGroup::<u32, u32, ()>::new().name("cb"));
        let n = &[("name", "cb")];
        let op = group.add(1, ()).unwrap();
        group.set_timeout(Duration::from_millis(20)).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        group.on_complete(move |results| {
            let _ = tx.send(results.get(&1).cloned());
        });
        assert_eq!(rx.await.unwrap(), Some(Outcome::TimedOut));
        assert_eq!(
            rec.counter(GROUPS, &[("name", "cb"), ("outcome", "timed_out")]),
            1
        );
        assert_eq!(
            rec.counter(FINISHED, &[("name", "cb"), ("outcome", "timed_out")]),
            1
        );
        assert_eq!(rec.histogram(DURATION, n), [0.02]);
        drop(op);
        assert_eq!(rec.counter(LATE, n), 1);
    }

    #[test]
    fn ops_added_before_the_name_are_counted_when_named() {
        let rec = Recorded::new();
        let mut group = CallGroup::<u32, u32, ()>::new();
        let early = group.add(1, ()).unwrap();
        let done = group.add(2, ()).unwrap();
        done.finish(Ok(2));
        let mut group = rec.scope(|| group.name("late-name"));
        let n = &[("name", "late-name")];
        assert_eq!(rec.counter(ADDED, n), 1, "the one still running");
        assert_eq!(rec.gauge(IN_FLIGHT, n), 1.0);
        let _third = group.add(3, ()).unwrap();
        drop(early);
        assert_eq!(rec.gauge(IN_FLIGHT, n), 1.0);
        assert_eq!(rec.counter(ADDED, n), 2);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn unnamed_groups_register_nothing() {
        let rec = Recorded::new();
        let mut group = rec.scope(CallGroup::<u32, u32, ()>::new);
        let a = group.add(1, ()).unwrap();
        let _b = group.add(2, ()).unwrap();
        a.finish(Ok(1));
        group.set_timeout(Duration::from_millis(1)).unwrap();
        let _ = group.wait().await;
        assert!(rec.is_empty(), "registered: {:?}", rec.names());
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_timed_out_group_warns_once_with_the_name() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let mut group = CallGroup::<u32, u32, ()>::new().name("slow");
    let _a = group.add(1, ()).unwrap();
    let _b = group.add(2, ()).unwrap();
    group.set_timeout(Duration::from_millis(10)).unwrap();
    let results = group.wait().await;
    assert_eq!(results.get(&1), Some(&Outcome::TimedOut));
    let warnings = traced.events_at_least(Level::WARN, "flowgate::group");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].level, Level::WARN);
    assert_eq!(warnings[0].target, "flowgate::group");
    assert_eq!(warnings[0].field("name"), Some("slow"));
    assert_eq!(warnings[0].field("timed_out"), Some("2"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn abandoned_ops_warn_once_per_group_and_a_clean_group_is_quiet() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let mut group = CallGroup::<u32, u32, ()>::new().name("leaky");
    drop(group.add(1, ()).unwrap());
    drop(group.add(2, ()).unwrap());
    group.add(3, ()).unwrap().finish(Ok(3));
    let _ = group.wait().await;
    let warnings = traced.events_at_least(Level::WARN, "flowgate::group");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].field("name"), Some("leaky"));
    assert_eq!(warnings[0].field("abandoned"), Some("2"));

    let mut clean = CallGroup::<u32, u32, ()>::new().name("clean");
    clean.add(1, ()).unwrap().finish(Ok(1));
    let _ = clean.wait().await;
    assert_eq!(
        traced.events_at_least(Level::WARN, "flowgate::group").len(),
        1
    );
}

#[test]
fn a_panicking_callback_is_an_error_event_with_the_name() {
    let traced = Traced::new();
    let _guard = traced.set_default();
    let mut group = CallGroup::<u32, u32, ()>::new().name("cb-panic");
    let op = group.add(1, ()).unwrap();
    group.on_complete(|_| panic!("callback bug"));
    op.finish(Ok(1));
    let errors = traced.events_at_least(Level::ERROR, "flowgate::group");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].target, "flowgate::group");
    assert_eq!(errors[0].field("name"), Some("cb-panic"));
}
