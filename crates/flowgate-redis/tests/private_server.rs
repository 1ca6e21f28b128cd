//! Tests that need a redis-server of their own, to restart it or to set a
//! password: each starts `redis-server` on a free loopback port in a
//! temporary directory. Without the binary they skip, except under
//! `CI=true`, where they fail (`dev/test.sh` installs it).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flowgate_redis::{Delivery, RedisStreamSource, SourceError};
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

/// A redis-server of this test's own, stopped (and its directory removed)
/// on drop.
struct PrivateRedis {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    args: Vec<String>,
}

impl PrivateRedis {
    /// Starts one with `args`, or returns `None` (skip) when `redis-server`
    /// is not installed and not under CI.
    async fn start(args: &[&str]) -> Option<PrivateRedis> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("redis-server is not installed; under CI=true this test must not skip");
            }
            eprintln!("skipped: redis-server is not installed (dev/test.sh installs it)");
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "flowgate-redis-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = PrivateRedis {
            child: None,
            dir,
            port,
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        server.run().await;
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server process and waits until it accepts connections.
    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(&self.args)
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "redis-server did not start on port {}: {}",
            self.port,
            std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
        );
    }

    /// Kills the server (as a crash would) and waits until it is gone.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn connection(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Polls `check` every 20 ms, for 30 s at most.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within 30 s: {what}")
}

/// A private server that keeps an append-only file (fsync on every write),
/// `n` messages in the stream `s`, and a source of group `g` that has read
/// them all and acked none: the server, its URL, a plain connection, the
/// source and its deliveries.
async fn read_all(
    n: usize,
) -> Option<(
    PrivateRedis,
    String,
    MultiplexedConnection,
    RedisStreamSource,
    Vec<Delivery>,
)> {
    let server = PrivateRedis::start(&["--appendonly", "yes", "--appendfsync", "always"]).await?;
    let url = server.url();
    let mut conn = connection(&url).await;
    for i in 0..n {
        let _: String = conn.xadd("s", "*", &[("n", i.to_string())]).await.unwrap();
    }
    let mut source = RedisStreamSource::builder(&url, "s", "g", "c1")
        .block(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..n {
        let delivery = tokio::time::timeout(Duration::from_secs(10), source.next())
            .await
            .expect("a delivery within 10 s")
            .unwrap()
            .unwrap();
        held.push(delivery);
    }
    Some((server, url, conn, source, held))
}

#[tokio::test]
async fn acks_survive_a_redis_restart() {
    let n = 200;
    let Some((mut server, url, _conn, source, held)) = read_all(n).await else {
        return;
    };

    // The server goes down with everything read and nothing acked; the
    // messages are "written" now, and acked while it is down.
    server.kill();
    let acks: Vec<_> = held
        .into_iter()
        .map(|delivery| tokio::spawn(delivery.ack()))
        .collect();
    eventually("the acker retries", || source.stats().ack_retries > 0).await;
    server.run().await;
    for ack in acks {
        ack.await.unwrap().expect("acked after the restart");
    }
    assert_eq!(source.acker().acked(), n as u64);

    let mut conn = connection(&url).await;
    let len: usize = conn.xlen("s").await.unwrap();
    assert_eq!(len, n, "the stream survived the restart");
    let pending: redis::streams::StreamPendingReply = conn.xpending("s", "g").await.unwrap();
    assert_eq!(pending.count(), 0, "nothing left pending");
}

#[tokio::test]
async fn a_wrong_password_shows_the_servers_message() {
    let Some(server) = PrivateRedis::start(&["--requirepass", "right-secret"]).await else {
        return;
    };
    let url = format!("redis://:wrong-secret@127.0.0.1:{}/", server.port);
    let start = std::time::Instant::now();
    let err = RedisStreamSource::builder(&url, "s", "g", "c")
        .connect()
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, SourceError::Connect { .. }), "{err}");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!(
            "cannot connect to Redis at 127.0.0.1:{}/0",
            server.port
        )),
        "{shown}"
    );
    assert!(shown.contains("WRONGPASS"), "the server's message: {shown}");
    assert!(!shown.contains("secret"), "no password shown: {shown}");
    assert!(!err.is_transient());

    // No password at all: the server's NOAUTH, also at connect.
    let err = RedisStreamSource::builder(server.url(), "s", "g", "c")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Connect { .. }), "{err}");
    let shown = err.to_string();
    assert!(shown.contains("NOAUTH"), "{shown}");
    assert!(
        shown.starts_with(&format!(
            "cannot connect to Redis at 127.0.0.1:{}/0",
            server.port
        )),
        "{shown}"
    );

    // The right one works.
    let url = format!("redis://:right-secret@127.0.0.1:{}/", server.port);
    let source = RedisStreamSource::builder(&url, "s", "g", "c")
        .connect()
        .await
        .unwrap();
    assert_eq!(source.server(), format!("127.0.0.1:{}/0", server.port));

    // Reads (on a connection of their own: AUTH, then SELECT of the URL's
    // database) and acks work with a password and another database.
    let url = format!("redis://:right-secret@127.0.0.1:{}/3", server.port);
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg("s3")
        .arg("*")
        .arg("body")
        .arg("in db 3")
        .query_async(&mut admin)
        .await
        .unwrap();
    let mut source = RedisStreamSource::builder(&url, "s3", "g", "c")
        .connect()
        .await
        .unwrap();
    let delivery = source.next().await.unwrap().unwrap();
    assert_eq!(delivery.field("body"), Some(&b"in db 3"[..]));
    delivery.ack().await.unwrap();
    let pending: redis::streams::StreamPendingReply = admin.xpending("s3", "g").await.unwrap();
    assert_eq!(pending.count(), 0, "acked in database 3");
}

