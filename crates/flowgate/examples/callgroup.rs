//! The inflight seed's CallGroup example, ported: split four strings of
//! numbers across tasks, sum each on its own task, and add the subtotals up in
//! the group's completion. The total is 42.
//!
//! The Go original needed a "starting line" (a WaitGroup every worker waited
//! on) so that fast workers could not complete the group while the loop was
//! still adding operations. Here the completion is only registered by
//! `on_complete`, which consumes the group: nothing can complete before every
//! operation was added, so the workers start at once.
//!
//! Run with `cargo run --example callgroup`.

use std::num::ParseIntError;

use flowgate::group::CallGroup;
use tokio::sync::oneshot;

#[tokio::main]
async fn main() {
    let data = ["1:2", "5:6:7", "1:2", "5:6:7"];

    let mut group = CallGroup::<u64, i64, ParseIntError>::new();
    for (id, entry) in data.iter().enumerate() {
        let op = group
            .add(id as u64, entry.to_string())
            .expect("ids are unique");
        // Spawn off the workers; no starting line needed.
        tokio::spawn(async move {
            let subtotal: Result<i64, ParseIntError> =
                op.msg().split(':').map(str::parse::<i64>).sum();
            op.finish(subtotal);
        });
    }

    // The completion: called once, with every result by id.
    let (done, total) = oneshot::channel();
    group.on_complete(move |results| {
        let mut total = 0;
        for (id, outcome) in results {
            match outcome.into_result() {
                Ok(subtotal) => total += subtotal,
                Err(err) => eprintln!("operation {id}: {err}"),
            }
        }
        let _ = done.send(total);
    });

    let total = total.await.expect("the completion runs once");
    // total == (1 + 2) + (5 + 6 + 7) + (1 + 2) + (5 + 6 + 7) == 42
    assert_eq!(total, 42, "total not equal 42, got: {total}");
    println!("got the expected amount of {total}");
}
