//! Shared by the end-to-end test files (`mod support;`): the servers, the
//! `flowgate` binary, and the state of the servers after a run.
//!
//! - The shared servers of `dev/test.sh` (`FLOWGATE_TEST_REDIS_URL`,
//!   `FLOWGATE_TEST_POSTGRES_URL`), for tests that leave them running; each
//!   test uses streams and tables of its own.
//! - [`PrivatePostgres`] and [`PrivateRedis`]: instances of a test's own, on a
//!   free loopback port in a temporary directory, which it may stop and
//!   restart (on the same port, with the same data) without disturbing the
//!   tests beside it; stopped and deleted on drop, also when the test panics.
//!   They need `FLOWGATE_TEST_PG_BIN` (and `FLOWGATE_TEST_PG_RUN_AS` when
//!   running as root: PostgreSQL refuses root) and
//!   `FLOWGATE_TEST_REDIS_SERVER`, exported by `dev/servers.sh`.
//! - [`Flowgate`]: the binary under test as a child process, its output
//!   captured, waited for with a generous timeout (a hang fails the test with
//!   the output, it never hangs CI), killed on drop.
//! - [`Report`]: the report lines of `flowgate ingest` (docs: the CLI spec).
//!
//! Under `CI=true` a missing variable panics; otherwise the test prints
//! "skipped" and returns.
#![allow(dead_code)] // each test file uses a part of it

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a run may take before the test calls it a hang: generous, for a
/// debug build on two busy cores; only a hang reaches it.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(240);
/// How long a process may take to exit after it was told to stop (SIGTERM /
/// SIGINT), or to fail after an error.
pub(crate) const EXIT_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Environment

/// Whether this runs under CI (`CI=true`), where a missing server fails.
pub(crate) fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The value of the environment variable `var`. When it is missing: a panic
/// under CI, otherwise "skipped" on stderr and `None`.
pub(crate) fn need(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if under_ci() => panic!("{var} must be set under CI=true (dev/test.sh sets it)"),
        _ => {
            eprintln!("skipped: {var} is not set (dev/test.sh sets it)");
            None
        }
    }
}

/// The shared servers started by `dev/test.sh`.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    /// `redis://127.0.0.1:port/`.
    pub(crate) redis: String,
    /// `postgres://postgres@127.0.0.1:port/postgres`.
    pub(crate) postgres: String,
}

/// Both shared servers, or `None` (skipped) when their URLs are not set.
pub(crate) fn shared() -> Option<Shared> {
    let redis = need("FLOWGATE_TEST_REDIS_URL")?;
    let postgres = need("FLOWGATE_TEST_POSTGRES_URL")?;
    Some(Shared { redis, postgres })
}

/// The shared redis-server's URL, or `None` (skipped).
pub(crate) fn shared_redis() -> Option<String> {
    need("FLOWGATE_TEST_REDIS_URL")
}

/// The shared PostgreSQL's URL, or `None` (skipped).
pub(crate) fn shared_postgres() -> Option<String> {
    need("FLOWGATE_TEST_POSTGRES_URL")
}

/// A name unique to this process and call, made of `[a-z0-9_]` when `test`
/// is: fit for a table, a stream, a group.
pub(crate) fn unique(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{test}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory removed (with everything in it) on drop, under
/// `FLOWGATE_TEST_TMPDIR` when set (so that `dev/servers.sh` can stop what a
/// killed test binary left there), else the system's temporary directory.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<base>/<prefix>-<pid>-<n>`, mode 755 (PostgreSQL's user must
    /// be able to reach a data directory inside).
    pub(crate) fn new(prefix: &str) -> Self {
        let base = std::env::var_os("FLOWGATE_TEST_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let path = base.join(unique(prefix));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("creating {}: {err}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self(path)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nothing listens on, below the ephemeral range (so that no
/// client connection takes it while a private server is down for a restart),
/// spread by process id so that test binaries running at once rarely probe
/// the same ports.
pub(crate) fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let first = 20_000;
    let span = ephemeral_low.saturating_sub(first).max(1000);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (first + seed.wrapping_add(n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpStream::connect_timeout(
                &([127, 0, 0, 1], port).into(),
                Duration::from_millis(200),
            )
            .is_err()
        {
            return port;
        }
    }
    panic!("no free loopback port between {first} and {}", first + span);
}

/// Sends `signal` (`TERM`, `INT`, `KILL`, `STOP`, `CONT`) to process `pid`.
pub(crate) fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .expect("the kill command runs");
    assert!(status.success(), "kill -s {signal} {pid}: {status}");
}

/// Runs `command`, panicking with its output when it fails.
fn run_checked(command: &mut Command, what: &str) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("{what}: cannot run {command:?}: {err}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{what} failed ({}): {command:?}\n{text}",
        output.status
    );
    text
}

fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|err| format!("(cannot read {}: {err})", path.display()));
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}

// ---------------------------------------------------------------------------
// A private PostgreSQL

/// Options of a [`PrivatePostgres`].
#[derive(Debug, Clone, Default)]
pub(crate) struct PgOptions {
    /// Keep PostgreSQL's durable defaults (fsync, synchronous commit); off by
    /// default, for speed, unless a test is about durability.
    pub(crate) durable: bool,
    /// Give user `postgres` this password and require it (SCRAM) for
    /// connections over TCP; `None`: trust.
    pub(crate) password: Option<String>,
}

