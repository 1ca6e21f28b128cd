//! What a flush function may return.

/// The successful result of a flush function, turned into one output per item.
///
/// Implemented for:
///
/// - `()`: every item's [`Flushed`](super::Flushed) resolves to `Ok(())`. This is the
///   common case of a sink that only reports success or failure.
/// - `Vec<O>`: the output at position `i` goes to the `i`-th item of the
///   batch (the order in which the flush function received them). A vector of
///   another length fails the whole batch with
///   [`FlushError::OutputMismatch`](super::FlushError::OutputMismatch), since no
///   item's output could be trusted. A dataloader is built on this: the flush
///   function fetches a batch of keys and returns one value per key.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use flowgate::batch::Batcher;
///
/// // Each item learns its own output: here, its square.
/// let batcher = Batcher::builder()
///     .max_items(100)
///     .build(|items: Vec<u64>| async move {
///         Ok::<_, std::convert::Infallible>(items.iter().map(|x| x * x).collect::<Vec<_>>())
///     })
///     .unwrap();
/// let flushed = batcher.submit(7).await.unwrap();
/// batcher.flush().await;
/// assert_eq!(flushed.await.unwrap(), 49);
/// # }
/// ```
pub trait FlushOutput<O> {
    /// Splits `self` into exactly `items` outputs, or returns how many outputs
    /// there actually were.
    ///
    /// # Errors
    ///
    /// The actual number of outputs when it differs from `items`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flowgate::batch::FlushOutput;
    ///
    /// assert_eq!(().into_outputs(2), Ok(vec![(), ()]));
    /// assert_eq!(vec!["a", "b"].into_outputs(2), Ok(vec!["a", "b"]));
    /// // One output short: the batch fails with `FlushError::OutputMismatch`.
    /// assert_eq!(vec!["a"].into_outputs(2), Err(1));
    /// ```
    fn into_outputs(self, items: usize) -> Result<Vec<O>, usize>;
}

impl FlushOutput<()> for () {
    fn into_outputs(self, items: usize) -> Result<Vec<()>, usize> {
        // A vector of a zero-sized type never allocates.
        Ok(vec![(); items])
    }
}

impl<O> FlushOutput<O> for Vec<O> {
    fn into_outputs(self, items: usize) -> Result<Vec<O>, usize> {
        if self.len() == items {
            Ok(self)
        } else {
            Err(self.len())
        }
    }
}
