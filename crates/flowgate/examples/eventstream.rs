//! The seed's basic example, ported: three subscribers, three published
//! messages, each subscriber prints all three, then the stream is closed.
//!
//! ```text
//! cargo run --example eventstream
//! ```
//!
//! As in the original, the publisher pauses between messages, so the lines
//! arrive message by message; within one message the subscribers' order may
//! vary.

use std::time::Duration;

use flowgate::broadcast::Publisher;

#[tokio::main]
async fn main() {
    let mut stream = Publisher::new();

    let mut readers = Vec::new();
    for i in 0..3 {
        let mut sub = stream.subscribe();
        readers.push(tokio::spawn(async move {
            // `recv` resolves to `None` at the end of the stream: the Go
            // iterator's `ErrDone`.
            while let Some(message) = sub.recv().await {
                println!("{i}: {message}");
            }
        }));
    }

    stream.publish("Hello!");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.publish("I am");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.publish("EventStream");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.close();

    for reader in readers {
        reader.await.expect("subscriber task panicked");
    }
}