/// A PostgreSQL of one test's own: `initdb` in a temporary directory, on a free
/// loopback port; stopped (immediately) and deleted on drop.
#[derive(Debug)]
pub(crate) struct PrivatePostgres {
    bin: PathBuf,
    run_as: Option<String>,
    options: PgOptions,
    data: PathBuf,
    port: u16,
    running: bool,
    // Last: removed after the server is stopped.
    dir: TempDir,
}

impl PrivatePostgres {
    /// Starts one with trust authentication and fsync off, or `None`
    /// (skipped) when `FLOWGATE_TEST_PG_BIN` is not set.
    pub(crate) fn start() -> Option<Self> {
        Self::start_with(PgOptions::default())
    }

    /// Starts one with `options`, or `None` (skipped).
    pub(crate) fn start_with(options: PgOptions) -> Option<Self> {
        let bin = PathBuf::from(need("FLOWGATE_TEST_PG_BIN")?);
        let run_as = std::env::var("FLOWGATE_TEST_PG_RUN_AS")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| running_as_root().then(|| "postgres".to_owned()));
        let dir = TempDir::new("pg");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if let Some(user) = &run_as {
            run_checked(Command::new("chown").arg(user).arg(&data), "chown");
        }
        let mut pg = Self {
            bin,
            run_as,
            options,
            data,
            port: 0,
            running: false,
            dir,
        };
        pg.initdb();
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = free_port();
            match pg.try_start() {
                Ok(()) => return Some(pg),
                Err(log) => last = log, // the port was taken meanwhile: another
            }
        }
        panic!("private PostgreSQL did not start:\n{last}");
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        // The postgres user may not be allowed into the test's directory.
        command.current_dir(self.dir.path());
        command
    }

    fn initdb(&self) {
        let mut command = self.command("initdb");
        command
            .arg("-D")
            .arg(&self.data)
            .args(["-U", "postgres", "-E", "UTF8", "--no-sync"]);
        match &self.options.password {
            None => {
                command.args(["-A", "trust"]);
            }
            Some(password) => {
                let file = self.dir.path().join("pwfile");
                std::fs::write(&file, format!("{password}\n")).unwrap();
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
                command
                    .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                    .arg(format!("--pwfile={}", file.display()));
            }
        }
        run_checked(&mut command, "initdb");
    }

    fn try_start(&mut self) -> Result<(), String> {
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100",
            self.port,
            self.data.display()
        );
        if !self.options.durable {
            opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = self.data.join("server.log");
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "120", "-o", &opts, "start"])
            .stdin(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        if output.status.success() {
            self.running = true;
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start on port {} failed: {}\n{}",
                self.port,
                String::from_utf8_lossy(&output.stderr),
                tail(&log, 4000)
            ))
        }
    }

    /// Stops it (`pg_ctl stop -m fast`: clients are disconnected), waiting
    /// until it is down.
    pub(crate) fn stop(&mut self) {
        run_checked(
            self.command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "-t", "120", "stop"]),
            "pg_ctl stop",
        );
        self.running = false;
    }

    /// Starts it again after [`stop`](Self::stop), on the same port with the
    /// same data, waiting until it accepts connections.
    pub(crate) fn start_again(&mut self) {
        if let Err(log) = self.try_start() {
            panic!("private PostgreSQL did not start again:\n{log}");
        }
    }

    /// Stops and starts it.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Its port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, as error messages should name it.
    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The URL of database `postgres` as user `postgres` (no password).
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The URL of database `postgres` as user `postgres` with `password`.
    pub(crate) fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The end of the server's log.
    pub(crate) fn log_tail(&self) -> String {
        tail(&self.data.join("server.log"), 4000)
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The postmaster's process id (first line of `postmaster.pid`).
    pub(crate) fn pid(&self) -> u32 {
        let file = self.data.join("postmaster.pid");
        std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()))
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: no pid", file.display()))
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "-t", "60", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

// ---------------------------------------------------------------------------
// A private redis-server

/// A redis-server of one test's own, with `--appendonly yes --appendfsync
/// always` (a restart, even after SIGKILL, loses nothing acknowledged); the
/// same port and directory on restart; killed and deleted on drop.
#[derive(Debug)]
pub(crate) struct PrivateRedis {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    // Last: removed after the server is stopped.
    dir: TempDir,
}

impl PrivateRedis {
    /// Starts one, or `None` (skipped) when `FLOWGATE_TEST_REDIS_SERVER` is
    /// not set.
    pub(crate) fn start() -> Option<Self> {
        let bin = PathBuf::from(need("FLOWGATE_TEST_REDIS_SERVER")?);
        let mut redis = Self {
            bin,
            port: 0,
            child: None,
            dir: TempDir::new("redis"),
        };
        let mut last = String::new();
        for _ in 0..5 {
            redis.port = free_port();
            match redis.try_start() {
                Ok(()) => return Some(redis),
                Err(log) => last = log,
            }
        }
        panic!("private redis-server did not start:\n{last}");
    }

