//! A Kafka consumer group end to end, with no broker to install: librdkafka's
//! mock cluster (three brokers, in this process) holds a topic of two
//! partitions; a [`KafkaSource`] reads it, "writes" each message, acks it,
//! dead-letters the one with an empty value, and commits on close. A second
//! source in the same group then finds nothing left to read.
//!
//! ```text
//! cargo run -p flowgate-kafka --example mock
//! ```

use std::time::Duration;

use flowgate_kafka::rdkafka::ClientConfig;
use flowgate_kafka::rdkafka::mocking::MockCluster;
use flowgate_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use flowgate_kafka::{KafkaSource, Ordering};
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = MockCluster::new(3)?;
    cluster.create_topic("orders", 2, 1)?;
    cluster.create_topic("orders.dead", 1, 1)?;
    let brokers = cluster.bootstrap_servers();

    // 20 orders over two partitions; order 7 has no value (poison).
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()?;
    for i in 0..20u32 {
        let key = format!("customer-{}", i % 3);
        let value = if i == 7 {
            String::new()
        } else {
            format!("order {i}")
        };
        let record = FutureRecord::to("orders")
            .key(&key)
            .payload(&value)
            .partition((i % 2) as i32);
        producer
            .send(record, Duration::from_secs(5))
            .await
            .map_err(|(err, _)| err)?;
    }

    let mut source = KafkaSource::builder(&brokers, ["orders"], "writers")
        .ordering(Ordering::Key) // one message per customer at a time
        .commit_interval(Duration::from_millis(100))
        .connect()
        .await?;
    let acker = source.acker().clone();
    let (mut written, mut dead) = (0, 0);
    while written + dead < 20 {
        let delivery = source.next().await.expect("the source runs")?;
        if delivery.payload().is_empty() {
            delivery.dead_letter("an order without a body").await?;
            dead += 1;
        } else {
            // ... write it durably, keyed by (topic, partition, offset), then:
            delivery.ack()?;
            written += 1;
        }
    }
    source.stop_handle().stop();
    acker.close().await; // the last commit; leaves the group
    println!(
        "written {written}, dead-lettered {dead}, committed {:?}",
        source.committed()
    );

    // The group's commits hold: a new member reads nothing more.
    let mut again = KafkaSource::builder(&brokers, ["orders"], "writers")
        .connect()
        .await?;
    let nothing = tokio::time::timeout(Duration::from_secs(2), again.next()).await;
    println!(
        "a second run finds {}",
        if nothing.is_err() {
            "nothing to read"
        } else {
            "more"
        }
    );
    again.acker().close().await;
    Ok(())
}
