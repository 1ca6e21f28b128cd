//! `flowgate ingest --nats` end to end: a private JetStream nats-server per
//! test (`FLOWGATE_TEST_NATS_SERVER`, set by `dev/servers.sh`), the shared
//! PostgreSQL (or a private one to stop), and the binary as a child process.
//! A consumer SIGKILLed with messages delivered and not acked, restarted,
//! then joined by a second one; a PostgreSQL outage mid-run; the flags that
//! do not apply to NATS. Runs are stopped with SIGTERM once the servers show
//! everything written and acked, so no outcome depends on speed.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use support::*;

/// A nats-server of this test's own: same port and store on restart.
struct PrivateNats {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl PrivateNats {
    fn start() -> Option<Self> {
        let bin = PathBuf::from(need("FLOWGATE_TEST_NATS_SERVER")?);
        let mut nats = PrivateNats {
            bin,
            port: free_port(),
            child: None,
            dir: TempDir::new("nats"),
        };
        nats.run();
        Some(nats)
    }

    fn run(&mut self) {
        let dir = self.dir.path();
        let child = Command::new(&self.bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(dir.join("store"))
            .arg("-P")
            .arg(dir.join("nats.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn jetstream(&self) -> jetstream::Context {
        jetstream::new(async_nats::connect(self.url()).await.expect("connect"))
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One stream, one durable consumer, one table.
struct Target {
    nats: PrivateNats,
    postgres: String,
    stream: String,
    table: String,
}

impl Target {
    fn new(nats: PrivateNats, postgres: &str, test: &str) -> Self {
        let name = unique(test);
        Target {
            nats,
            postgres: postgres.to_owned(),
            stream: name.to_uppercase(),
            table: name,
        }
    }

    /// Publishes `n` messages with `flowgate publish --nats` (each call
    /// numbers its bodies from 0; the rows are keyed by stream sequence, so
    /// every message is a row of its own).
    fn publish(&self, n: u64) {
        run_flowgate(
            "publish",
            [
                "publish",
                "--nats",
                &self.nats.url(),
                "--stream",
                &self.stream,
                "--subject",
                &format!("{}.in", self.table),
                "--messages",
                &n.to_string(),
            ],
            RUN_TIMEOUT,
        )
        .assert_code(0);
    }

    fn spawn(&self, name: &str, extra: &[&str]) -> Flowgate {
        let mut args = vec![
            "ingest".to_owned(),
            "--nats".into(),
            self.nats.url(),
            "--stream".into(),
            self.stream.clone(),
            "--group".into(),
            "writers".into(),
            "--postgres".into(),
            self.postgres.clone(),
            "--table".into(),
            self.table.clone(),
            "--no-progress".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        flowgate(name, args)
    }

    /// (not yet delivered, delivered and not acked), or `None` before the
    /// consumer exists.
    async fn pending(&self) -> Option<(u64, u64)> {
        let js = self.nats.jetstream().await;
        let stream = js.get_stream(&self.stream).await.ok()?;
        let info = stream.consumer_info("writers").await.ok()?;
        Some((info.num_pending, info.num_ack_pending as u64))
    }

    async fn rows(&self) -> (u64, u64) {
        rows_by(&self.postgres, &self.table, "id").await
    }

    /// Waits until `n` distinct rows are stored and nothing is pending.
    async fn wait_done(&self, n: u64, live: &mut [&mut Flowgate]) {
        wait_until(
            "every message written and acked",
            RUN_TIMEOUT,
            live,
            async || {
                let (rows, distinct) = self.rows().await;
                let pending = self.pending().await;
                if rows != distinct {
                    Check::Fail(format!("a key stored twice: {rows} rows, {distinct} keys"))
                } else if rows > n {
                    Check::Fail(format!("{rows} rows, more than {n}"))
                } else if rows == n && pending == Some((0, 0)) {
                    Check::Done
                } else {
                    Check::Wait(format!("{rows} rows, pending {pending:?}"))
                }
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_restart_and_a_second_consumer_store_every_message_exactly_once() {
    let Some(postgres) = shared_postgres() else {
        return;
    };
    let Some(nats) = PrivateNats::start() else {
        return;
    };
    let t = Target::new(nats, &postgres, "nats_sigkill");
    t.publish(20_000);
    // A short ack wait: what the killed consumer held comes back soon.
    let args = ["--ack-wait-ms", "2000", "--max-deliveries", "20"];
    for _ in 0..2 {
        let mut ingest = t.spawn("c1", &args);
        kill_while_holding(&mut ingest, async || {
            t.rows().await.0 > 0 && t.pending().await.is_some_and(|(_, held)| held > 0)
        })
        .await;
    }
    // Restarted, and joined by a second instance of the same consumer.
    let mut a = t.spawn("a", &args);
    let mut b = t.spawn("b", &args);
    t.wait_done(20_000, &mut [&mut a, &mut b]).await;
    a.signal("TERM");
    b.signal("TERM");
    let (a, b) = (a.wait(EXIT_TIMEOUT).await, b.wait(EXIT_TIMEOUT).await);
    a.assert_code(0);
    b.assert_code(0);
    let (ra, rb) = (a.report(), b.report());
    ra.assert_clean();
    rb.assert_clean();
    assert_eq!(ra.dead_lettered + rb.dead_lettered, 0, "{a}\n{b}");
    assert_eq!(t.rows().await, (20_000, 20_000));
    assert_eq!(t.pending().await, Some((0, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_is_back_pressure_and_nothing_is_lost() {
    let Some(mut pg) = PrivatePostgres::start() else {
        return;
    };
    let Some(nats) = PrivateNats::start() else {
        return;
    };
    let t = Target::new(nats, &pg.url(), "nats_outage");
    t.publish(5_000);
    // Held messages are signalled every 200 ms against a 3 s ack wait: a
    // machine would have to stall for 15 signal periods to lose one.
    let mut ingest = t.spawn(
        "c1",
        &["--ack-wait-ms", "3000", "--progress-interval-ms", "200"],
    );
    wait_until(
        "some rows written",
        RUN_TIMEOUT,
        &mut [&mut ingest],
        async || {
            let (rows, _) = t.rows().await;
            if rows > 0 {
                Check::Done
            } else {
                Check::Wait(format!("{rows} rows"))
            }
        },
    )
    .await;
    pg.stop();
    // Messages arrive while the sink is down, whatever the timing (the
    // first 5,000 may all be written already): their writes fail and are
    // retried. Longer than the ack wait: only the in-progress signals keep
    // the held messages from being delivered again.
    t.publish(5_000);
    wait_until(
        "messages held while the sink is down",
        RUN_TIMEOUT,
        &mut [&mut ingest],
        async || match t.pending().await {
            Some((_, held)) if held > 0 => Check::Done,
            other => Check::Wait(format!("(pending, held) {other:?}")),
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    pg.start_again();
    t.wait_done(10_000, &mut [&mut ingest]).await;
    let done = ingest.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert!(report.retries > 0, "the outage was retried: {done}");
    assert_eq!(report.dead_lettered, 0, "{done}");
    assert_eq!(report.received, 10_000, "no redelivery: {done}");
}

#[test]
fn flags_that_do_not_apply_to_nats_are_refused() {
    for (extra, flag) in [
        (&["--consumer", "x"][..], "--consumer"),
        (&["--claim-idle-ms", "100"][..], "--claim-idle-ms"),
        (&["--dead-letter-stream", "d"][..], "--dead-letter-stream"),
        (&["--hung-after-ms", "5"][..], "--hung-after-ms"),
        (&["--redis", "redis://127.0.0.1:1/"][..], "--redis"),
        (&["--messages", "5"][..], "--messages"),
    ] {
        let mut args = vec![
            "ingest",
            "--nats",
            "nats://127.0.0.1:1",
            "--stream",
            "S",
            "--group",
            "g",
        ];
        args.extend_from_slice(extra);
        let done = run_flowgate("flags", args, RUN_TIMEOUT);
        done.assert_code(2);
        done.assert_stderr_has(flag);
    }
    for args in [
        &["ingest", "--subject", "a.b"][..],
        &["ingest", "--ack-wait-ms", "5"][..],
        &["ingest", "--progress-interval-ms", "5"][..],
        &["ingest", "--nats", "nats://127.0.0.1:1", "--stream", "S"][..],
        &["publish", "--nats", "nats://127.0.0.1:1", "--stream", "S"][..],
        &[
            "ingest",
            "--redis",
            "redis://127.0.0.1:1/",
            "--stream",
            "S",
            "--group",
            "g",
            "--subject",
            "a",
        ][..],
        &[
            "ingest",
            "--redis",
            "redis://127.0.0.1:1/",
            "--stream",
            "S",
            "--group",
            "g",
            "--ack-wait-ms",
            "9",
        ][..],
        &[
            "ingest",
            "--redis",
            "redis://127.0.0.1:1/",
            "--stream",
            "S",
            "--group",
            "g",
            "--dead-letter-subject",
            "d",
        ][..],
    ] {
        run_flowgate("flags", args, RUN_TIMEOUT).assert_code(2);
    }
}

#[test]
fn an_unreachable_nats_server_fails_at_once_naming_it() {
    let port = free_port();
    let url = format!("nats://user:secret@127.0.0.1:{port}");
    let dir = TempDir::new("unreachable");
    let db = dir.path().join("out.sqlite");
    let done = run_flowgate(
        "unreachable",
        [
            "ingest",
            "--nats",
            &url,
            "--stream",
            "S",
            "--group",
            "g",
            "--sqlite",
            db.to_str().unwrap(),
        ],
        RUN_TIMEOUT,
    );
    done.assert_code(1);
    done.assert_error_has(&format!("127.0.0.1:{port}"));
    assert!(!done.error_chain().contains("secret"), "{done}");
}