    fn try_start(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--daemonize", "no"])
            .arg("--pidfile")
            .arg(dir.join("redis.pid"))
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("cannot run {}: {err}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if ping(self.port) {
                return Ok(());
            }
            let child = self.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited ({status}):\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server on port {} not ready in 60 s:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it with SIGTERM (redis-server writes and syncs its append-only
    /// file and exits), waiting until it has exited.
    pub(crate) fn stop(&mut self) {
        self.end("TERM");
    }

    /// Kills it with SIGKILL, as a crash would.
    pub(crate) fn crash(&mut self) {
        self.end("KILL");
    }

    fn end(&mut self, signal: &str) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        send_signal(child.id(), signal);
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-server did not exit on SIG{signal}:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again after [`stop`](Self::stop) or [`crash`](Self::crash):
    /// same port, same directory (it loads its append-only file).
    pub(crate) fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        if let Err(log) = self.try_start() {
            panic!("private redis-server did not start again:\n{log}");
        }
    }

    /// Stops (SIGTERM) and starts it.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// `redis://127.0.0.1:port/`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The end of the server's log.
    pub(crate) fn log_tail(&self) -> String {
        tail(&self.dir.path().join("redis.log"), 4000)
    }

    /// Its directory (append-only file, log, pid file).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server runs").id()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a redis-server on `port` answers PING with PONG (not LOADING).
fn ping(port: u16) -> bool {
    let Ok(mut conn) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
    else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    if conn.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 64];
    matches!(conn.read(&mut reply), Ok(n) if reply[..n].starts_with(b"+PONG"))
}

// ---------------------------------------------------------------------------
// Load

/// `n` threads spinning on the CPU until dropped.
#[derive(Debug)]
pub(crate) struct CpuLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl CpuLoad {
    /// Starts `n` busy loops.
    pub(crate) fn start(n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------
// The flowgate binary

/// A running `flowgate` process; its stdout and stderr are collected as they
/// come. Killed (SIGKILL) on drop if still running.
#[derive(Debug)]
pub(crate) struct Flowgate {
    name: String,
    args: Vec<String>,
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    started: Instant,
}

/// Starts `flowgate ARGS...`; `name` names it in failure messages.
pub(crate) fn flowgate<I, S>(name: &str, args: I) -> Flowgate
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the flowgate binary runs");
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = vec![
        collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
        collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
    ];
    Flowgate {
        name: name.to_owned(),
        args,
        child,
        stdout,
        stderr,
        readers,
        status: None,
        started: Instant::now(),
    }
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

impl Flowgate {
    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its name in messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Sends it `signal` (`TERM`, `INT`, `STOP`, `CONT`, ...), if it runs.
    pub(crate) fn signal(&mut self, signal: &str) {
        if self.try_status().is_none() {
            send_signal(self.pid(), signal);
        }
    }

    /// Its exit status, if it has exited.
    pub(crate) fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Kills it with SIGKILL and waits for it; returns how it ended.
    pub(crate) fn kill(&mut self) -> Finished {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.status = Some(self.child.wait().expect("wait"));
        }
        self.finished()
    }

    /// Its output so far and its status, for a failure message.
    pub(crate) fn describe(&mut self) -> String {
        let status = match self.try_status() {
            Some(status) => status.to_string(),
            None => "still running".to_owned(),
        };
        describe_output(
            &self.name,
            &self.args,
            &status,
            self.started.elapsed(),
            &String::from_utf8_lossy(&self.stdout.lock().unwrap()),
            &String::from_utf8_lossy(&self.stderr.lock().unwrap()),
        )
    }

    /// Waits until it exits, at most `timeout`: past that it is killed and the
    /// test fails with its output.
    pub(crate) async fn wait(&mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        while self.try_status().is_none() {
            if Instant::now() > deadline {
                let output = self.describe();
                self.kill();
                panic!(
                    "{} did not exit within {timeout:?} (a hang?)\n{output}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.finished()
    }

    /// [`wait`](Self::wait), blocking the thread (for tests without a runtime).
    pub(crate) fn wait_blocking(&mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        while self.try_status().is_none() {
            if Instant::now() > deadline {
                let output = self.describe();
                self.kill();
                panic!(
                    "{} did not exit within {timeout:?} (a hang?)\n{output}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.finished()
    }

    /// Tells it to stop (SIGTERM: write and ack what was read, then exit)
    /// and waits for it ([`EXIT_TIMEOUT`]).
    pub(crate) async fn stop(&mut self) -> Finished {
        self.signal("TERM");
        self.wait(EXIT_TIMEOUT).await
    }

    fn finished(&mut self) -> Finished {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Finished {
            name: self.name.clone(),
            args: self.args.clone(),
            status: self.status.expect("exited"),
            took: self.started.elapsed(),
            stdout: String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned(),
        }
    }
}

impl Drop for Flowgate {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `flowgate ARGS...` to its end (at most `timeout`), blocking.
pub(crate) fn run_flowgate<I, S>(name: &str, args: I, timeout: Duration) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    flowgate(name, args).wait_blocking(timeout)
}

/// A `flowgate` process that has exited.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    /// Its name in messages.
    pub(crate) name: String,
    /// Its arguments.
    pub(crate) args: Vec<String>,
    /// How it ended.
    pub(crate) status: ExitStatus,
    /// From start to exit.
    pub(crate) took: Duration,
    /// All of its stdout.
    pub(crate) stdout: String,
    /// All of its stderr.
    pub(crate) stderr: String,
}

impl Finished {
    /// Its exit code (`None`: killed by a signal).
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts the exit code, failing with the output.
    pub(crate) fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "exit code of {}\n{self}",
            self.name
        );
        self
    }

    /// The report on stdout, parsed; fails the test (with the output) when
    /// there is none or it lacks a line.
    pub(crate) fn report(&self) -> Report {
        Report::parse(&self.stdout)
            .unwrap_or_else(|err| panic!("{}: no report on stdout: {err}\n{self}", self.name))
    }

    /// The error on stderr, as the spec prints it: from the last line
    /// starting with `flowgate ingest:` to the end (logs may come before it,
    /// the `caused by:` lines after it). Fails the test when there is none.
    pub(crate) fn error_chain(&self) -> String {
        let start = self
            .stderr
            .match_indices("flowgate ingest:")
            .map(|(i, _)| i)
            .filter(|i| *i == 0 || self.stderr.as_bytes()[i - 1] == b'\n')
            .last()
            .unwrap_or_else(|| {
                panic!(
                    "{}: no line starting with `flowgate ingest:` on stderr\n{self}",
                    self.name
                )
            });
        self.stderr[start..].to_owned()
    }

    /// Asserts the error chain ([`error_chain`](Self::error_chain)) contains
    /// `text` (case-insensitively).
    pub(crate) fn assert_error_has(&self, text: &str) -> &Self {
        assert!(
            self.error_chain()
                .to_lowercase()
                .contains(&text.to_lowercase()),
            "{}: the error does not mention {text:?}\n{self}",
            self.name
        );
        self
    }

    /// Asserts the error chain contains one of `texts` (case-insensitively).
    pub(crate) fn assert_error_has_any(&self, texts: &[&str]) -> &Self {
        let chain = self.error_chain().to_lowercase();
        assert!(
            texts.iter().any(|t| chain.contains(&t.to_lowercase())),
            "{}: the error mentions none of {texts:?}\n{self}",
            self.name
        );
        self
    }

    /// Asserts stderr contains `text` (case-insensitively).
    pub(crate) fn assert_stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.to_lowercase().contains(&text.to_lowercase()),
            "{}: stderr does not mention {text:?}\n{self}",
            self.name
        );
        self
    }

    /// Asserts stderr contains one of `texts` (case-insensitively).
    pub(crate) fn assert_stderr_has_any(&self, texts: &[&str]) -> &Self {
        let stderr = self.stderr.to_lowercase();
        assert!(
            texts.iter().any(|t| stderr.contains(&t.to_lowercase())),
            "{}: stderr mentions none of {texts:?}\n{self}",
            self.name
        );
        self
    }
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe_output(
            &self.name,
            &self.args,
            &self.status.to_string(),
            self.took,
            &self.stdout,
            &self.stderr,
        ))
    }
}

fn describe_output(
    name: &str,
    args: &[String],
    status: &str,
    took: Duration,
    stdout: &str,
    stderr: &str,
) -> String {
    format!(
        "--- {name}: flowgate {} ({status}, after {:.1} s)\n--- stdout:\n{}\n--- stderr:\n{}\n---",
        args.join(" "),
        took.as_secs_f64(),
        clip(stdout),
        clip(stderr)
    )
}

/// The start and the end of a long text (logs can be long).
fn clip(text: &str) -> String {
    const HEAD: usize = 3000;
    const TAIL: usize = 9000;
    if text.len() <= HEAD + TAIL {
        return text.to_owned();
    }
    let head_end = (0..=HEAD)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap();
    let tail_start = (text.len() - TAIL..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap();
    format!(
        "{}\n[... {} bytes ...]\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

// ---------------------------------------------------------------------------
// The report

/// The report `flowgate ingest` prints on stdout (the CLI spec):
///
/// ```text
/// flowgate ingest: <route>
///   received           N
///   written            N   (stored)
///   duplicates         N   (...)
///   dead-lettered      N   (...)
///   failed             N   (...)
///   unacked            N   (...)
///   acked              N   (...)
///   retries            N   (...)
///   elapsed            S s  (...)
///   throughput         R msg/s
///   ack latency        p50 .. ms, p99 .. ms, max .. ms
/// ```
///
/// A leading `*` (the spec marks the five lines that partition `received`)
/// and digit separators (`,`, `_`) are tolerated.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Report {
    /// The route line, after `flowgate ingest: `.
    pub(crate) route: String,
    /// Messages taken from the source.
    pub(crate) received: u64,
    /// Stored.
    pub(crate) written: u64,
    /// Already stored, skipped by the sink.
    pub(crate) duplicates: u64,
    /// To the dead-letter stream.
    pub(crate) dead_lettered: u64,
    /// Not acked, left pending.
    pub(crate) failed: u64,
    /// Written, but the XACK failed.
    pub(crate) unacked: u64,
    /// Confirmed by the source.
    pub(crate) acked: u64,
    /// Sink writes retried after transient failures.
    pub(crate) retries: u64,
    /// Seconds, excluding the final idle wait.
    pub(crate) elapsed: f64,
    /// Messages per second.
    pub(crate) throughput: f64,
}

impl Report {
    /// Parses the report out of `stdout`, naming the lines that are missing.
    pub(crate) fn parse(stdout: &str) -> Result<Self, String> {
        let mut lines = stdout
            .lines()
            .skip_while(|l| !l.starts_with("flowgate ingest:"));
        let route = lines
            .next()
            .ok_or("no line starting with \"flowgate ingest:\"")?
            .trim_start_matches("flowgate ingest:")
            .trim()
            .to_owned();
        let mut report = Self {
            route,
            ..Self::default()
        };
        let mut seen = Vec::new();
        for line in lines {
            let line = line.trim_start().trim_start_matches('*').trim_start();
            let mut words = line.split_whitespace();
            let (Some(label), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let number = value.replace([',', '_'], "");
            let count = || {
                number
                    .parse::<u64>()
                    .map_err(|err| format!("line {line:?}: {value:?} is not a count: {err}"))
            };
            let float = || {
                number
                    .parse::<f64>()
                    .map_err(|err| format!("line {line:?}: {value:?} is not a number: {err}"))
            };
            match label {
                "received" => report.received = count()?,
                "written" => report.written = count()?,
                "duplicates" => report.duplicates = count()?,
                "dead-lettered" => report.dead_lettered = count()?,
                "failed" => report.failed = count()?,
                "unacked" => report.unacked = count()?,
                "acked" => report.acked = count()?,
                "retries" => report.retries = count()?,
                "elapsed" => report.elapsed = float()?,
                "throughput" => report.throughput = float()?,
                _ => continue,
            }
            seen.push(label.to_owned());
        }
        let missing: Vec<&str> = [
            "received",
            "written",
            "duplicates",
            "dead-lettered",
            "failed",
            "unacked",
            "acked",
            "retries",
            "elapsed",
            "throughput",
        ]
        .into_iter()
        .filter(|label| !seen.iter().any(|s| s == label))
        .collect();
        if missing.is_empty() {
            Ok(report)
        } else {
            Err(format!("the report has no line for {}", missing.join(", ")))
        }
    }

    /// Asserts that every received message is in exactly one of the five
    /// lines (written, duplicates, dead-lettered, failed, unacked), and that
    /// acked counts what the source confirmed of the first three.
    pub(crate) fn assert_adds_up(&self) -> &Self {
        assert_eq!(
            self.written + self.duplicates + self.dead_lettered + self.failed + self.unacked,
            self.received,
            "written + duplicates + dead-lettered + failed + unacked = received: {self:#?}"
        );
        assert!(
            self.acked <= self.written + self.duplicates + self.dead_lettered,
            "acked counts written + duplicates + dead-lettered that were confirmed: {self:#?}"
        );
        self
    }

    /// Asserts a clean run: adds up, nothing failed or unacked, everything
    /// acked.
    pub(crate) fn assert_clean(&self) -> &Self {
        self.assert_adds_up();
        assert_eq!((self.failed, self.unacked), (0, 0), "{self:#?}");
        assert_eq!(
            self.acked,
            self.written + self.duplicates + self.dead_lettered,
            "{self:#?}"
        );
        self
    }
}

// ---------------------------------------------------------------------------
// Redis

/// A connection with a patient response timeout (reading a 60 000-entry
/// stream in a debug build on a busy machine takes a while).
pub(crate) async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(60)));
    redis::Client::open(url)
        .unwrap_or_else(|err| panic!("redis URL {url}: {err}"))
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap_or_else(|err| panic!("connecting to {url}: {err}"))
}

/// The body of test message `seq` (deterministic; lengths vary).
pub(crate) fn body(seq: u64) -> Vec<u8> {
    format!("flowgate test message {seq:08}|")
        .repeat(1 + (seq % 4) as usize)
        .into_bytes()
}

/// FNV-1a of `bytes`, as the demo mapping's `checksum` column stores it.
pub(crate) fn checksum(bytes: &[u8]) -> i64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    }) as i64
}

