use std::time::Duration;

use flowgate::pipeline::{Observe, Progress, StageSnapshot};
use flowgate::prelude::*;
use futures_util::stream::{self, StreamExt};
use tokio::time::{advance, sleep};
use tokio_test::{assert_pending, task};

#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Progress>();
    assert_send_sync::<StageSnapshot>();
    assert_send_sync::<Observe<stream::Iter<std::vec::IntoIter<u8>>>>();
}

#[tokio::test(start_paused = true)]
async fn counts_and_rates_per_stage() {
    let progress = Progress::new();
    let reader = progress.clone();
    let pipeline = stream::iter(0..20u64)
        .observe(&progress, "source")
        .par_map(4, |i| async move {
            sleep(Duration::from_millis(100)).await;
            i
        })
        .observe(&progress, "work")
        .filter(|i| std::future::ready(i % 4 == 0))
        .observe(&progress, "sink");
    let mut pipeline = task::spawn(Box::pin(pipeline));

    // Before the first poll: stages exist with nothing counted.
    let before = reader.snapshot();
    assert_eq!(before.len(), 3);
    assert!(
        before
            .iter()
            .all(|s| s.items() == 0 && s.elapsed().is_zero() && s.rate() == 0.0)
    );

    assert_pending!(pipeline.poll_next());
    assert_eq!(reader.snapshot()[0].items(), 4, "four taken by par_map");
    advance(Duration::from_millis(100)).await;
    let mut seen = 0;
    while let std::task::Poll::Ready(Some(_)) = pipeline.poll_next() {
        seen += 1;
    }
    assert_eq!(seen, 1); // items 0..4 done, only 0 passes the filter
    let mid = reader.snapshot();
    assert_eq!(mid[1].items(), 4);
    assert_eq!(mid[1].elapsed(), Duration::from_millis(100));
    assert_eq!(mid[1].rate(), 40.0);
    assert!(!mid[1].is_finished());

    let rest: Vec<u64> = pipeline.into_inner().collect().await;
    assert_eq!(rest, vec![4, 8, 12, 16]);
    let end = reader.snapshot();
    let names: Vec<&str> = end.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["source", "work", "sink"]);
    assert_eq!(
        end.iter().map(|s| s.items()).collect::<Vec<_>>(),
        [20, 20, 5]
    );
    assert!(end.iter().all(|s| s.is_finished() && s.is_dropped()));
    // Five waves of 100 ms: 20 items in 500 ms.
    assert_eq!(end[1].elapsed(), Duration::from_millis(500));
    assert_eq!(end[1].rate(), 40.0);
    // Elapsed stops at the end.
    advance(Duration::from_secs(10)).await;
    assert_eq!(reader.snapshot()[1].elapsed(), Duration::from_millis(500));
}

#[cfg(feature = "progress-bar")]
#[tokio::test]
async fn drives_an_indicatif_bar() {
    let progress = Progress::new();
    let bar = indicatif::ProgressBar::hidden();
    let n = stream::iter(0..42)
        .observe(&progress, "bar")
        .with_bar(bar.clone())
        .count()
        .await;
    assert_eq!(n, 42);
    assert_eq!(bar.position(), 42);
    assert_eq!(bar.message(), "bar");
    assert!(bar.is_finished());
}
