//! Writing the jobs' output: each job's stdout and stderr whole, never
//! interleaved with another job's, as jobs finish or (`keep_order`) in input
//! order, optionally tagged with the item.
//!
//! # Memory
//!
//! Without `keep_order` nothing is held: each job's output is written when it
//! is announced. With `keep_order`, a job that finishes before an earlier seq
//! is announced is held until then, so memory is bounded by the outputs of at
//! most `jobs in flight + finished-but-waiting` jobs: the runner never has more
//! than that between the oldest unannounced seq and the newest finished one.
//! A seq that produces no job must be announced with [`Output::skip`], or
//! every later output is held until [`Output::finish`].

use std::collections::BTreeMap;
use std::io::{self, Write};

/// Writes each job's stdout and stderr whole (never interleaved between
/// jobs) to the runner's stdout and stderr: as jobs finish, or with
/// `keep_order` in input (seq) order, buffering the outputs of jobs that
/// finished early (see the [module docs](self) for the bound).
///
/// With `tag`, every output line, on stdout and on stderr, is prefixed by the
/// item and a tab (the item as it is, not escaped); a last line without a
/// newline gets one, so that the next job's first line is tagged on a line of
/// its own. Without `tag`, the bytes are written unchanged. A job with empty
/// output writes nothing (and flushes nothing).
///
/// Each job's stdout is written with one `write_all` and then flushed, then
/// its stderr the same way.
///
/// Seqs that produce no job (skipped by resume or dedup, or not run after a
/// halt) are announced with [`skip`](Output::skip) so that `keep_order` does
/// not wait for them.
///
/// # Examples
///
/// ```
/// use flowgate_cli::run::output::Output;
///
/// let mut out = Output::new(Vec::new(), Vec::new(), true, true);
/// out.job(2, "b", b"second\n", b"")?; // held: seq 1 is not announced yet
/// out.skip(3)?;
/// out.job(1, "a", b"first", b"oops\n")?; // writes 1, then 2
/// out.finish()?;
/// let (stdout, stderr) = out.into_inner();
/// assert_eq!(stdout, b"a\tfirst\nb\tsecond\n");
/// assert_eq!(stderr, b"a\toops\n");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Output<O: Write, E: Write> {
    stdout: O,
    stderr: E,
    keep_order: bool,
    tag: bool,
    /// With keep_order: the next seq to write.
    next: u64,
    /// With keep_order: announced seqs above `next`, `None` for a skip.
    held: BTreeMap<u64, Option<Held>>,
    /// After `finish`: ordering is over, everything is written as it comes.
    finished: bool,
    /// Scratch buffer for tagging.
    scratch: Vec<u8>,
}