/// Appends messages `from..from + n` (fields `seq` and `body`, the demo
/// mapping's) to `stream`, pipelined; returns their entry ids in order.
pub(crate) async fn publish(url: &str, stream: &str, from: u64, n: u64) -> Vec<String> {
    let mut conn = redis_conn(url).await;
    let mut ids = Vec::with_capacity(n as usize);
    let mut i = from;
    while i < from + n {
        let end = (i + 1000).min(from + n);
        let mut pipe = redis::pipe();
        for seq in i..end {
            pipe.cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("seq")
                .arg(seq)
                .arg("body")
                .arg(body(seq));
        }
        let chunk: Vec<String> = pipe
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("XADD to {stream}: {err}"));
        ids.extend(chunk);
        i = end;
    }
    ids
}

/// Appends one entry with these (binary) fields; returns its id.
pub(crate) async fn xadd(url: &str, stream: &str, fields: &[(&[u8], &[u8])]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("*");
    for (name, value) in fields {
        cmd.arg(*name).arg(*value);
    }
    cmd.query_async(&mut redis_conn(url).await)
        .await
        .unwrap_or_else(|err| panic!("XADD to {stream}: {err}"))
}

/// How many entries of `group` are pending (delivered, not acked); 0 when
/// the stream or the group does not exist (yet).
pub(crate) async fn pending(url: &str, stream: &str, group: &str) -> u64 {
    let reply: redis::RedisResult<redis::Value> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query_async(&mut redis_conn(url).await)
        .await;
    match reply {
        Ok(redis::Value::Array(items)) => match items.first() {
            Some(redis::Value::Int(n)) => *n as u64,
            other => panic!("XPENDING {stream} {group}: unexpected reply {other:?}"),
        },
        Ok(other) => panic!("XPENDING {stream} {group}: unexpected reply {other:?}"),
        Err(err) if err.code() == Some("NOGROUP") => 0,
        Err(err) => panic!("XPENDING {stream} {group}: {err}"),
    }
}

