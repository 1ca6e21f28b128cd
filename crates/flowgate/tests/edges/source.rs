//! Edges of `flowgate::source`: the cursor source, and the acknowledgement
//! watermarks.

use std::convert::Infallible;

use flowgate::source::{
    AckError, BuildError, CursorSource, MemoryCheckpointStore, Page, PartitionedWatermark,
    SharedWatermark, TrackError, WatchError, Watermark,
};
use futures_util::StreamExt;

/// Rows `1..=rows`, `page` at a time after a key.
fn rows(
    rows: u64,
    page: usize,
) -> impl FnMut(u64) -> std::future::Ready<Result<Page<u64, u64>, Infallible>> + Send + 'static {
    move |after| {
        let items: Vec<u64> = (after + 1..=rows).take(page).collect();
        std::future::ready(Ok(Page::keyset(items, |row| *row)))
    }
}

#[tokio::test]
async fn max_pages_in_flight_zero_is_a_build_error() {
    let err = CursorSource::builder(0u64)
        .max_pages_in_flight(0)
        .build(rows(10, 2))
        .unwrap_err();
    assert!(matches!(err, BuildError::ZeroPagesInFlight));
    let err = CursorSource::builder(0u64)
        .max_pages_in_flight(0)
        .build_pair(rows(10, 2))
        .unwrap_err();
    assert!(matches!(err, BuildError::ZeroPagesInFlight));
}

#[test]
fn build_outside_a_runtime_is_a_build_error() {
    let err = CursorSource::builder(0u64).build(rows(10, 2)).unwrap_err();
    assert!(matches!(err, BuildError::NoRuntime));
    // `build_pair` needs none.
    assert!(CursorSource::builder(0u64).build_pair(rows(10, 2)).is_ok());
}

async fn read_all(pages_in_flight: usize, page: usize) -> (Vec<u64>, Option<u64>) {
    let store = MemoryCheckpointStore::new();
    let mut source = CursorSource::builder(0u64)
        .checkpoint(store.clone())
        .max_pages_in_flight(pages_in_flight)
        .build(rows(25, page))
        .unwrap();
    let control = source.control();
    let mut seen = Vec::new();
    while let Some(next) = source.next().await {
        let (row, ack) = next.unwrap();
        seen.push(row);
        ack.ack();
    }
    control.finished().await;
    (seen, store.get())
}

#[tokio::test]
async fn max_pages_in_flight_one_and_max_read_everything() {
    for pages in [1, usize::MAX] {
        let (seen, committed) = read_all(pages, 4).await;
        assert_eq!(seen, (1..=25).collect::<Vec<_>>(), "pages {pages}");
        assert_eq!(committed, Some(25), "pages {pages}");
    }
}

#[tokio::test]
async fn page_of_one_item_and_an_empty_last_page() {
    let (seen, committed) = read_all(2, 1).await;
    assert_eq!(seen.len(), 25);
    assert_eq!(committed, Some(25));
}

#[tokio::test]
async fn a_first_page_that_is_empty_ends_the_stream() {
    let mut source = CursorSource::builder(0u64)
        .build(|_after: u64| {
            std::future::ready(Ok::<_, Infallible>(Page::<u64, u64>::new(Vec::new(), None)))
        })
        .unwrap();
    assert!(source.next().await.is_none());
}

// The acknowledgement watermarks.

#[test]
#[should_panic(expected = "Watermark::with_max_pending: max_pending must be at least 1")]
fn watermark_max_pending_zero_panics() {
    let _ = Watermark::with_max_pending(0);
}

#[test]
#[should_panic(expected = "PartitionedWatermark::with_max_pending: max_pending must be at least 1")]
fn partitioned_watermark_max_pending_zero_panics() {
    let _ = PartitionedWatermark::<u32>::with_max_pending(0);
}

#[test]
#[should_panic(expected = "SharedWatermark::with_max_pending: max_pending must be at least 1")]
fn shared_watermark_max_pending_zero_panics() {
    let _ = SharedWatermark::with_max_pending(0);
}

