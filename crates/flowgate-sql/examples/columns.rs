//! A pipeline of your own at `flowgate ingest`'s speed: raw messages with
//! acknowledgement tokens → `write_batches` → rows appended by column to a
//! `RowBatch` → `SqliteSink::write_batch` → each batch's tokens, once its
//! rows are committed.
//!
//! ```text
//! cargo run --release -p flowgate-sql --example columns
//! ```
//!
//! No row is allocated: each message's values go from its bytes straight
//! into the batch's column buffers (`ValueRef::parse` borrows them), and
//! the sink binds them from there. A message whose fields do not fit is set
//! aside with its reason, and its token with it, instead of failing the
//! batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowgate::prelude::*;
use flowgate_sql::{ColumnType, RowBatch, RowOutcome, SqliteSink, Table, ValueRef};
use futures_util::{StreamExt, stream};

/// A message as a broker client gives it: an id and raw fields.
struct Message {
    id: String,
    amount: Vec<u8>,
    body: Vec<u8>,
}

/// What acknowledges a message (a broker's delivery tag, an offset).
type Token = u64;

const MESSAGES: u64 = 200_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("flowgate-columns-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let table = Table::builder("orders")
        .text("id")
        .integer("amount")
        .blob("body")
        .key("id")
        .build()?;
    // The sink writes RowBatches only: its own encoder is never used.
    let sink = SqliteSink::open(dir.join("orders.db"), table.clone(), |_: &()| Vec::new()).await?;

    // Every 1000th message has an amount that is not a number.
    let messages = stream::iter((0..MESSAGES).map(|i| {
        let amount = if i % 1000 == 999 {
            b"n/a".to_vec()
        } else {
            i.to_string().into_bytes()
        };
        let message = Message {
            id: format!("order-{i}"),
            amount,
            body: format!(r#"{{"order":{i}}}"#).into_bytes(),
        };
        (message, i as Token)
    }));

    let start = Instant::now();
    let (mut acked, mut misfits) = (0u64, 0u64);
    let mut written = Box::pin(messages.write_batches(
        1000,
        Duration::from_millis(20),
        2,
        |batch: Vec<Message>| {
            let (sink, table) = (sink.clone(), table.clone());
            // Appended as the batch is formed: the values are copied once,
            // into the batch's columns.
            let mut rows = RowBatch::with_capacity(&table, batch.len());
            let mut refused = Vec::new();
            for (index, message) in batch.iter().enumerate() {
                let appended = ValueRef::parse(ColumnType::Integer, &message.amount)
                    .map_err(|e| e.to_string())
                    .and_then(|amount| {
                        rows.append(&[
                            ValueRef::Text(&message.id),
                            amount,
                            ValueRef::Blob(&message.body),
                        ])
                        .map_err(|e| e.to_string())
                    });
                if let Err(reason) = appended {
                    refused.push((index, reason));
                }
            }
            async move { (sink.write_batch(Arc::new(rows)).await, refused) }
        },
    ));
    while let Some(((result, refused), tokens)) = written.next().await {
        let outcomes = result?; // a transient error would be retried here
        // One outcome per appended row, in order; the refused messages had
        // none: dead-letter them with their reason, acknowledge the rest.
        assert_eq!(outcomes.len() + refused.len(), tokens.len());
        let stored = outcomes
            .iter()
            .filter(|o| matches!(o, RowOutcome::Inserted | RowOutcome::Duplicate))
            .count();
        if let Some((index, reason)) = refused.first()
            && misfits == 0
        {
            println!("message {} set aside: {reason}", tokens[*index]);
        }
        misfits += refused.len() as u64;
        acked += stored as u64;
    }
    let elapsed = start.elapsed();
    println!(
        "{acked} rows written and acknowledged, {misfits} messages set aside, in {:.2} s ({:.0} rows/s)",
        elapsed.as_secs_f64(),
        acked as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(sink.count().await?, acked);
    assert_eq!(acked + misfits, MESSAGES);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