/// How many entries `stream` has (0 when it does not exist).
pub(crate) async fn xlen(url: &str, stream: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(&mut redis_conn(url).await)
        .await
        .unwrap_or_else(|err| panic!("XLEN {stream}: {err}"))
}

/// A stream entry, fields kept as bytes (they need not be UTF-8).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The entry id.
    pub(crate) id: String,
    /// Field names and values, in order.
    pub(crate) fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// The value of field `name` (as text, lossily), if present.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.get_bytes(name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The value of field `name`, if present.
    pub(crate) fn get_bytes(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The field names, lossily as text.
    pub(crate) fn names(&self) -> Vec<String> {
        self.fields
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }
}

/// Every entry of `stream` (none when it does not exist), parsed from the
/// raw reply so that non-UTF-8 fields survive.
pub(crate) async fn entries(url: &str, stream: &str) -> Vec<Entry> {
    let reply: redis::Value = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut redis_conn(url).await)
        .await
        .unwrap_or_else(|err| panic!("XRANGE {stream}: {err}"));
    let redis::Value::Array(items) = reply else {
        panic!("XRANGE {stream}: unexpected reply {reply:?}");
    };
    items
        .into_iter()
        .map(|item| {
            let redis::Value::Array(mut pair) = item else {
                panic!("XRANGE {stream}: unexpected entry {item:?}");
            };
            let fields = pair.pop().expect("fields");
            let id = text(pair.pop().expect("id"));
            let fields = match fields {
                redis::Value::Array(flat) => {
                    let mut flat = flat.into_iter().map(bytes);
                    let mut out = Vec::new();
                    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                        out.push((k, v));
                    }
                    out
                }
                redis::Value::Map(map) => {
                    map.into_iter().map(|(k, v)| (bytes(k), bytes(v))).collect()
                }
                other => panic!("XRANGE {stream}: unexpected fields {other:?}"),
            };
            Entry {
                id: String::from_utf8_lossy(&id).into_owned(),
                fields,
            }
        })
        .collect()
}