#[test]
fn watermark_max_pending_one_holds_one_offset() {
    let mut watermark = Watermark::with_max_pending(1);
    for offset in 0..5 {
        watermark.track(offset).unwrap();
        assert_eq!(
            watermark.track(offset + 1),
            Err(TrackError::Full {
                offset: offset + 1,
                max_pending: 1
            })
        );
        assert_eq!(watermark.ack(offset), Ok(Some(offset + 1)));
    }
    let shared = SharedWatermark::with_max_pending(1);
    let ack = shared.try_track(0).unwrap();
    assert!(matches!(shared.try_track(1), Err(TrackError::Full { .. })));
    ack.ack();
    shared.try_track(1).unwrap().ack();
    assert_eq!(shared.commit_point(), Some(2));
}

#[test]
fn watermark_max_pending_max_allocates_nothing_up_front_and_holds_many() {
    for mut watermark in [Watermark::new(), Watermark::with_max_pending(usize::MAX)] {
        assert_eq!(watermark.max_pending(), usize::MAX);
        for offset in 0..10_000 {
            watermark.track(offset).unwrap();
        }
        assert!(!watermark.is_full());
        assert_eq!(watermark.ack(0), Ok(Some(1)));
    }
    let mut partitioned = PartitionedWatermark::with_max_pending(usize::MAX);
    partitioned.track(0u8, 0).unwrap();
    let shared = SharedWatermark::with_max_pending(usize::MAX);
    shared.try_track(0).unwrap().ack();
}

#[test]
fn watermark_offsets_zero_and_the_largest_trackable() {
    let mut watermark = Watermark::new();
    assert_eq!(watermark.commit_point(), None);
    assert_eq!(watermark.first_unacked(), None);
    assert_eq!(watermark.ack(0), Err(AckError::Untracked { offset: 0 }));
    watermark.track(0).unwrap();
    assert_eq!(watermark.ack(0), Ok(Some(1)));
    // The largest offset that can be tracked is u64::MAX - 1: the commit
    // point after it is u64::MAX.
    watermark.track(u64::MAX - 1).unwrap();
    assert_eq!(watermark.ack(u64::MAX - 1), Ok(Some(u64::MAX)));
    assert_eq!(
        watermark.track(u64::MAX),
        Err(TrackError::OutOfRange { offset: u64::MAX })
    );
    // Past the last offset, everything is behind the watermark.
    assert_eq!(
        watermark.ack(u64::MAX - 1),
        Err(AckError::Passed {
            offset: u64::MAX - 1
        })
    );
    assert_eq!(
        watermark.ack(u64::MAX),
        Err(AckError::Untracked { offset: u64::MAX })
    );
    // The first offset may be u64::MAX - 1 too.
    let mut high = Watermark::new();
    high.track(u64::MAX - 1).unwrap();
    assert_eq!(high.ack(0), Err(AckError::Untracked { offset: 0 }));
    assert_eq!(high.ack(u64::MAX - 1), Ok(Some(u64::MAX)));
}

#[test]
fn a_gap_of_u64_max_between_offsets() {
    let mut watermark = Watermark::new();
    watermark.track(0).unwrap();
    watermark.track(u64::MAX - 1).unwrap();
    assert_eq!(
        watermark.ack(u64::MAX - 2),
        Err(AckError::Untracked {
            offset: u64::MAX - 2
        })
    );
    assert_eq!(watermark.ack(u64::MAX - 1), Ok(None));
    assert_eq!(watermark.ack(0), Ok(Some(u64::MAX)));
}

#[tokio::test]
async fn a_shared_watermark_with_nothing_tracked_closes_its_watch() {
    let shared = SharedWatermark::new();
    let mut watch = shared.watch();
    assert_eq!(watch.commit_point(), None);
    drop(shared);
    assert_eq!(watch.changed().await, Err(WatchError::Closed));
}

#[test]
fn an_empty_partitioned_watermark() {
    let mut partitioned = PartitionedWatermark::<u32>::new();
    assert!(partitioned.take_changed().is_empty());
    assert_eq!(partitioned.commit_point(&0), None);
    assert_eq!(
        partitioned.ack(&0, 0),
        Err(AckError::Untracked { offset: 0 })
    );
    assert!(partitioned.remove(&0).is_none());
}
