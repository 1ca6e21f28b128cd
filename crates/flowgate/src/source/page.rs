//! [`Page`]: what one call of a cursor source's fetch function returns.

use std::fmt;

/// One page of a [`CursorSource`](super::CursorSource): its items and the
/// cursor of the page after it.
///
/// - `next: Some(c)`: there may be more; the next fetch is `fetch(c)`. Once
///   every item of this page (and of the pages before it) is acknowledged,
///   `c` is committed to the checkpoint store, so a restart starts at `c`.
/// - `next: None`: this is the last page; the stream ends after its items.
///   Nothing is committed for it, so a restart fetches it again.
///
/// For keyset pagination (`WHERE id > ? ORDER BY id LIMIT n`), return the
/// last item's key as `next` on every non-empty page and `None` on an empty
/// one: the final, empty page is then the only one a restart repeats — and it
/// returns new rows if the table grew. [`Page::keyset`] does exactly that.
///
/// An empty page with `next: Some(..)` is fetched again at once; to poll a
/// source for new items, wait inside the fetch function.
#[derive(Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    /// The items, in the order the stream yields them.
    pub items: Vec<T>,
    /// Where the next page starts, or `None` if this is the last page.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// A page of `items` followed by the page at `next` (`None`: the last
    /// page).
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Page;
    ///
    /// let page = Page::new(vec!["a", "b"], Some("token-2"));
    /// assert_eq!(page.next, Some("token-2"));
    /// let last: Page<&str, &str> = Page::new(vec![], None);
    /// assert!(last.next.is_none());
    /// ```
    pub fn new(items: Vec<T>, next: Option<C>) -> Self {
        Page { items, next }
    }

    /// A page for keyset pagination: `next` is the key of the last item, and
    /// an empty page is the last one.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::source::Page;
    ///
    /// let page = Page::keyset(vec![(3, "c"), (4, "d")], |row| row.0);
    /// assert_eq!(page.next, Some(4));
    /// let end = Page::keyset(Vec::<(i64, &str)>::new(), |row| row.0);
    /// assert_eq!(end.next, None);
    /// ```
    pub fn keyset(items: Vec<T>, key: impl FnOnce(&T) -> C) -> Self {
        let next = items.last().map(key);
        Page { items, next }
    }
}

impl<T, C> From<(Vec<T>, Option<C>)> for Page<T, C> {
    fn from((items, next): (Vec<T>, Option<C>)) -> Self {
        Page { items, next }
    }
}

impl<T, C: fmt::Debug> fmt::Debug for Page<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("items", &self.items.len())
            .field("next", &self.next)
            .finish()
    }
}
