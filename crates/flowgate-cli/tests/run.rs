//! `flowgate run` against real processes (issue 14, "Must show" 1, and the
//! bad-input rules): the built binary runs small `sh` scripts that keep
//! their state in a directory of the test's own. Timing assertions are lower
//! bounds only, so a loaded machine cannot fail them.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long one run may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(180);

// ===== helpers =====

/// A directory of one test's own, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Dir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "flowgate-run-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// `name` in the directory, as a string for a command line.
    fn file(&self, name: &str) -> &'static str {
        // Leaked: a few bytes per test, and the paths mix with literals in
        // argument arrays.
        Box::leak(self.0.join(name).to_str().unwrap().into())
    }

    /// Writes the `sh` script `name` (`@` in `body` is replaced by the
    /// directory) and returns its path.
    fn script(&self, name: &str, body: &str) -> &'static str {
        let path = self.file(name);
        let body = body.replace('@', self.0.to_str().unwrap());
        fs::write(path, format!("set -u\n{body}\n")).unwrap();
        path
    }

    /// The lines of `name`, empty when it does not exist.
    fn lines(&self, name: &str) -> Vec<String> {
        fs::read_to_string(self.0.join(name))
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A finished `flowgate` run.
struct Done {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Done {
    #[track_caller]
    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "exit code\n{self}");
        self
    }

    #[track_caller]
    fn assert_stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr should name {text:?}\n{self}"
        );
        self
    }

    fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

impl fmt::Display for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "flowgate {:?}: exit {:?} after {:.2} s\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// `flowgate ARGS` started with `stdin` as its standard input, its stdout
/// and stderr going to files of `dir`.
fn spawn(dir: &Dir, args: &[&str], stdin: &str) -> (Child, PathBuf, PathBuf) {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let input = dir.path().join(format!(".stdin-{n}"));
    let out = dir.path().join(format!(".stdout-{n}"));
    let err = dir.path().join(format!(".stderr-{n}"));
    fs::write(&input, stdin).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(args)
        .stdin(fs::File::open(&input).unwrap())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .expect("the flowgate binary starts");
    (child, out, err)
}

/// Runs `flowgate ARGS` with `stdin` to the end (a hang fails the test).
fn flowgate(dir: &Dir, args: &[&str], stdin: &str) -> Done {
    let start = Instant::now();
    let (mut child, out, err) = spawn(dir, args, stdin);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let done = Done {
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        code: status.and_then(|s| s.code()),
        stdout: fs::read_to_string(out).unwrap_or_default(),
        stderr: fs::read_to_string(err).unwrap_or_default(),
        elapsed: start.elapsed(),
    };
    assert!(status.is_some(), "flowgate hung for {HANG:?}\n{done}");
    done
}

/// `flowgate run ARGS`.
fn run(dir: &Dir, args: &[&str], stdin: &str) -> Done {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    flowgate(dir, &all, stdin)
}

/// The lines "1".."n" (each with a newline).
fn numbers(n: u64) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

/// One line of the joblog.
#[derive(Debug, Clone, PartialEq)]
struct Job {
    seq: u64,
    start: f64,
    runtime: f64,
    exit: i32,
    signal: i32,
    attempts: u32,
    item: String,
}

/// The joblog's jobs; a torn last line (no newline: the runner was killed
/// while writing it) is left out, as `--resume` does.
#[track_caller]
fn joblog(path: &str) -> Vec<Job> {
    let text = fs::read_to_string(path).unwrap_or_else(|err| panic!("joblog {path}: {err}"));
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.pop(); // after the last newline: empty, or a torn line
    let (header, jobs) = lines.split_first().expect("a header line");
    assert_eq!(
        *header, "Seq\tStarttime\tJobRuntime\tExitval\tSignal\tAttempts\tItem",
        "joblog header"
    );
    jobs.iter()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 7, "7 columns in {line:?}");
            Job {
                seq: f[0].parse().unwrap(),
                start: f[1].parse().unwrap(),
                runtime: f[2].parse().unwrap(),
                exit: f[3].parse().unwrap(),
                signal: f[4].parse().unwrap(),
                attempts: f[5].parse().unwrap(),
                item: f[6].to_owned(),
            }
        })
        .collect()
}

