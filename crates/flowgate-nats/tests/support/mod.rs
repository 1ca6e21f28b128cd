//! A nats-server of a test's own: `nats-server -js` on a free loopback port
//! with its store in a temporary directory, stopped (and the directory
//! removed) on drop; it can be stopped and restarted on the same port and
//! store. The binary is `$FLOWGATE_TEST_NATS_SERVER` or `nats-server` on the
//! `PATH`. Without it the tests skip, except under `CI=true`, where they
//! fail (`dev/test.sh` installs it).

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_nats::jetstream;

pub struct PrivateNats {
    child: Option<Child>,
    dir: PathBuf,
    pub port: u16,
    binary: String,
}

impl PrivateNats {
    /// Starts one, or returns `None` (skip) when there is no nats-server and
    /// not under CI.
    pub async fn start() -> Option<PrivateNats> {
        let binary =
            std::env::var("FLOWGATE_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        if Command::new(&binary)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{binary} is not installed; under CI=true this test must not skip");
            }
            eprintln!("skipped: nats-server is not installed (dev/test.sh installs it)");
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let base = std::env::var("FLOWGATE_TEST_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| std::env::temp_dir());
        let dir = base.join(format!(
            "flowgate-nats-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let mut server = PrivateNats {
            child: None,
            dir,
            port,
            binary,
        };
        server.run().await;
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server process and waits until it accepts connections.
    pub async fn run(&mut self) {
        let log = std::fs::File::create(self.dir.join("nats.log")).unwrap();
        let child = Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.dir.join("store"))
            // For dev/servers.sh, which stops servers a killed test left.
            .arg("-P")
            .arg(self.dir.join("nats.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let mut last = String::new();
        for _ in 0..300 {
            match async_nats::connect(self.url()).await {
                // JetStream starts before the server listens.
                Ok(_) => return,
                Err(err) => last = format!("connect: {err}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default();
        panic!(
            "nats-server did not start on port {} ({last}):\n{log}",
            self.port
        );
    }

    /// Stops the server (SIGKILL: no goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url()).await.expect("connect")
    }

    pub async fn jetstream(&self) -> jetstream::Context {
        jetstream::new(self.client().await)
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Creates stream `name` on `subject.>` and publishes `n` messages
/// `subject.<i>` with bodies `"<i>"`, each stored before the next.
pub async fn publish(js: &jetstream::Context, name: &str, subject: &str, n: usize) {
    js.get_or_create_stream(jetstream::stream::Config {
        name: name.into(),
        subjects: vec![format!("{subject}.>")],
        ..Default::default()
    })
    .await
    .expect("create stream");
    let mut acks = Vec::new();
    for i in 0..n {
        acks.push(
            js.publish(format!("{subject}.{i}"), i.to_string().into())
                .await
                .expect("publish"),
        );
    }
    for ack in acks {
        ack.await.expect("stored");
    }
}

/// The consumer's pending counts: (not yet delivered, delivered and not
/// acked).
pub async fn pending(js: &jetstream::Context, stream: &str, consumer: &str) -> (u64, usize) {
    let stream = js.get_stream(stream).await.expect("stream");
    let info = stream.consumer_info(consumer).await.expect("consumer info");
    (info.num_pending, info.num_ack_pending)
}

/// Waits (up to a minute; the condition is expected to hold soon) until
/// `check` returns true.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}