fn bytes(value: redis::Value) -> Vec<u8> {
    match value {
        redis::Value::BulkString(b) => b,
        redis::Value::SimpleString(s) => s.into_bytes(),
        redis::Value::Int(n) => n.to_string().into_bytes(),
        other => panic!("not a string: {other:?}"),
    }
}

fn text(value: redis::Value) -> Vec<u8> {
    bytes(value)
}

/// The entries of a dead-letter stream.
pub(crate) async fn dead_letters(url: &str, stream: &str) -> Vec<Entry> {
    entries(url, stream).await
}

/// The entry ids of `stream`, in order.
pub(crate) async fn stream_ids(url: &str, stream: &str) -> Vec<String> {
    entries(url, stream)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// The names of the consumers of `group` (none when it does not exist).
pub(crate) async fn consumers(url: &str, stream: &str, group: &str) -> Vec<String> {
    let reply: redis::RedisResult<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(group)
        .query_async(&mut redis_conn(url).await)
        .await;
    let items = match reply {
        Ok(redis::Value::Array(items)) => items,
        Ok(other) => panic!("XINFO CONSUMERS: unexpected reply {other:?}"),
        Err(err) if err.code() == Some("NOGROUP") || err.to_string().contains("no such key") => {
            return Vec::new();
        }
        Err(err) => panic!("XINFO CONSUMERS {stream} {group}: {err}"),
    };
    items
        .into_iter()
        .filter_map(|consumer| {
            let pairs: Vec<(redis::Value, redis::Value)> = match consumer {
                redis::Value::Array(flat) => {
                    let mut it = flat.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    pairs
                }
                redis::Value::Map(map) => map,
                _ => return None,
            };
            pairs.into_iter().find_map(|(k, v)| {
                (bytes(k) == b"name").then(|| String::from_utf8_lossy(&bytes(v)).into_owned())
            })
        })
        .collect()
}

/// `XGROUP DESTROY stream group`.
pub(crate) async fn xgroup_destroy(url: &str, stream: &str, group: &str) {
    let destroyed: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(stream)
        .arg(group)
        .query_async(&mut redis_conn(url).await)
        .await
        .unwrap_or_else(|err| panic!("XGROUP DESTROY {stream} {group}: {err}"));
    assert_eq!(destroyed, 1, "group {group} of {stream} existed");
}

// ---------------------------------------------------------------------------
// PostgreSQL

/// A client; its connection runs on the current runtime.
pub(crate) async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|err| panic!("connecting to {url}: {err}"));
    tokio::spawn(connection);
    client
}

