//! Reads and acks N messages, for measuring the source's cost per message
//! (for example under `valgrind --tool=callgrind`).
//!
//! ```text
//! read_ack URL STREAM publish N     # adds N messages (seq, ~100-byte body)
//! read_ack URL STREAM consume N     # reads them as one consumer, acks per 1000
//!                                   # (Acker::ack_all; FLOWGATE_BENCH_ACK=each: AckToken::ack)
//! ```

use std::time::Instant;

use futures_util::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, stream, mode, n] = args.as_slice() else {
        return Err("usage: read_ack URL STREAM publish|consume N".into());
    };
    let n: usize = n.parse()?;
    if mode == "publish" {
        let mut conn = redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        let body = "x".repeat(100);
        for start in (0..n).step_by(1000) {
            let mut pipe = redis::pipe();
            for i in start..(start + 1000).min(n) {
                pipe.cmd("XADD")
                    .arg(stream)
                    .arg("*")
                    .arg("seq")
                    .arg(i)
                    .arg("body")
                    .arg(&body)
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn).await?;
        }
        return Ok(());
    }
    let mut source = flowgate_redis::RedisStreamSource::builder(url, stream, "bench", "c1")
        .batch_size(1000)
        .connect()
        .await?;
    let started = Instant::now();
    let mut tokens = Vec::with_capacity(1000);
    let mut bytes = 0usize;
    let mut done = 0;
    while done < n {
        let delivery = source.next().await.ok_or("the stream ended")??;
        let (message, token) = delivery.into_parts();
        bytes += message.fields.get("body").map_or(0, <[u8]>::len);
        tokens.push(token);
        done += 1;
        if tokens.len() == 1000 || done == n {
            ack(&source, std::mem::take(&mut tokens)).await?;
        }
    }
    source.acker().close().await;
    eprintln!(
        "{n} messages ({bytes} body bytes) in {:?}; stats {:?}",
        started.elapsed(),
        source.stats()
    );
    Ok(())
}

async fn ack(
    source: &flowgate_redis::RedisStreamSource,
    tokens: Vec<flowgate_redis::AckToken>,
) -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var("FLOWGATE_BENCH_ACK").is_ok_and(|v| v == "each") {
        futures_util::future::try_join_all(tokens.into_iter().map(|t| t.ack())).await?;
    } else {
        source.acker().ack_all(tokens).await?;
    }
    Ok(())
}