/// The number after `"field":` in a JSON text.
fn json_number(json: &str, field: &str) -> Option<f64> {
    let at = json.find(&format!("\"{field}\""))?;
    let rest = json[at + field.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

// ===== Must show 1 =====

#[test]
fn retries_make_items_that_fail_twice_succeed() {
    let dir = Dir::new("retries");
    // Items 20, 40, … 100 (5%) fail on their first two attempts.
    let job = dir.script(
        "job.sh",
        r#"n=$(cat "@/state-$1" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "@/state-$1"
if [ $(($1 % 20)) -eq 0 ] && [ "$n" -le 2 ]; then exit 1; fi
exit 0"#,
    );
    let log = dir.file("joblog");
    let done = run(
        &dir,
        &[
            "-j",
            "4",
            "--retries",
            "3",
            "--backoff",
            "const:10ms",
            "--joblog",
            log,
            "--",
            "sh",
            job,
            "{}",
        ],
        &numbers(100),
    );
    done.assert_code(0);
    let mut jobs = joblog(log);
    jobs.sort_by_key(|j| j.seq);
    assert_eq!(jobs.len(), 100, "one joblog line per item\n{done}");
    for (job, seq) in jobs.iter().zip(1..) {
        assert_eq!(
            (job.seq, job.item.as_str()),
            (seq, seq.to_string().as_str())
        );
        assert_eq!((job.exit, job.signal), (0, 0), "{job:?} succeeded");
        let attempts = if seq % 20 == 0 { 3 } else { 1 };
        assert_eq!(job.attempts, attempts, "attempts of {job:?}");
        assert_eq!(
            dir.lines(&format!("state-{seq}")),
            [attempts.to_string()],
            "runs of {seq}"
        );
    }
}

#[test]
fn a_rate_of_20_per_second_takes_200_jobs_about_10_seconds() {
    let dir = Dir::new("rate");
    let done = run(
        &dir,
        &["-j", "8", "--rate", "20/s", "--", "true"],
        &numbers(200),
    );
    done.assert_code(0);
    // 200 starts spaced by 50 ms: the last at 9.95 s. A lower bound only
    // (load can only make it slower); dev/bench-run.sh measures the figure.
    assert!(
        done.elapsed >= Duration::from_millis(9500),
        "200 jobs at 20/s in {:.2} s, under 9.5 s\n{done}",
        done.elapsed.as_secs_f64()
    );
}

#[test]
fn resume_after_kill_9_runs_every_item_exactly_once() {
    let dir = Dir::new("resume");
    let job = dir.script("job.sh", "sleep 0.2");
    let log = dir.file("joblog");
    let items: String = (1..=60).map(|i| format!("item-{i}\n")).collect();
    let args = ["run", "-j", "2", "--joblog", log, "--", "sh", job, "{}"];

    let (mut child, _, err) = spawn(&dir, &args, &items);
    let start = Instant::now();
    loop {
        let lines = fs::read_to_string(log).map_or(0, |t| t.matches('\n').count());
        if lines > 6 {
            break; // the header and at least 6 jobs
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "flowgate exited ({status}) before it was killed\n{}",
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        assert!(start.elapsed() < HANG, "no 6 joblog lines in {HANG:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = joblog(log).len();
    assert!(before < 60, "killed mid-run: {before} of 60 jobs were done");

    let done = flowgate(
        &dir,
        &[
            "run", "-j", "2", "--joblog", log, "--resume", "--", "sh", job, "{}",
        ],
        &items,
    );
    done.assert_code(0);
    let jobs = joblog(log);
    for seq in 1..=60u64 {
        let runs: Vec<&Job> = jobs.iter().filter(|j| j.seq == seq).collect();
        assert_eq!(
            runs.len(),
            1,
            "item {seq} once in the joblog: {runs:?}\n{done}"
        );
        assert_eq!(
            (runs[0].exit, runs[0].item.as_str()),
            (0, format!("item-{seq}").as_str())
        );
    }
    assert_eq!(jobs.len(), 60, "nothing else in the joblog");
}

/// Whether process `pid` is gone (`kill -0` fails; init reaps orphaned
/// zombies within a few seconds, so this is polled).
fn gone(pid: &str) -> bool {
    !Command::new("kill")
        .args(["-0", pid])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn ctrl_c_kills_the_running_jobs_and_resume_runs_the_rest() {
    let dir = Dir::new("sigint");
    // The first two items block until killed; the later ones are quick.
    let job = dir.script(
        "job.sh",
        r#"case "$1" in slow-*) echo $$ >> "@/pids"; exec sleep 1000;; esac"#,
    );
    let log = dir.file("joblog");
    let items: String = ["slow-1", "slow-2"]
        .into_iter()
        .map(str::to_owned)
        .chain((3..=20).map(|i| format!("quick-{i}")))
        .map(|item| item + "\n")
        .collect();
    let args = ["run", "-j", "2", "--joblog", log, "--", "sh", job, "{}"];
    let (mut child, _, err) = spawn(&dir, &args, &items);
    let start = Instant::now();
    while dir.lines("pids").len() < 2 {
        assert!(start.elapsed() < HANG, "the two slow jobs did not start");
        assert!(child.try_wait().unwrap().is_none(), "flowgate exited early");
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        assert!(start.elapsed() < HANG, "flowgate did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(code, Some(130), "128 + SIGINT\n{stderr}");
    for pid in dir.lines("pids") {
        while !gone(&pid) {
            assert!(start.elapsed() < HANG, "job {pid} outlived the runner");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(
        joblog(log).is_empty(),
        "no job finished: the slow ones were killed"
    );

    // The rerun: every item exactly once, the slow ones quick this time.
    fs::write(dir.file("job.sh"), "exit 0\n").unwrap();
    let done = flowgate(
        &dir,
        &[
            "run", "-j", "2", "--joblog", log, "--resume", "--", "sh", job, "{}",
        ],
        &items,
    );
    done.assert_code(0);
    let mut seqs: Vec<u64> = joblog(log).iter().map(|j| j.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
}

#[test]
fn key_never_runs_two_jobs_of_one_key_at_once() {
    let dir = Dir::new("key");
    // mkdir is atomic: a second job of a key running at once cannot take
    // the key's lock directory.
    let job = dir.script(
        "job.sh",
        r#"mkdir "@/lock-$1" 2>/dev/null || echo "overlap $1" >> "@/events"
echo "start $1" >> "@/events"
sleep 0.1
echo "end $1" >> "@/events"
rmdir "@/lock-$1""#,
    );
    let items: String = (1..=6)
        .flat_map(|i| (1..=4).map(move |k| format!("k{k} {i}\n")))
        .collect();
    let done = run(
        &dir,
        &["-j", "8", "--key", "{1}", "--", "sh", job, "{1}", "{2}"],
        &items,
    );
    done.assert_code(0);
    let events = dir.lines("events");
    assert!(
        !events.iter().any(|e| e.starts_with("overlap")),
        "{events:#?}"
    );
    assert_eq!(events.len(), 48, "24 jobs started and ended: {events:#?}");
    let mut running = std::collections::HashMap::<&str, bool>::new();
    let (mut now, mut most) = (0, 0);
    for event in &events {
        let (what, key) = event.split_once(' ').unwrap();
        let was = running.insert(key, what == "start").unwrap_or(false);
        assert_eq!(
            was,
            what == "end",
            "{event} after {}: {events:#?}",
            if was { "start" } else { "end" }
        );
        now += if what == "start" { 1 } else { -1 };
        most = most.max(now);
    }
    assert!(
        most >= 2,
        "jobs of different keys ran in parallel (at most {most} at once)"
    );
}

#[test]
fn the_breaker_pauses_dispatch_during_an_outage_and_resumes_after() {
    let dir = Dir::new("breaker");
    // While "down" exists jobs fail; the 4th failure ends the outage.
    fs::write(dir.path().join("down"), "").unwrap();
    let job = dir.script(
        "job.sh",
        r#"if [ -e "@/down" ]; then
  echo "$1" >> "@/failures"
  if [ "$(wc -l < "@/failures")" -ge 4 ]; then rm -f "@/down"; fi
  exit 1
fi
exit 0"#,
    );
    let log = dir.file("joblog");
    let summary = dir.file("summary.json");
    let done = run(
        &dir,
        &[
            "-j",
            "1",
            "--breaker",
            "50%/4/2s",
            "--joblog",
            log,
            "--summary-json",
            summary,
            "--",
            "sh",
            job,
            "{}",
        ],
        &numbers(30),
    );
    let failures = dir.lines("failures");
    assert_eq!(failures.len(), 4, "4 jobs failed during the outage\n{done}");
    done.assert_code(4);
    let mut jobs = joblog(log);
    jobs.sort_by_key(|j| j.seq);
    assert_eq!(jobs.len(), 30, "every item ran\n{done}");
    let last_failure = jobs.iter().rposition(|j| j.exit != 0).unwrap();
    assert!(
        jobs[last_failure + 1..].iter().all(|j| j.exit == 0),
        "all later jobs succeeded: {jobs:#?}"
    );
    // -j 1: jobs start one after the other, a few ms apart, except while
    // the breaker is open (cooldown 2 s).
    let (gap, before) = (1..jobs.len())
        .map(|i| (jobs[i].start - jobs[i - 1].start, i - 1))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    assert!(
        gap >= 1.8,
        "dispatch paused at least the cooldown: longest gap {gap:.3} s\n{jobs:#?}"
    );
    // The job before the pause failed, or the one before it (if the slot
    // was given back before the breaker saw the failure).
    assert!(
        jobs[before.saturating_sub(1)..=before]
            .iter()
            .any(|j| j.exit != 0),
        "the pause followed a failure: gap after {:?}\n{jobs:#?}",
        jobs[before]
    );
    let json = fs::read_to_string(summary).unwrap_or_default();
    assert!(
        json_number(&json, "breaker_trips").is_some_and(|n| n >= 1.0),
        "the summary counts the trip: {json}"
    );
}

// ===== output, stages, dedup, timeout =====

#[test]
fn keep_order_outputs_in_input_order() {
    let dir = Dir::new("keep-order");
    // The first items take the longest: they finish last.
    let job = dir.script("job.sh", r#"sleep "0.$((9 - $1))"; echo "out $1""#);
    let done = run(&dir, &["-j", "8", "-k", "--", "sh", job, "{}"], &numbers(8));
    done.assert_code(0);
    let want: Vec<String> = (1..=8).map(|i| format!("out {i}")).collect();
    assert_eq!(done.stdout_lines(), want, "{done}");
}

#[test]
fn tag_prefixes_every_line_with_the_item() {
    let dir = Dir::new("tag");
    let job = dir.script("job.sh", r#"echo "one $1"; echo "two $1""#);
    let done = run(&dir, &["-j", "2", "--tag", "--", "sh", job, "{}"], "a\nb\n");
    done.assert_code(0);
    let lines = done.stdout_lines();
    assert_eq!(lines.len(), 4, "{done}");
    for pair in lines.chunks(2) {
        let item = pair[0].split('\t').next().unwrap();
        assert_eq!(
            pair,
            [format!("{item}\tone {item}"), format!("{item}\ttwo {item}")],
            "a job's output whole\n{done}"
        );
    }
    let mut items: Vec<&str> = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    items.sort();
    assert_eq!(items, ["a", "a", "b", "b"]);
}

#[test]
fn dedup_runs_each_distinct_item_once() {
    let dir = Dir::new("dedup");
    let job = dir.script("job.sh", r#"echo "$1" >> "@/ran""#);
    let done = run(
        &dir,
        &["--dedup", "--", "sh", job, "{}"],
        "a\nb\na\nc\nb\na\n",
    );
    done.assert_code(0);
    let mut ran = dir.lines("ran");
    ran.sort();
    assert_eq!(ran, ["a", "b", "c"], "{done}");
}

#[test]
fn then_feeds_each_jobs_stdout_to_the_next_stage() {
    let dir = Dir::new("then");
    let log = dir.file("joblog");
    let done = run(
        &dir,
        &[
            "--joblog",
            log,
            "--then",
            "tr a-z A-Z",
            "--then",
            "sed s/^/x/",
            "--",
            "echo",
            "{}",
        ],
        "abc\ndef\n",
    );
    done.assert_code(0);
    let mut lines = done.stdout_lines();
    lines.sort();
    assert_eq!(lines, ["xABC", "xDEF"], "{done}");
    // Three stages, no retry: one attempt each.
    assert!(joblog(log).iter().all(|j| j.attempts == 1), "{done}");
}

#[test]
fn on_error_runs_for_each_failed_item() {
    let dir = Dir::new("on-error");
    let job = dir.script("job.sh", r#"[ $(($1 % 2)) -eq 1 ]"#);
    let on_error = dir.script("on-error.sh", r#"echo "$1" >> "@/failed""#);
    let on_error = format!("sh {on_error} {{}}");
    let done = run(
        &dir,
        &["--on-error", on_error.as_str(), "--", "sh", job, "{}"],
        &numbers(6),
    );
    done.assert_code(3);
    let mut failed = dir.lines("failed");
    failed.sort();
    assert_eq!(failed, ["2", "4", "6"], "{done}");
    // Every failure is logged, naming the item.
    let logged = done
        .stderr
        .lines()
        .filter(|l| l.contains("job failed"))
        .count();
    assert_eq!(logged, 3, "{done}");
    done.assert_stderr_has("item=4");
}

#[test]
fn timeout_kills_the_jobs_process_group() {
    let dir = Dir::new("timeout");
    let job = dir.script("job.sh", r#"sleep 30 & echo $! > "@/sleep.pid"; wait"#);
    let log = dir.file("joblog");
    let done = run(
        &dir,
        &["--timeout", "1s", "--joblog", log, "--", "sh", job],
        "x\n",
    );
    done.assert_code(1);
    assert!(
        done.elapsed < Duration::from_secs(20),
        "killed after 1 s, not 30\n{done}"
    );
    let jobs = joblog(log);
    assert_eq!(jobs.len(), 1, "{done}");
    assert_eq!(
        (jobs[0].exit, jobs[0].signal),
        (-1, 9),
        "a timed-out job: {:?}",
        jobs[0]
    );
    assert!(jobs[0].runtime < 20.0, "{:?}", jobs[0]);
    // The job's own child went with it (the whole group was killed).
    let pid = dir
        .lines("sleep.pid")
        .first()
        .cloned()
        .expect("the job recorded its child");
    let alive = || {
        fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|s| !s.trim_start().starts_with('Z'))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !alive(),
        "the job's `sleep 30` (pid {pid}) was killed with its group"
    );
}

// ===== bad input =====

#[test]
fn empty_input_runs_nothing_and_exits_0() {
    let dir = Dir::new("empty");
    let job = dir.script("job.sh", r#"touch "@/ran""#);
    let done = run(&dir, &["--", "sh", job], "");
    done.assert_code(0);
    assert!(!dir.path().join("ran").exists(), "nothing ran\n{done}");
    assert_eq!(done.stdout, "", "{done}");
}

#[test]
fn a_command_that_cannot_be_found_exits_127_naming_it() {
    let dir = Dir::new("not-found");
    let done = run(&dir, &["--", "flowgate-test-no-such-command", "{}"], "x\n");
    done.assert_code(127)
        .assert_stderr_has("flowgate-test-no-such-command");
}

#[test]
fn exit_code_is_the_failed_count_capped_at_101() {
    let dir = Dir::new("exit-code");
    let job = dir.script("job.sh", r#"[ "$1" -gt 3 ]"#);
    run(&dir, &["--", "sh", job], &numbers(10)).assert_code(3);
    run(&dir, &["-j", "8", "--", "false"], &numbers(120)).assert_code(101);
    run(&dir, &["--", "true"], &numbers(10)).assert_code(0);
}

/// `flowgate run ARGS -- sh <marker script>` on one item: a usage error
/// (exit 255) that names `flag` and runs nothing.
#[track_caller]
fn usage_error(args: &[&str], flag: &str) {
    let dir = Dir::new("usage");
    let job = dir.script("job.sh", r#"touch "@/ran""#);
    let mut all = args.to_vec();
    all.extend_from_slice(&["--", "sh", job]);
    let done = run(&dir, &all, "x\n");
    done.assert_code(255).assert_stderr_has(flag);
    assert!(!dir.path().join("ran").exists(), "nothing ran\n{done}");
}

#[test]
fn a_zero_rate_is_a_usage_error_naming_rate() {
    usage_error(&["--rate", "0/s"], "--rate");
}

#[test]
fn resume_without_joblog_is_a_usage_error() {
    usage_error(&["--resume"], "--joblog");
    usage_error(&["--resume-failed"], "--joblog");
}

#[test]
fn bad_values_and_flags_that_do_not_apply_are_usage_errors() {
    usage_error(&["--rate", "10/x"], "--rate");
    usage_error(&["--burst", "5"], "--rate");
    usage_error(&["--rate", "10/s", "--burst", "0"], "--burst");
    usage_error(&["-j", "0"], "--jobs");
    usage_error(&["-j", "4", "--adaptive", "2..8"], "--adaptive");
    usage_error(&["--adaptive", "0..4"], "--adaptive");
    usage_error(&["--adaptive", "8..2"], "--adaptive");
    usage_error(&["--timeout", "0s"], "--timeout");
    usage_error(&["--timeout", "NaN"], "--timeout");
    usage_error(&["--breaker", "150%/20/30s"], "--breaker");
    usage_error(&["--halt", "soon,fail=NaN%"], "--halt");
    usage_error(&["--retries", "2", "--backoff", "exp:10s..1s"], "--backoff");
    usage_error(&["--retries", "2", "--no-retry-on", ""], "--no-retry-on");
    usage_error(&["--backoff", "const:1s"], "--retries");
    usage_error(&["--retries", "0", "--jitter", "equal"], "--jitter");
    usage_error(
        &["--resume", "--resume-failed", "--joblog", "log"],
        "--resume",
    );
    usage_error(&["--then", "sh -c 'unclosed"], "--then");
    usage_error(&["--no-such-flag"], "--no-such-flag");
}

#[test]
fn a_missing_command_is_a_usage_error_and_help_is_not() {
    let dir = Dir::new("help");
    run(&dir, &[], "x\n")
        .assert_code(255)
        .assert_stderr_has("COMMAND");
    let help = run(&dir, &["--help"], "");
    help.assert_code(0);
    assert!(
        help.stdout.contains("Examples") && help.stdout.contains("--rate"),
        "{help}"
    );
    flowgate(&dir, &["--version"], "").assert_code(0);
}

// ===== halt, adaptive, burst, accounting =====

#[test]
fn halt_now_stops_at_the_third_failure_and_kills_the_running_jobs() {
    let dir = Dir::new("halt-now");
    // Items 1-3 fail at once; the rest would run for a long time.
    let job = dir.script(
        "job.sh",
        r#"[ "$1" -le 3 ] && exit 1
echo "$1" >> "@/started"
exec sleep 1000"#,
    );
    let json = dir.file("summary.json");
    let start = Instant::now();
    let done = run(
        &dir,
        &[
            "-j",
            "1",
            "--halt",
            "now,fail=3",
            "--summary-json",
            json,
            "--",
            "sh",
            job,
        ],
        &numbers(10),
    );
    done.assert_code(3);
    assert!(start.elapsed() < HANG);
    let summary = fs::read_to_string(json).unwrap();
    assert_eq!(json_number(&summary, "failed"), Some(3.0), "{summary}");
    assert_eq!(json_number(&summary, "succeeded"), Some(0.0), "{summary}");
    assert!(summary.contains("\"halted\": true"), "{summary}");
    // -j 1: nothing started after the third failure.
    assert!(dir.lines("started").is_empty(), "{done}");
}

#[test]
fn halt_soon_lets_the_running_jobs_finish_and_starts_no_more() {
    let dir = Dir::new("halt-soon");
    // Item 1 fails at once; items 2 and 3 (running beside it) finish a bit
    // later and succeed; nothing after them may start.
    let job = dir.script(
        "job.sh",
        r#"echo "$1" >> "@/started"
[ "$1" = 1 ] && exit 1
sleep 0.3"#,
    );
    let json = dir.file("summary.json");
    let done = run(
        &dir,
        &[
            "-j",
            "3",
            "--halt",
            "soon,fail=1",
            "--summary-json",
            json,
            "--",
            "sh",
            job,
        ],
        &numbers(20),
    );
    done.assert_code(1);
    let summary = fs::read_to_string(json).unwrap();
    let succeeded = json_number(&summary, "succeeded").unwrap();
    let not_run = json_number(&summary, "not_run").unwrap();
    let started = dir.lines("started").len() as f64;
    assert_eq!(
        succeeded + 1.0,
        started,
        "every started job finished\n{summary}"
    );
    assert!(
        started <= 3.0,
        "no job started after the failure: {started}"
    );
    assert_eq!(
        json_number(&summary, "items").unwrap() - started,
        not_run,
        "{summary}"
    );
}

#[test]
fn adaptive_concurrency_stays_within_its_range() {
    let dir = Dir::new("adaptive");
    // Each job records how many run beside it (mkdir-free: a counter of
    // marker files).
    let job = dir.script(
        "job.sh",
        r#"touch "@/running-$1"
ls "@" | grep -c '^running-' >> "@/seen"
sleep 0.05
rm "@/running-$1""#,
    );
    run(&dir, &["--adaptive", "2..4", "--", "sh", job], &numbers(40)).assert_code(0);
    let seen: Vec<u32> = dir
        .lines("seen")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(seen.len(), 40);
    assert!(seen.iter().all(|&n| n <= 4), "at most 4 at once: {seen:?}");
}

#[test]
fn burst_lets_the_first_jobs_start_together_then_the_rate_holds() {
    let dir = Dir::new("burst");
    let start = Instant::now();
    // 10 jobs at 2/s with a burst of 5: 5 at once, then one every 0.5 s, so
    // the last starts at 2.5 s at the earliest.
    run(
        &dir,
        &["-j", "10", "--rate", "2/s", "--burst", "5", "--", "true"],
        &numbers(10),
    )
    .assert_code(0);
    assert!(
        start.elapsed() >= Duration::from_millis(2400),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_summary_accounts_for_every_item() {
    let dir = Dir::new("accounting");
    let log = dir.file("joblog");
    let json = dir.file("summary.json");
    let job = dir.script("job.sh", r#"[ "$1" != bad ]"#);
    // 6 lines: 2 duplicates, 1 failure.
    let input = "a\nb\na\nbad\nc\nb\n";
    let done = run(
        &dir,
        &[
            "--dedup",
            "--joblog",
            log,
            "--summary-json",
            json,
            "--",
            "sh",
            job,
        ],
        input,
    );
    done.assert_code(1);
    let summary = fs::read_to_string(json).unwrap();
    let n = |field| json_number(&summary, field).unwrap();
    assert_eq!(n("items"), 6.0);
    assert_eq!(
        (n("succeeded"), n("failed"), n("skipped_dedup")),
        (3.0, 1.0, 2.0)
    );
    assert_eq!(
        n("succeeded") + n("failed") + n("skipped_dedup") + n("skipped_resume") + n("not_run"),
        6.0
    );
    assert_eq!(joblog(log).len(), 4, "one line per job that ran");
}

// ===== input forms, permanent exit codes, resume-failed =====

#[test]
fn permanent_exit_codes_are_not_retried() {
    let dir = Dir::new("no-retry-on");
    let log = dir.file("joblog");
    // Item 1 exits 2 (permanent), item 2 exits 1 (transient): only 2 is retried.
    let job = dir.script("job.sh", r#"exit "$(( 3 - $1 ))""#);
    let done = run(
        &dir,
        &[
            "--retries",
            "2",
            "--backoff",
            "const:1ms",
            "--no-retry-on",
            "2",
            "--joblog",
            log,
            "--",
            "sh",
            job,
        ],
        &numbers(2),
    );
    done.assert_code(2);
    let mut jobs = joblog(log);
    jobs.sort_by_key(|j| j.seq);
    assert_eq!(
        (jobs[0].exit, jobs[0].attempts),
        (2, 1),
        "permanent: one attempt"
    );
    assert_eq!(
        (jobs[1].exit, jobs[1].attempts),
        (1, 3),
        "transient: 1 + 2 retries"
    );
}

#[test]
fn resume_failed_reruns_only_the_failed_items() {
    let dir = Dir::new("resume-failed");
    let log = dir.file("joblog");
    let job = dir.script(
        "job.sh",
        r#"echo "$1" >> "@/ran"
[ -e "@/fixed" ] || [ "$(( $1 % 3 ))" != 0 ]"#,
    );
    run(&dir, &["--joblog", log, "--", "sh", job], &numbers(9)).assert_code(3);
    fs::write(dir.path().join("fixed"), "").unwrap();
    fs::remove_file(dir.path().join("ran")).unwrap();
    run(
        &dir,
        &["--joblog", log, "--resume-failed", "--", "sh", job],
        &numbers(9),
    )
    .assert_code(0);
    let mut rerun = dir.lines("ran");
    rerun.sort();
    assert_eq!(rerun, ["3", "6", "9"], "only the failed ones ran again");
}

#[test]
fn nul_separated_input_from_a_file_and_fields_by_delimiter() {
    let dir = Dir::new("input-forms");
    let input = dir.file("items");
    fs::write(input, "a b:1\0c\nd:2\0").unwrap();
    let done = run(
        &dir,
        &[
            "-0", "-a", input, "-k", "-d", ":", "--", "printf", "%s|%s\\n", "{1}", "{2}",
        ],
        "",
    );
    done.assert_code(0);
    assert_eq!(done.stdout, "a b|1\nc\nd|2\n");
}
