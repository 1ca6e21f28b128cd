//! Bad content goes to the dead-letter stream with its reason and original
//! id, and the rest flows: an entry Redis cannot parse (a non-UTF-8 field
//! name), entries that do not fit the demo mapping (no `body`, a non-numeric
//! `seq`), and rows the database rejects (a CHECK constraint), among good
//! messages, on the shared servers.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_and_misfit_entries_are_dead_lettered_with_a_reason_and_the_rest_is_written() {
    let Some(servers) = shared() else { return };
    let t = Target::new(&servers.redis, &servers.postgres, "poison");
    let mut good: BTreeMap<String, u64> = BTreeMap::new();
    let mut add_good = async |from: u64| {
        let ids = t.publish(from, 100).await;
        good.extend(ids.into_iter().zip(from..));
    };
    add_good(0).await;
    // Redis can store this, but a reply carrying it does not parse as text.
    let unparseable = xadd(
        &t.redis,
        &t.stream,
        &[(b"\xff\xfe", b"x"), (b"seq", b"5"), (b"body", b"b")],
    )
    .await;
    add_good(100).await;
    let no_body = xadd(&t.redis, &t.stream, &[(b"seq", b"7")]).await;
    add_good(200).await;
    let bad_seq = xadd(&t.redis, &t.stream, &[(b"seq", b"abc"), (b"body", b"b")]).await;
    add_good(300).await;
    let good_rows = good.len() as u64;

    let mut ingest = t.spawn("c1", &["--claim-idle-ms", "500", "--max-deliveries", "5"]);
    t.wait_done(good_rows, 3, &mut [&mut ingest]).await;
    let done = ingest.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert_eq!(report.dead_lettered, 3, "{report:#?}");
    assert_eq!(report.written, good_rows, "{report:#?}");
    t.assert_final(good_rows, 3).await;

    // The dead letters: their original ids, each with a reason.
    let dead = dead_letters(&t.redis, &t.dead).await;
    let by_original: BTreeMap<String, Entry> = dead
        .iter()
        .map(|e| {
            let id = e
                .get("flowgate-original-id")
                .unwrap_or_else(|| panic!("flowgate-original-id in {e:?}"));
            (id, e.clone())
        })
        .collect();
    assert_eq!(
        by_original.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([unparseable.clone(), no_body.clone(), bad_seq.clone()]),
        "the bad entries, by their original ids: {dead:#?}"
    );
    for (id, entry) in &by_original {
        let reason = entry.get("flowgate-reason").unwrap_or_default();
        assert!(
            !reason.trim().is_empty(),
            "dead letter of {id} has a reason: {entry:?}"
        );
    }
    let reason = |id: &str| by_original[id].get("flowgate-reason").unwrap();
    assert!(
        reason(&no_body).contains("body"),
        "the reason names the missing field: {}",
        reason(&no_body)
    );
    assert!(
        reason(&bad_seq).contains("seq"),
        "the reason names the bad field: {}",
        reason(&bad_seq)
    );

    // The good ones, each with its values.
    let client = pg(&t.postgres).await;
    let stored: BTreeMap<String, (i64, Vec<u8>, i64)> = client
        .query(
            &format!("SELECT id, seq, body, checksum FROM {}", t.table),
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2), row.get(3))))
        .collect();
    assert_eq!(stored.len(), good.len());
    for (id, seq) in &good {
        let expected_body = body(*seq);
        let expected = (*seq as i64, expected_body.clone(), checksum(&expected_body));
        assert_eq!(stored.get(id), Some(&expected), "row of {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_database_rejects_are_dead_lettered_with_its_message_and_the_rest_of_the_batch_is_written()
 {
    let Some(servers) = shared() else { return };
    let t = Target::new(&servers.redis, &servers.postgres, "rejected");
    t.create_table().await;
    execute(
        &t.postgres,
        &format!(
            "ALTER TABLE {} ADD CONSTRAINT no_threes CHECK (seq % 10 <> 3)",
            t.table
        ),
    )
    .await;
    let total = 3000;
    let ids = t.publish(0, total).await;
    let rejected: BTreeSet<String> = ids
        .iter()
        .zip(0..)
        .filter(|(_, seq)| seq % 10 == 3)
        .map(|(id, _)| id.clone())
        .collect();
    let rejected_n = rejected.len() as u64;

    let mut ingest = t.spawn("c1", &["--claim-idle-ms", "500"]);
    t.wait_done(total - rejected_n, rejected_n, &mut [&mut ingest])
        .await;
    let done = ingest.stop().await;
    done.assert_code(0);
    let report = done.report();
    report.assert_clean();
    assert_eq!(report.dead_lettered, rejected_n, "{report:#?}");
    assert_eq!(report.written, total - rejected_n, "{report:#?}");
    t.assert_final(total - rejected_n, rejected_n).await;

    let dead = dead_letters(&t.redis, &t.dead).await;
    let originals: BTreeSet<String> = dead
        .iter()
        .map(|e| e.get("flowgate-original-id").unwrap_or_default())
        .collect();
    assert_eq!(originals, rejected, "the rejected rows, by original id");
    for entry in &dead {
        let reason = entry.get("flowgate-reason").unwrap_or_default();
        assert!(
            reason.contains("no_threes"),
            "the reason is the server's message, naming the constraint: {entry:?}"
        );
        let seq: u64 = entry
            .get("seq")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("the original fields are kept: {entry:?}"));
        assert_eq!(seq % 10, 3, "{entry:?}");
    }
}