/// Runs `sql` (one or more statements).
pub(crate) async fn execute(url: &str, sql: &str) {
    pg(url)
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err:?}"));
}

/// Whether `table` exists.
pub(crate) async fn table_exists(url: &str, table: &str) -> bool {
    pg(url)
        .await
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .unwrap()
        .get(0)
}

/// Rows in `table`, and how many distinct values of `key` (a column, or a
/// row of columns such as `(a, b)`); `(0, 0)` when the table does not exist
/// (yet).
pub(crate) async fn rows_by(url: &str, table: &str, key: &str) -> (u64, u64) {
    let client = pg(url).await;
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .unwrap()
        .get(0);
    if !exists {
        return (0, 0);
    }
    match client
        .query_one(
            &format!("SELECT COUNT(*), COUNT(DISTINCT {key}) FROM {table}"),
            &[],
        )
        .await
    {
        Ok(row) => (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64),
        // Dropped between the two queries (a test that drops it).
        Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => (0, 0),
        Err(err) => panic!("counting rows of {table}: {err:?}"),
    }
}

/// Rows in `table` and distinct `id`s (the demo mapping's key).
pub(crate) async fn rows(url: &str, table: &str) -> (u64, u64) {
    rows_by(url, table, "id").await
}

/// The values of column `column` of `table` as text, sorted (by bytes, as
/// Rust sorts, whatever the database's collation).
pub(crate) async fn column_values(url: &str, table: &str, column: &str) -> Vec<String> {
    let mut values: Vec<String> = pg(url)
        .await
        .query(&format!("SELECT {column}::text FROM {table}"), &[])
        .await
        .unwrap_or_else(|err| panic!("reading {column} of {table}: {err:?}"))
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    values.sort();
    values
}

// ---------------------------------------------------------------------------
// A run's target: one stream and group, one table

/// The state of the servers as a run sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    /// Rows in the table.
    pub(crate) rows: u64,
    /// Distinct keys in the table.
    pub(crate) distinct: u64,
    /// Entries delivered to the group and not acked.
    pub(crate) pending: u64,
    /// Entries of the dead-letter stream.
    pub(crate) dead: u64,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rows {} (distinct {}), pending {}, dead-lettered {}",
            self.rows, self.distinct, self.pending, self.dead
        )
    }
}

/// What [`wait_until`] is told by its check.
#[derive(Debug)]
pub(crate) enum Check {
    /// Reached.
    Done,
    /// Not yet; the state, for the message if it never is.
    Wait(String),
    /// Can no longer be reached (fail now rather than at the timeout).
    Fail(String),
}

impl State {
    /// Done when exactly `rows` rows (each key once) and `dead` dead letters
    /// are there and nothing is pending; failed when there are more of
    /// either, or a key stored twice.
    pub(crate) fn check(&self, rows: u64, dead: u64) -> Check {
        if self.distinct != self.rows {
            Check::Fail(format!("a key stored twice: {self}"))
        } else if self.rows > rows {
            Check::Fail(format!("more rows than the {rows} expected: {self}"))
        } else if self.dead > dead {
            Check::Fail(format!(
                "more dead letters than the {dead} expected: {self}"
            ))
        } else if self.rows == rows && self.dead == dead && self.pending == 0 {
            Check::Done
        } else {
            Check::Wait(format!(
                "{self}; want rows {rows}, dead-lettered {dead}, pending 0"
            ))
        }
    }
}