/// `calls` of `cmdstat_<command>` in `INFO commandstats` (0 if never called).
async fn command_calls(conn: &mut MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn ack_all_acks_a_batch_with_one_xack_and_releases_the_leases() {
    // A server of its own: nobody else's XACKs in its command counters.
    let Some(server) = PrivateRedis::start(&[]).await else {
        return;
    };
    let url = server.url();
    let mut conn = connection(&url).await;
    // More than the batched acks' 512 per XACK: they would need two.
    let n = 600;
    for i in 0..n {
        let _: String = conn.xadd("s", "*", &[("n", i.to_string())]).await.unwrap();
    }
    let mut source = RedisStreamSource::builder(&url, "s", "g", "c1")
        .batch_size(64)
        .block(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for _ in 0..n {
        let delivery = tokio::time::timeout(Duration::from_secs(10), source.next())
            .await
            .expect("a delivery within 10 s")
            .unwrap()
            .unwrap();
        tokens.push(delivery.into_parts().1);
    }
    assert_eq!(source.stats().held, n as u64);
    let before = command_calls(&mut conn, "xack").await;
    source.acker().ack_all(tokens).await.unwrap();
    assert_eq!(
        command_calls(&mut conn, "xack").await - before,
        1,
        "one XACK for the whole batch"
    );
    assert_eq!(source.stats().held, 0, "every lease released");
    assert_eq!(source.acker().acked(), n as u64);
    let pending: redis::streams::StreamPendingReply = conn.xpending("s", "g").await.unwrap();
    assert_eq!(pending.count(), 0, "nothing left pending");

    // Nothing to ack: nothing sent.
    source.acker().ack_all(Vec::new()).await.unwrap();
    assert_eq!(command_calls(&mut conn, "xack").await - before, 1);
}

#[tokio::test]
async fn ack_all_survives_a_redis_restart() {
    let n = 200;
    let Some((mut server, url, _conn, source, held)) = read_all(n).await else {
        return;
    };
    let tokens: Vec<_> = held.into_iter().map(|d| d.into_parts().1).collect();

    // Down with everything read and nothing acked; acked while it is down.
    server.kill();
    let acker = source.acker().clone();
    let ack = tokio::spawn(async move { acker.ack_all(tokens).await });
    eventually("ack_all retries", || source.stats().ack_retries > 0).await;
    assert_eq!(source.stats().held, n as u64, "leases kept while retrying");
    server.run().await;
    ack.await.unwrap().expect("acked after the restart");
    assert_eq!(source.acker().acked(), n as u64);
    assert_eq!(source.stats().held, 0);

    let mut conn = connection(&url).await;
    let pending: redis::streams::StreamPendingReply = conn.xpending("s", "g").await.unwrap();
    assert_eq!(pending.count(), 0, "nothing left pending");
}
