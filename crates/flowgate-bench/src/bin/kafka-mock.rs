//! A Kafka "broker" for the Kafka benchmark (`dev/bench-kafka.sh`):
//! librdkafka's mock cluster of 3 brokers (`rdkafka::mocking::MockCluster`,
//! in memory, on real loopback TCP ports, so other processes can connect),
//! with one topic created. It prints the bootstrap servers as one line on
//! stdout, then runs until stdin closes, SIGTERM or SIGINT.
//!
//! ```text
//! kafka-mock --topic BENCH --partitions 4 <fifo   # prints 127.0.0.1:P1,127.0.0.1:P2,…
//! ```
//!
//! The cluster is the one librdkafka makes for a client configured with
//! `test.mock.num.brokers` (the same as `MockCluster::new(3)`), so that its
//! group coordinator's `group.initial.rebalance.delay.ms` can be set: it is
//! 3000 ms by default, as on a real broker, and every fresh consumer group
//! would wait that long before its first message; `--rebalance-delay-ms`
//! (default 0) sets it.
//!
//! The mock cluster is not a real broker: no disk, no replication traffic
//! (replication factor 1), all brokers in this one process — its CPU is
//! what the benchmark reports as the broker's.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Parser;
use flowgate_kafka::rdkafka::ClientConfig;
use flowgate_kafka::rdkafka::bindings;
use flowgate_kafka::rdkafka::producer::{BaseProducer, Producer};
use tokio::signal::unix::{SignalKind, signal};

/// A 3-broker mock Kafka cluster with one topic, until stdin closes.
#[derive(Debug, Parser)]
struct Args {
    /// The topic to create.
    #[arg(long)]
    topic: String,
    /// Its partitions.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Brokers in the cluster.
    #[arg(long, default_value_t = 3)]
    brokers: i32,
    /// The group coordinator's `group.initial.rebalance.delay.ms`.
    #[arg(long, default_value_t = 0)]
    rebalance_delay_ms: i32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let owner: BaseProducer = match ClientConfig::new()
        .set("test.mock.num.brokers", args.brokers.to_string())
        .create()
    {
        Ok(owner) => owner,
        Err(err) => {
            eprintln!("kafka-mock: cannot start the mock cluster: {err}");
            return ExitCode::FAILURE;
        }
    };
    let Some(cluster) = owner.client().mock_cluster() else {
        eprintln!("kafka-mock: the client made no mock cluster");
        return ExitCode::FAILURE;
    };
    // SAFETY: the client made this mock cluster (checked just above) and
    // owns it: the pointer is valid while `owner` lives, which is until the
    // end of main, after this call.
    unsafe {
        let raw = bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
        bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(raw, args.rebalance_delay_ms);
    }
    if let Err(err) = cluster.create_topic(&args.topic, args.partitions, 1) {
        eprintln!(
            "kafka-mock: cannot create the topic {:?}: {err}",
            args.topic
        );
        return ExitCode::FAILURE;
    }
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{}", cluster.bootstrap_servers())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }

    // stdin closing (the script that started us exited) ends the run.
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0_u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed_tx.send(());
    });
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("kafka-mock: cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    tokio::select! {
        _ = closed_rx => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(cluster);
    drop(owner);
    ExitCode::SUCCESS
}