/// SIGKILLs `process` while it holds messages read and not acked, as
/// `holding` tells (for example: rows written and something pending): once
/// `holding` is true the process is frozen (SIGSTOP) and asked again while
/// it cannot ack, and killed only if it still holds something; otherwise it
/// is thawed and watched again. Polled without pause: a release build acks
/// a burst within milliseconds.
pub(crate) async fn kill_while_holding<F>(process: &mut Flowgate, mut holding: F)
where
    F: AsyncFnMut() -> bool,
{
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        assert!(
            Instant::now() < deadline,
            "never held unacked messages\n{}",
            process.describe()
        );
        if let Some(status) = process.try_status() {
            panic!("exited before the kill: {status}\n{}", process.describe());
        }
        if holding().await {
            process.signal("STOP");
            if holding().await {
                let killed = process.kill();
                assert_eq!(killed.code(), None, "killed by a signal\n{killed}");
                return;
            }
            process.signal("CONT");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Polls `check` until it says done; fails the test when it says failed,
/// when one of `live` exits meanwhile, or after `timeout`, with the last
/// state and the output of `live`.
pub(crate) async fn wait_until<F>(
    what: &str,
    timeout: Duration,
    live: &mut [&mut Flowgate],
    mut check: F,
) where
    F: AsyncFnMut() -> Check,
{
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match check().await {
            Check::Done => return,
            Check::Fail(state) => panic!("{what}: {state}\n{}", describe_all(live)),
            Check::Wait(state) => last = state,
        }
        if live.iter_mut().any(|p| p.try_status().is_some()) {
            panic!(
                "{what}: a process exited before; last state: {last}\n{}",
                describe_all(live)
            );
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not within {timeout:?}; last state: {last}\n{}",
                describe_all(live)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn describe_all(live: &mut [&mut Flowgate]) -> String {
    live.iter_mut()
        .map(|p| p.describe())
        .collect::<Vec<_>>()
        .join("\n")
}

/// One stream (group `writers`, dead letters to `<stream>:dead`) into one
/// table keyed by `id`: the demo mapping.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Redis URL.
    pub(crate) redis: String,
    /// PostgreSQL URL.
    pub(crate) postgres: String,
    /// Stream key; also the table name.
    pub(crate) stream: String,
    /// Consumer group.
    pub(crate) group: String,
    /// Table.
    pub(crate) table: String,
    /// The dead-letter stream (the default, `<stream>:dead`).
    pub(crate) dead: String,
    /// The key column(s) rows are deduplicated by (`id` in the demo mapping).
    pub(crate) key: String,
}

impl Target {
    /// A fresh stream and table named after `test`.
    pub(crate) fn new(redis: &str, postgres: &str, test: &str) -> Self {
        let name = unique(test);
        Self {
            redis: redis.to_owned(),
            postgres: postgres.to_owned(),
            stream: name.clone(),
            group: "writers".to_owned(),
            dead: format!("{name}:dead"),
            key: "id".to_owned(),
            table: name,
        }
    }

    /// `ingest` arguments for this target as consumer `consumer`, with small
    /// batches (many batches in flight at once, as in production) and no
    /// progress bar; `extra` appended.
    pub(crate) fn args(&self, consumer: &str, extra: &[&str]) -> Vec<String> {
        let mut args = self.args_without_table(consumer, &["--table", &self.table]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// [`args`](Self::args) without `--table` (for a `--schema` file that
    /// names the table).
    pub(crate) fn args_without_table(&self, consumer: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "ingest",
            "--no-progress",
            "--redis",
            &self.redis,
            "--stream",
            &self.stream,
            "--group",
            &self.group,
            "--consumer",
            consumer,
            "--postgres",
            &self.postgres,
            "--batch-size",
            "500",
            "--batch-delay-ms",
            "20",
            "--max-in-flight",
            "3000",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// Starts `flowgate ingest` on this target as `consumer`.
    pub(crate) fn spawn(&self, consumer: &str, extra: &[&str]) -> Flowgate {
        flowgate(consumer, self.args(consumer, extra))
    }

    /// Publishes messages `from..from + n` to the stream.
    pub(crate) async fn publish(&self, from: u64, n: u64) -> Vec<String> {
        publish(&self.redis, &self.stream, from, n).await
    }

    /// Rows, pending, dead letters now.
    pub(crate) async fn state(&self) -> State {
        let (rows, distinct) = rows_by(&self.postgres, &self.table, &self.key).await;
        State {
            rows,
            distinct,
            pending: pending(&self.redis, &self.stream, &self.group).await,
            dead: xlen(&self.redis, &self.dead).await,
        }
    }

    /// Waits until `rows` rows and `dead` dead letters are there and nothing
    /// is pending, while every one of `live` keeps running (see
    /// [`wait_until`]).
    pub(crate) async fn wait_done(&self, rows: u64, dead: u64, live: &mut [&mut Flowgate]) {
        wait_until(
            &format!("{}: everything written and acked", self.stream),
            RUN_TIMEOUT,
            live,
            async || self.state().await.check(rows, dead),
        )
        .await;
    }

    /// Waits until at least `rows` rows are in the table (mid-run triggers
    /// go by observed progress, never by sleeps).
    pub(crate) async fn wait_rows(&self, rows: u64, live: &mut [&mut Flowgate]) {
        wait_until(
            &format!("{}: at least {rows} rows", self.stream),
            RUN_TIMEOUT,
            live,
            async || {
                let state = self.state().await;
                if state.rows >= rows {
                    Check::Done
                } else {
                    Check::Wait(state.to_string())
                }
            },
        )
        .await;
    }

    /// Asserts the final state: `total` rows, one per stream entry (their
    /// ids are the stream's ids), nothing pending, `dead` dead letters.
    pub(crate) async fn assert_final(&self, total: u64, dead: u64) {
        let state = self.state().await;
        assert_eq!(
            state,
            State {
                rows: total,
                distinct: total,
                pending: 0,
                dead
            },
            "final state of {}",
            self.stream
        );
    }

    /// Creates the table as `flowgate ingest` itself does (its own DDL, which
    /// its start-up check accepts), by a short run on an empty stream of
    /// another name (so that the target's group is untouched).
    pub(crate) async fn create_table(&self) {
        let setup = Self {
            stream: format!("{}:setup", self.stream),
            dead: format!("{}:setup:dead", self.stream),
            ..self.clone()
        };
        let mut run = setup.spawn("setup", &["--exit-when-idle-ms", "200"]);
        run.wait(EXIT_TIMEOUT).await.assert_code(0);
        assert!(
            table_exists(&self.postgres, &self.table).await,
            "flowgate ingest created table {}",
            self.table
        );
    }

    /// Asserts every entry of the stream is stored under its id, once.
    pub(crate) async fn assert_every_entry_stored(&self) {
        let mut ids = stream_ids(&self.redis, &self.stream).await;
        ids.sort();
        let stored = column_values(&self.postgres, &self.table, "id").await;
        assert_eq!(stored.len(), ids.len(), "rows of {}", self.table);
        assert!(
            stored == ids,
            "every entry of {} stored by its id",
            self.stream
        );
    }
}
