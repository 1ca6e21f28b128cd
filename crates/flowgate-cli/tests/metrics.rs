//! `--metrics-addr`: the Prometheus endpoint of `flowgate ingest` and
//! `flowgate run`, scraped while the command runs; its series agree with the
//! final report (ingest) and summary (run).

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// One scrape: `series{labels}` → value, labels as printed by the exporter
/// (sorted by it; here we compare whole strings built the same way).
#[derive(Debug, Default)]
struct Scrape {
    values: BTreeMap<String, f64>,
    text: String,
}

impl Scrape {
    /// GET /metrics from `port`; `None` while nothing listens yet.
    fn get(port: u16) -> Option<Scrape> {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        conn.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        assert!(head.starts_with("HTTP/1.1 200"), "scrape answered {head}");
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        let mut values = BTreeMap::new();
        for line in body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("series value");
            values.insert(series.to_owned(), value.parse().expect("a number"));
        }
        Some(Scrape { values, text: body })
    }

    /// The value of `series` (exactly as printed, e.g.
    /// `flowgate_ingest_messages_total{outcome="written"}`).
    fn value(&self, series: &str) -> f64 {
        match self.values.get(series) {
            Some(v) => *v,
            None => panic!("no series {series} in the scrape:\n{}", self.text),
        }
    }

    fn has_family(&self, name: &str) -> bool {
        self.values.keys().any(|k| {
            k == name || k.starts_with(&format!("{name}{{")) || k.starts_with(&format!("{name}_"))
        })
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_serves_the_documented_series_and_they_match_the_report() {
    let Some(servers) = shared() else { return };
    let t = Target::new(&servers.redis, &servers.postgres, "metrics");
    t.publish(0, 500).await;
    // One entry the source dead-letters itself (a field name that is not
    // UTF-8), one that does not fit the mapping (no body).
    xadd(
        &t.redis,
        &t.stream,
        &[(b"\xff\xfe", b"x"), (b"seq", b"5"), (b"body", b"b")],
    )
    .await;
    xadd(&t.redis, &t.stream, &[(b"seq", b"7")]).await;
    t.publish(500, 500).await;

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut ingest = t.spawn("c1", &["--metrics-addr", &addr]);
    // Scraped while it runs, until every message's outcome shows.
    let mut last = None;
    wait_until(
        "the scrape shows 1002 messages acked",
        RUN_TIMEOUT,
        &mut [&mut ingest],
        async || match Scrape::get(port) {
            None => Check::Wait("nothing listens yet".into()),
            Some(scrape) => {
                let acked = scrape.values.get("flowgate_ingest_acked_total").copied();
                let done = acked == Some(1002.0)
                    && scrape.values.get("flowgate_ingest_in_flight").copied() == Some(0.0);
                last = Some(scrape);
                if done {
                    Check::Done
                } else {
                    Check::Wait(format!("acked {acked:?}"))
                }
            }
        },
    )
    .await;
    let scrape = last.expect("scraped");
    let done = ingest.stop().await;
    done.assert_code(0);
    let report = done.report();

    let outcome = |o: &str| {
        scrape.value(&format!(
            "flowgate_ingest_messages_total{{outcome=\"{o}\"}}"
        )) as u64
    };
    assert_eq!(
        scrape.value("flowgate_ingest_received_total") as u64,
        report.received,
        "{report:#?}"
    );
    assert_eq!(outcome("written"), report.written);
    assert_eq!(outcome("duplicate"), report.duplicates);
    assert_eq!(outcome("dead_lettered"), report.dead_lettered);
    assert_eq!(outcome("failed"), report.failed);
    assert_eq!(outcome("unacked"), report.unacked);
    assert_eq!(
        scrape.value("flowgate_ingest_acked_total") as u64,
        report.acked
    );
    assert_eq!(
        scrape.value("flowgate_ingest_sink_retries_total") as u64,
        report.retries
    );
    assert_eq!(
        (report.received, report.written, report.dead_lettered),
        (1002, 1000, 2)
    );
    assert_eq!(scrape.value("flowgate_ingest_sink_down"), 0.0);
    // Every acked message's latency, as a Prometheus histogram.
    assert_eq!(
        scrape.value("flowgate_ingest_ack_latency_seconds_count") as u64,
        report.acked - 1,
        "the entry the source dead-lettered itself was never received by the pipeline"
    );
    // The Redis source's own counters.
    #[cfg(feature = "metrics")]
    assert_eq!(
        scrape.value("flowgate_redis_source_read_total{name=\"ingest\"}"),
        1001.0
    );
    assert_eq!(
        scrape.value("flowgate_redis_source_unreadable_total{name=\"ingest\"}"),
        1.0
    );
    assert_eq!(
        scrape.value("flowgate_redis_source_held{name=\"ingest\"}"),
        0.0
    );
    // The primitives on the path, by the names the binary gives them: the
    // write stage took in every message the pipeline received.
    #[cfg(feature = "metrics")]
    {
        assert_eq!(
            scrape.value("flowgate_pipeline_items_in_total{name=\"ingest\"}"),
            1001.0
        );
        assert_eq!(
            scrape.value("flowgate_pipeline_in_flight{name=\"ingest\"}"),
            0.0
        );
        assert_eq!(
            scrape.value("flowgate_retry_retries_total{name=\"sink\"}"),
            0.0
        );
        assert_eq!(scrape.value("flowgate_pause_holds{name=\"ingest\"}"), 0.0);
    }
    // Every series the binary documents for ingest is served.
    for (name, _) in flowgate_cli::metrics::INGEST {
        assert!(
            scrape.has_family(name),
            "{name} is served:\n{}",
            scrape.text
        );
    }
    // With a HELP line from the descriptions.
    assert!(
        scrape
            .text
            .contains("# HELP flowgate_ingest_received_total"),
        "{}",
        scrape.text
    );
}

#[test]
fn run_serves_its_totals_while_it_runs_and_they_match_the_summary() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args([
            "run",
            "--metrics-addr",
            &addr,
            "--dedup",
            "-j",
            "2",
            "--rate",
            "1000/s",
            "--",
            "sh",
            "-c",
            "test {} != 3",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flowgate runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"1\n2\n3\n4\n4\n").unwrap();
    stdin.flush().unwrap();
    // The input stays open: the run is still going while we scrape.
    let deadline = Instant::now() + RUN_TIMEOUT;
    let scrape = loop {
        if let Some(s) = Scrape::get(port)
            && s.values
                .get("flowgate_run_jobs_total{outcome=\"succeeded\"}")
                == Some(&3.0)
            && s.values.get("flowgate_run_jobs_total{outcome=\"failed\"}") == Some(&1.0)
        {
            break s;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "flowgate run exited before the scrape"
        );
        assert!(
            Instant::now() < deadline,
            "the scrape never showed 4 finished jobs"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(scrape.value("flowgate_run_items_total"), 5.0);
    assert_eq!(
        scrape.value("flowgate_run_skipped_total{reason=\"dedup\"}"),
        1.0
    );
    assert_eq!(
        scrape.value("flowgate_run_skipped_total{reason=\"resume\"}"),
        0.0
    );
    assert_eq!(scrape.value("flowgate_run_jobs_running"), 0.0);
    assert_eq!(scrape.value("flowgate_run_jobs_waiting"), 0.0);
    // The rate limiter, by its name: one token per job started.
    #[cfg(feature = "metrics")]
    assert_eq!(
        scrape.value("flowgate_limit_granted_total{name=\"run\"}"),
        4.0
    );
    for (name, _) in flowgate_cli::metrics::RUN {
        assert!(
            scrape.has_family(name),
            "{name} is served:\n{}",
            scrape.text
        );
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "one job failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("5 items: 3 succeeded, 1 failed"),
        "the summary agrees: {stderr}"
    );
}

#[test]
fn an_address_in_use_is_refused_with_the_flag_and_the_cause() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for (command, code) in [("ingest", 2), ("run", 255)] {
        let mut args = vec![command, "--metrics-addr", &addr];
        if command == "run" {
            args.extend(["--", "true"]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{command}: {stderr}");
        assert!(
            stderr.contains(&format!("--metrics-addr {addr}")) && stderr.contains("in use"),
            "{command}: the flag, the address and the cause: {stderr}"
        );
    }
}

#[test]
fn an_address_that_is_not_ip_and_port_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["ingest", "--metrics-addr", "localhost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metrics-addr"));
}