#[derive(Debug)]
struct Held {
    item: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl<O: Write, E: Write> Output<O, E> {
    /// Output to `stdout` and `stderr` (usually the runner's own), in seq
    /// order when `keep_order`, with the item prefixed to each line when
    /// `tag`.
    pub fn new(stdout: O, stderr: E, keep_order: bool, tag: bool) -> Self {
        Output {
            stdout,
            stderr,
            keep_order,
            tag,
            next: 1,
            held: BTreeMap::new(),
            finished: false,
            scratch: Vec::new(),
        }
    }

    /// Announces the finished job `seq` (1-based) of `item` with its output.
    /// Seqs are 1-based and each is announced exactly once, by `job` or
    /// [`skip`](Output::skip). Without `keep_order` (or after
    /// [`finish`](Output::finish)) the output is written now; with it, the
    /// output is written when every earlier seq has been announced, held
    /// until then.
    ///
    /// # Errors
    ///
    /// An error writing to stdout or stderr. The output being written is
    /// then lost (it may be partly written); the held outputs stay held.
    ///
    /// # Panics
    ///
    /// If `seq` is 0; with `keep_order` (before `finish`), also if `seq` was
    /// already announced. (Without `keep_order`, duplicates are not
    /// detected.)
    #[track_caller]
    pub fn job(&mut self, seq: u64, item: &str, stdout: &[u8], stderr: &[u8]) -> io::Result<()> {
        assert!(seq >= 1, "Output::job: seq must be at least 1");
        if !self.keep_order || self.finished {
            return self.write(item, stdout, stderr);
        }
        self.check_new(seq, "Output::job");
        if seq == self.next {
            self.next = self.next.saturating_add(1);
            self.write(item, stdout, stderr)?;
            self.drain()
        } else {
            let held = Held {
                item: item.to_owned(),
                stdout: stdout.to_vec(),
                stderr: stderr.to_vec(),
            };
            self.held.insert(seq, Some(held));
            Ok(())
        }
    }

    /// Announces that `seq` (1-based) produces no job, so that with
    /// `keep_order` the outputs after it need not wait for it. Writes nothing
    /// itself; without `keep_order` it does nothing.
    ///
    /// # Errors
    ///
    /// An error writing held outputs that `seq` was holding back.
    ///
    /// # Panics
    ///
    /// If `seq` is 0; with `keep_order` (before `finish`), also if `seq` was
    /// already announced.
    #[track_caller]
    pub fn skip(&mut self, seq: u64) -> io::Result<()> {
        assert!(seq >= 1, "Output::skip: seq must be at least 1");
        if !self.keep_order || self.finished {
            return Ok(());
        }
        self.check_new(seq, "Output::skip");
        if seq == self.next {
            self.next = self.next.saturating_add(1);
            self.drain()
        } else {
            self.held.insert(seq, None);
            Ok(())
        }
    }

    /// Writes whatever is held, in seq order, skipping the seqs never
    /// announced (used at the end, or after a halt), and flushes both
    /// streams. From then on ordering is over: later jobs are written as they
    /// are announced.
    ///
    /// # Errors
    ///
    /// An error writing or flushing; the outputs not yet written are dropped.
    pub fn finish(&mut self) -> io::Result<()> {
        self.finished = true;
        while let Some((_, held)) = self.held.pop_first() {
            if let Some(held) = held {
                self.write(&held.item, &held.stdout, &held.stderr)?;
            }
        }
        self.stdout.flush()?;
        self.stderr.flush()
    }

    /// How many announced seqs are held, waiting for an earlier one (always
    /// 0 without `keep_order`).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The stdout and stderr writers, without flushing or writing what is
    /// held (call [`finish`](Output::finish) first).
    pub fn into_inner(self) -> (O, E) {
        (self.stdout, self.stderr)
    }

    #[track_caller]
    fn check_new(&self, seq: u64, op: &str) {
        assert!(
            seq >= self.next && !self.held.contains_key(&seq),
            "{op}: seq must be announced once, {seq} already was"
        );
    }

    /// Writes the held outputs from `next` on while they are contiguous.
    fn drain(&mut self) -> io::Result<()> {
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() != self.next {
                break;
            }
            let held = entry.remove();
            self.next = self.next.saturating_add(1);
            if let Some(held) = held {
                self.write(&held.item, &held.stdout, &held.stderr)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, item: &str, stdout: &[u8], stderr: &[u8]) -> io::Result<()> {
        let tag = self.tag.then_some(item);
        write_whole(&mut self.stdout, &mut self.scratch, tag, stdout)?;
        write_whole(&mut self.stderr, &mut self.scratch, tag, stderr)
    }
}

/// Writes `bytes` (tagged per line if `tag`) with one `write_all`, then
/// flushes. Nothing at all for empty `bytes`.
fn write_whole<W: Write>(
    out: &mut W,
    scratch: &mut Vec<u8>,
    tag: Option<&str>,
    bytes: &[u8],
) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    match tag {
        None => out.write_all(bytes)?,
        Some(tag) => {
            scratch.clear();
            for line in bytes.split_inclusive(|&b| b == b'\n') {
                scratch.extend_from_slice(tag.as_bytes());
                scratch.push(b'\t');
                scratch.extend_from_slice(line);
            }
            if scratch.last() != Some(&b'\n') {
                scratch.push(b'\n');
            }
            out.write_all(scratch)?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Mem = Output<Vec<u8>, Vec<u8>>;

    fn out(keep_order: bool, tag: bool) -> Mem {
        Output::new(Vec::new(), Vec::new(), keep_order, tag)
    }

    fn text(output: Mem) -> (String, String) {
        let (o, e) = output.into_inner();
        (String::from_utf8(o).unwrap(), String::from_utf8(e).unwrap())
    }

    #[test]
    fn without_keep_order_jobs_are_written_as_they_finish() {
        let mut o = out(false, false);
        o.job(3, "c", b"three\n", b"").unwrap();
        o.job(1, "a", b"one\n", b"").unwrap();
        assert_eq!(o.held(), 0);
        o.skip(2).unwrap();
        o.finish().unwrap();
        assert_eq!(text(o).0, "three\none\n");
    }

    #[test]
    fn keep_order_writes_in_seq_order_with_out_of_order_completion() {
        let mut o = out(true, false);
        o.job(3, "c", b"three\n", b"e3\n").unwrap();
        o.job(2, "b", b"two\n", b"").unwrap();
        assert_eq!(o.held(), 2);
        assert!(o.stdout.is_empty(), "nothing may be written before seq 1");
        o.job(1, "a", b"one\n", b"e1\n").unwrap();
        assert_eq!(o.held(), 0);
        o.job(5, "e", b"five\n", b"").unwrap();
        o.job(4, "d", b"four\n", b"").unwrap();
        o.finish().unwrap();
        let (stdout, stderr) = text(o);
        assert_eq!(stdout, "one\ntwo\nthree\nfour\nfive\n");
        assert_eq!(stderr, "e1\ne3\n");
    }

    #[test]
    fn keep_order_does_not_wait_for_skipped_seqs() {
        let mut o = out(true, false);
        o.job(2, "b", b"two\n", b"").unwrap();
        o.job(4, "d", b"four\n", b"").unwrap();
        o.skip(3).unwrap();
        assert_eq!(o.held(), 3);
        o.skip(1).unwrap();
        assert_eq!(o.held(), 0, "2, 3 (skip) and 4 follow 1 (skip)");
        assert_eq!(String::from_utf8(o.stdout.clone()).unwrap(), "two\nfour\n");
    }

    #[test]
    fn finish_writes_what_is_held_in_order_and_later_jobs_as_they_come() {
        let mut o = out(true, false);
        o.job(5, "e", b"five\n", b"").unwrap();
        o.job(3, "c", b"three\n", b"").unwrap();
        // Seqs 1, 2 and 4 never come (a halt).
        o.finish().unwrap();
        assert_eq!(o.held(), 0);
        o.job(1, "a", b"one, late\n", b"").unwrap();
        assert_eq!(text(o).0, "three\nfive\none, late\n");
    }

    #[test]
    fn a_jobs_output_is_written_whole_stdout_to_stdout_stderr_to_stderr() {
        let mut o = out(false, false);
        o.job(1, "a", b"partial line", b"warning: x\nno newline")
            .unwrap();
        o.job(2, "b", b"\n", b"").unwrap();
        let (stdout, stderr) = text(o);
        assert_eq!(stdout, "partial line\n");
        assert_eq!(stderr, "warning: x\nno newline");
    }

    #[test]
    fn tag_prefixes_every_line_including_a_last_one_without_newline() {
        let mut o = out(false, true);
        o.job(1, "item a", b"x\ny\nlast", b"err\n").unwrap();
        o.job(2, "b", b"\n\nz\n", b"").unwrap();
        o.job(3, "c", b"", b"").unwrap();
        let (stdout, stderr) = text(o);
        assert_eq!(
            stdout,
            "item a\tx\nitem a\ty\nitem a\tlast\nb\t\nb\t\nb\tz\n"
        );
        assert_eq!(stderr, "item a\terr\n");
    }

    #[test]
    fn tag_and_keep_order_together() {
        let mut o = out(true, true);
        o.job(2, "two", b"2", b"").unwrap();
        o.job(1, "one", b"1\n", b"e").unwrap();
        let (stdout, stderr) = text(o);
        assert_eq!(stdout, "one\t1\ntwo\t2\n");
        assert_eq!(stderr, "one\te\n");
    }

    #[test]
    fn no_tag_leaves_bytes_unchanged() {
        let mut o = out(true, false);
        let bytes = [0u8, 255, b'\r', b'\n', 7];
        o.job(1, "a", &bytes, &bytes).unwrap();
        let (stdout, stderr) = o.into_inner();
        assert_eq!(
            (stdout.as_slice(), stderr.as_slice()),
            (&bytes[..], &bytes[..])
        );
    }

    #[test]
    #[should_panic(expected = "Output::job: seq must be at least 1")]
    fn seq_zero_is_refused() {
        let _ = out(false, false).job(0, "a", b"", b"");
    }

    #[test]
    #[should_panic(expected = "Output::skip: seq must be at least 1")]
    fn skip_zero_is_refused() {
        let _ = out(true, false).skip(0);
    }

    #[test]
    #[should_panic(expected = "Output::job: seq must be announced once, 1 already was")]
    fn a_written_seq_announced_again_is_refused() {
        let mut o = out(true, false);
        o.job(1, "a", b"", b"").unwrap();
        let _ = o.job(1, "a", b"", b"");
    }

    #[test]
    #[should_panic(expected = "Output::skip: seq must be announced once, 3 already was")]
    fn a_held_seq_announced_again_is_refused() {
        let mut o = out(true, false);
        o.job(3, "c", b"", b"").unwrap();
        let _ = o.skip(3);
    }

    /// A writer that fails every write.
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_is_returned() {
        let mut o = Output::new(Broken, Vec::new(), false, false);
        let err = o.job(1, "a", b"x", b"").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        // Empty output writes nothing, so it cannot fail.
        o.job(2, "b", b"", b"").unwrap();
    }

    #[test]
    fn huge_seqs_do_not_overflow() {
        let mut o = out(true, false);
        o.job(u64::MAX, "z", b"last\n", b"").unwrap();
        assert_eq!(o.held(), 1);
        o.finish().unwrap();
        assert_eq!(text(o).0, "last\n");
    }
}
