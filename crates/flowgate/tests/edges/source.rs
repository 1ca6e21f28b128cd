//! Edges of `flowgate::source`.

use std::convert::Infallible;

use flowgate::source::{BuildError, CursorSource, MemoryCheckpointStore, Page};
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
