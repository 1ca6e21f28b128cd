//! The read connection: `XREADGROUP` over a plain RESP2 connection of our
//! own, its reply read into one buffer and parsed in place.
//!
//! The `redis` crate parses every reply into a tree of [`redis::Value`]s —
//! an allocation and a copy per id, field name and value, about half of
//! what a batch loop spends per message. The reads are the one hot
//! command, so they bypass it: the reply is framed ([`Framer`], resumable as
//! bytes arrive), frozen into one [`Bytes`], and each entry's [`Fields`]
//! point into it. Everything else (acks, claims, scripts, renewals) goes
//! through the `redis` crate on the commands connection.
//!
//! The connection speaks RESP2 whatever the URL asks for (it is ours alone),
//! authenticates with `AUTH [user] password` and selects the URL's
//! database. A server error reply is turned into the [`RedisError`] the
//! `redis` crate would return (its own parser reads the error line), so
//! `NOGROUP`, `LOADING`, `NOAUTH` … are classified as before.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use redis::{ConnectionAddr, ConnectionInfo, RedisError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::fields::{Fields, Span, SpanList};
use crate::reply::{Content, Entry, Malformed};

/// A byte stream to Redis: TCP or a Unix socket.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One RESP2 connection, for `XREADGROUP`.
pub(crate) struct RespConnection {
    io: Pin<Box<dyn Io>>,
    buf: BytesMut,
    framer: Framer,
    /// The size of the last reply: the next read reserves as much, so a
    /// reply usually lands in one buffer without growing it.
    last_reply: usize,
}

impl std::fmt::Debug for RespConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RespConnection").finish_non_exhaustive()
    }
}

/// The least a read reserves.
const READ_CHUNK: usize = 64 * 1024;

impl RespConnection {
    /// Connects to the server of `info`, authenticates and selects its
    /// database, within `timeout`.
    pub(crate) async fn connect(
        info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<RespConnection, RedisError> {
        match tokio::time::timeout(timeout, Self::connect_now(info)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(RedisError::from(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            ))),
        }
    }

    async fn connect_now(info: &ConnectionInfo) -> Result<RespConnection, RedisError> {
        let io: Pin<Box<dyn Io>> = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                Box::pin(stream)
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => Box::pin(tokio::net::UnixStream::connect(path).await?),
            other => {
                return Err(RedisError::from(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("flowgate-redis reads over TCP or a Unix socket, not {other:?}"),
                )));
            }
        };
        let mut conn = RespConnection {
            io,
            buf: BytesMut::new(),
            framer: Framer::default(),
            last_reply: 0,
        };
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(username) = settings.username() {
                auth.arg(username);
            }
            auth.arg(password);
            conn.expect_ok(&auth).await?;
        }
        if settings.db() != 0 {
            conn.expect_ok(redis::cmd("SELECT").arg(settings.db()))
                .await?;
        }
        Ok(conn)
    }

    /// Sends `cmd`; a server error reply is an error, any other reply is
    /// taken as success.
    async fn expect_ok(&mut self, cmd: &redis::Cmd) -> Result<(), RedisError> {
        let reply = self.request(&cmd.get_packed_command()).await?;
        match server_error(&reply) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Sends one packed command and returns its whole reply, as one buffer.
    ///
    /// Not cancel-safe: a request dropped half-way leaves the connection
    /// out of step with its replies; drop the connection with it.
    pub(crate) async fn request(&mut self, packed: &[u8]) -> Result<Bytes, RedisError> {
        self.io.write_all(packed).await?;
        self.io.flush().await?;
        loop {
            if let Some(len) = self
                .framer
                .frame(&self.buf)
                .map_err(|bad| malformed_error(&bad))?
            {
                self.last_reply = len;
                return Ok(self.buf.split_to(len).freeze());
            }
            self.buf.reserve(READ_CHUNK.max(self.last_reply + 1024));
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Err(RedisError::from(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
        }
    }
}

/// A reply that is not RESP2, as an I/O error (the connection is dropped).
fn malformed_error(bad: &Malformed) -> RedisError {
    RedisError::from(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a RESP2 reply: {}", bad.0),
    ))
}

/// The error of an error reply (`-CODE message`), as the `redis` crate makes
/// it; `None` for any other reply.
pub(crate) fn server_error(reply: &[u8]) -> Option<RedisError> {
    if reply.first() != Some(&b'-') {
        return None;
    }
    match redis::parse_redis_value(reply) {
        Ok(value) => value.extract_error().err(),
        Err(err) => Some(err),
    }
}

/// Finds where one RESP2 reply ends, resumably: call [`frame`](Self::frame)
/// again with the same buffer, grown, until it answers.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    /// Where the next element starts: everything before is checked.
    pos: usize,
    /// For each array being read, how many of its elements are still to come.
    open: Vec<u64>,
}

/// The longest header line accepted (`*`, `$`, `:` lines are short; a
/// `+`/`-` line is a status or an error message).
const MAX_LINE: usize = 64 * 1024;

impl Framer {
    /// `Some(len)` once `buf[..len]` holds one whole reply (the framer is
    /// then reset for the next); `None` while more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`Malformed`] if the bytes are not RESP2.
    pub(crate) fn frame(&mut self, buf: &[u8]) -> Result<Option<usize>, Malformed> {
        loop {
            let start = self.pos;
            let Some(&kind) = buf.get(start) else {
                return Ok(None);
            };
            let Some((line, after)) = line(buf, start + 1)? else {
                return Ok(None);
            };
            match kind {
                b'*' => {
                    let n = int(line)?;
                    self.pos = after;
                    if n > 0 {
                        self.open.push(n as u64);
                        continue;
                    }
                }
                b'$' => {
                    let n = int(line)?;
                    if n < 0 {
                        self.pos = after;
                    } else {
                        let end = (after as u64)
                            .checked_add(n as u64 + 2)
                            .ok_or_else(|| Malformed("a bulk string is too long".into()))?;
                        if (buf.len() as u64) < end {
                            return Ok(None);
                        }
                        let end = end as usize;
                        if &buf[end - 2..end] != b"\r\n" {
                            return Err(Malformed("a bulk string does not end in CRLF".into()));
                        }
                        self.pos = end;
                    }
                }
                b'+' | b'-' | b':' => self.pos = after,
                other => {
                    return Err(Malformed(format!(
                        "unknown RESP2 type byte {:?}",
                        char::from(other)
                    )));
                }
            }
            // One element is complete: count it in the arrays it closes.
            loop {
                match self.open.last_mut() {
                    None => {
                        let len = self.pos;
                        self.pos = 0;
                        return Ok(Some(len));
                    }
                    Some(left) => {
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                        self.open.pop();
                    }
                }
            }
        }
    }
}

/// The header line starting at `from` (without its CRLF) and where the next
/// element starts; `None` if the CRLF has not arrived yet.
fn line(buf: &[u8], from: usize) -> Result<Option<(&[u8], usize)>, Malformed> {
    let rest = buf.get(from..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\n') {
        Some(nl) if nl >= 1 && rest[nl - 1] == b'\r' => Ok(Some((&rest[..nl - 1], from + nl + 1))),
        Some(_) => Err(Malformed("a line does not end in CRLF".into())),
        None if rest.len() > MAX_LINE => Err(Malformed("a header line is too long".into())),
        None => Ok(None),
    }
}

fn int(line: &[u8]) -> Result<i64, Malformed> {
    // The fast path: a length or count of up to 18 digits (every one Redis
    // sends), without UTF-8 checks.
    let (negative, digits) = match line.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, line),
    };
    if !digits.is_empty() && digits.len() <= 18 {
        let mut n = 0_i64;
        let mut all_digits = true;
        for &d in digits {
            let digit = d.wrapping_sub(b'0');
            all_digits &= digit < 10;
            n = n.wrapping_mul(10).wrapping_add(i64::from(digit));
        }
        if all_digits {
            return Ok(if negative { -n } else { n });
        }
    }
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Malformed(format!(
                "{:?} is not a length",
                String::from_utf8_lossy(line)
            ))
        })
}

/// One element of a framed reply.
#[derive(Debug)]
enum Item {
    /// An array of this many elements (`None`: the null array).
    Array(Option<usize>),
    /// A bulk string at this range (`None`: the null bulk string).
    Bulk(Option<Range<usize>>),
    /// A status (`+`), an integer (`:`) — text, at this range.
    Line(Range<usize>),
    /// An error reply.
    Error,
}

/// Reads the elements of one framed reply in order.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Result<Item, Malformed> {
        let start = self.pos;
        let kind = *self
            .buf
            .get(start)
            .ok_or_else(|| Malformed("the reply ends early".into()))?;
        let (text, after) =
            line(self.buf, start + 1)?.ok_or_else(|| Malformed("the reply ends early".into()))?;
        let text_range = start + 1..start + 1 + text.len();
        self.pos = after;
        Ok(match kind {
            b'*' => {
                let n = int(text)?;
                Item::Array((n >= 0).then_some(n as usize))
            }
            b'$' => {
                let n = int(text)?;
                if n < 0 {
                    Item::Bulk(None)
                } else {
                    let end = after.saturating_add(n as usize);
                    if end.saturating_add(2) > self.buf.len() {
                        return Err(Malformed("the reply ends early".into()));
                    }
                    self.pos = end + 2;
                    Item::Bulk(Some(after..end))
                }
            }
            b'+' | b':' => Item::Line(text_range),
            b'-' => Item::Error,
            other => {
                return Err(Malformed(format!(
                    "unknown RESP2 type byte {:?}",
                    char::from(other)
                )));
            }
        })
    }

    /// Skips the rest of an element whose header `item` was just read.
    fn skip(&mut self, item: &Item) -> Result<(), Malformed> {
        if let Item::Array(Some(n)) = item {
            for _ in 0..*n {
                let inner = self.next()?;
                self.skip(&inner)?;
            }
        }
        Ok(())
    }

    fn array(&mut self, what: &str) -> Result<Option<usize>, Malformed> {
        match self.next()? {
            Item::Array(n) => Ok(n),
            other => Err(Malformed(format!("{what} is not an array: {other:?}"))),
        }
    }

    /// A string element (bulk or status), as a range.
    fn text(&mut self, what: &str) -> Result<Range<usize>, Malformed> {
        match self.next()? {
            Item::Bulk(Some(range)) | Item::Line(range) => Ok(range),
            other => Err(Malformed(format!("{what} is not a string: {other:?}"))),
        }
    }
}

/// What an `XREADGROUP` reply holds.
#[derive(Debug)]
pub(crate) enum ReadReply {
    /// The entries read (none: the block time ran out).
    Entries(Vec<Entry>),
    /// An error reply.
    Error(RedisError),
}

/// Parses a framed `XREADGROUP` reply (RESP2): the null array (nothing
/// read), an error, or `[[stream, [[id, [name, value, …] or nil]…]]…]`.
///
/// A wrong *structure* is [`Malformed`]; an entry whose fields cannot be
/// read (an odd number of items, a name that is not UTF-8, an item that is
/// not a string) is [`Content::Unreadable`], and one deleted while pending
/// (nil fields) [`Content::Deleted`], without failing its neighbours.
pub(crate) fn read_reply(reply: &Bytes) -> Result<ReadReply, Malformed> {
    if let Some(err) = server_error(reply) {
        return Ok(ReadReply::Error(err));
    }
    let mut cursor = Cursor { buf: reply, pos: 0 };
    let mut out = Vec::new();
    let streams = match cursor.next()? {
        Item::Array(None) | Item::Bulk(None) => return Ok(ReadReply::Entries(out)),
        Item::Array(Some(n)) => n,
        other => return Err(Malformed(format!("not an array: {other:?}"))),
    };
    for _ in 0..streams {
        if cursor.array("a stream of the reply")? != Some(2) {
            return Err(Malformed(
                "a stream of the reply is not [name, entries]".into(),
            ));
        }
        cursor.text("a stream name")?;
        let Some(entries) = cursor.array("the entry list")? else {
            continue;
        };
        out.reserve(entries);
        for _ in 0..entries {
            out.push(entry(&mut cursor, reply)?);
        }
    }
    if cursor.pos != reply.len() {
        return Err(Malformed("bytes after the reply".into()));
    }
    Ok(ReadReply::Entries(out))
}

/// One `[id, fields]` entry.
fn entry(cursor: &mut Cursor<'_>, reply: &Bytes) -> Result<Entry, Malformed> {
    if cursor.array("an entry")? != Some(2) {
        return Err(Malformed("an entry is not [id, fields]".into()));
    }
    let id = cursor.text("an entry id")?;
    let id = std::str::from_utf8(&reply[id])
        .map_err(|_| Malformed("an entry id is not UTF-8".into()))?
        .to_owned();
    let items = match cursor.next()? {
        Item::Array(Some(n)) => n,
        Item::Array(None) | Item::Bulk(None) => {
            return Ok(Entry {
                id,
                content: Content::Deleted,
            });
        }
        other => {
            cursor.skip(&other)?;
            return Ok(Entry {
                id,
                content: Content::Unreadable {
                    raw: Vec::new(),
                    reason: format!("its field list is not an array: {other:?}"),
                },
            });
        }
    };
    let start = cursor.pos;
    // Up to four fields without an allocation.
    let mut ranges: smallvec::SmallVec<[Option<Range<usize>>; 8]> =
        smallvec::SmallVec::with_capacity(items);
    for _ in 0..items {
        let item = cursor.next()?;
        match item {
            Item::Bulk(Some(range)) | Item::Line(range) => ranges.push(Some(range)),
            other => {
                cursor.skip(&other)?;
                ranges.push(None);
            }
        }
    }
    let end = cursor.pos;
    Ok(Entry {
        id,
        content: fields(reply, start..end, &ranges),
    })
}

/// The content of an entry whose field items are at `ranges` (`None`: an
/// item that is not a string) within `entry` of `reply`.
fn fields(reply: &Bytes, entry: Range<usize>, ranges: &[Option<Range<usize>>]) -> Content {
    let unreadable = |reason: String| Content::Unreadable {
        raw: ranges
            .chunks(2)
            .map(|pair| {
                let item = |r: Option<&Option<Range<usize>>>| match r {
                    Some(Some(range)) => reply[range.clone()].to_vec(),
                    Some(None) => b"(not a string)".to_vec(),
                    None => Vec::new(),
                };
                (item(pair.first()), item(pair.get(1)))
            })
            .collect(),
        reason,
    };
    if !ranges.len().is_multiple_of(2) {
        return unreadable(format!(
            "it has an odd number of field items ({}): a field without a value",
            ranges.len()
        ));
    }
    let mut spans = SpanList::with_capacity(ranges.len() / 2);
    for (index, pair) in ranges.chunks(2).enumerate() {
        let (Some(name), value) = (&pair[0], &pair[1]) else {
            return unreadable(format!("the name of field {index} is not a string"));
        };
        let Ok(text) = std::str::from_utf8(&reply[name.clone()]) else {
            return unreadable(format!(
                "the name of field {index} is not UTF-8 ({:?})",
                String::from_utf8_lossy(&reply[name.clone()])
            ));
        };
        let Some(value) = value else {
            return unreadable(format!("the value of field {text:?} is not a string"));
        };
        let at = entry.start;
        let Some(span) = Span::new(
            name.start - at..name.end - at,
            value.start - at..value.end - at,
        ) else {
            return unreadable("the entry is larger than 4 GiB".to_owned());
        };
        spans.push(span);
    }
    Content::Fields(Fields::from_parts(reply.slice(entry), spans))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(bytes: &[u8]) -> Result<Option<usize>, Malformed> {
        Framer::default().frame(bytes)
    }

    /// An `XREADGROUP` reply for stream `s` holding `entries`.
    fn reply(entries: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*1\r\n*2\r\n$1\r\ns\r\n*{}\r\n", entries.len()).into_bytes();
        for entry in entries {
            out.extend_from_slice(entry);
        }
        out
    }

    fn bulk(s: &[u8]) -> Vec<u8> {
        let mut out = format!("${}\r\n", s.len()).into_bytes();
        out.extend_from_slice(s);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn entry(id: &str, items: &[&[u8]]) -> Vec<u8> {
        let mut out = b"*2\r\n".to_vec();
        out.extend(bulk(id.as_bytes()));
        out.extend(format!("*{}\r\n", items.len()).into_bytes());
        for item in items {
            out.extend(bulk(item));
        }
        out
    }

    fn entries(bytes: Vec<u8>) -> Vec<Entry> {
        assert_eq!(frame_all(&bytes).unwrap(), Some(bytes.len()));
        match read_reply(&Bytes::from(bytes)).unwrap() {
            ReadReply::Entries(entries) => entries,
            ReadReply::Error(err) => panic!("{err}"),
        }
    }

    #[test]
    fn the_framer_finds_the_end_of_a_reply_fed_byte_by_byte() {
        let bytes = reply(&[
            &entry("1-0", &[b"seq", b"5", b"body", b"a\r\nb"]),
            b"*2\r\n$3\r\n2-0\r\n*-1\r\n",
        ]);
        let mut framer = Framer::default();
        for end in 0..bytes.len() {
            assert_eq!(framer.frame(&bytes[..end]).unwrap(), None, "at {end}");
        }
        assert_eq!(framer.frame(&bytes).unwrap(), Some(bytes.len()));
        // Reset: the next reply is framed from the start.
        assert_eq!(framer.frame(b"*-1\r\n").unwrap(), Some(5));
        // Replies that are one element.
        for one in [
            &b"+OK\r\n"[..],
            b"-ERR no\r\n",
            b":12\r\n",
            b"$-1\r\n",
            b"*0\r\n",
            b"$0\r\n\r\n",
        ] {
            assert_eq!(frame_all(one).unwrap(), Some(one.len()), "{one:?}");
        }
        // What follows a reply is not part of it.
        assert_eq!(frame_all(b"+OK\r\n+OK\r\n").unwrap(), Some(5));
    }

    #[test]
    fn lengths_parse_fast_or_slow_and_garbage_is_refused() {
        assert_eq!(int(b"0").unwrap(), 0);
        assert_eq!(int(b"-1").unwrap(), -1);
        assert_eq!(int(b"123456789012345678").unwrap(), 123_456_789_012_345_678);
        // 19 digits: the slow path.
        assert_eq!(
            int(b"1234567890123456789").unwrap(),
            1_234_567_890_123_456_789
        );
        assert_eq!(int(b"+5").unwrap(), 5);
        for bad in [
            &b""[..],
            b"-",
            b"1x",
            b" 1",
            b"99999999999999999999",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            assert!(int(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_framer_refuses_what_is_not_resp2() {
        for bad in [
            &b"%1\r\n"[..],
            b"*x\r\n",
            b"$3\r\nabcde",
            b"+OK\n",
            b"$-\r\n",
        ] {
            assert!(frame_all(bad).is_err(), "{bad:?}");
        }
        let long = vec![b'+'; MAX_LINE + 10];
        assert!(frame_all(&long).is_err());
    }

    #[test]
    fn entries_parse_into_fields_over_the_reply() {
        let got = entries(reply(&[
            &entry("1-0", &[b"seq", b"5", b"body", b"\xff\r\n"]),
            &entry("2-0", &[]),
        ]));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, "1-0");
        let Content::Fields(fields) = &got[0].content else {
            panic!("{:?}", got[0].content)
        };
        assert_eq!(fields.get("seq"), Some(&b"5"[..]));
        assert_eq!(fields.get("body"), Some(&b"\xff\r\n"[..]), "any bytes");
        assert_eq!(got[1].content, Content::Fields(Fields::new()));
    }

    #[test]
    fn a_bad_entry_does_not_fail_its_neighbours() {
        let got = entries(reply(&[
            &entry("1-0", &[b"a", b"1"]),
            &entry("2-0", &[b"\xff\xfe", b"x", b"seq", b"5"]),
            &entry("3-0", &[b"a", b"1", b"dangling"]),
            b"*2\r\n$3\r\n4-0\r\n*-1\r\n",
            b"*2\r\n$3\r\n5-0\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"*2\r\n$3\r\n6-0\r\n*2\r\n+st\r\n:7\r\n",
            &entry("7-0", &[b"a", b"2"]),
        ]));
        let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["1-0", "2-0", "3-0", "4-0", "5-0", "6-0", "7-0"]);
        assert!(matches!(got[0].content, Content::Fields(_)));
        match &got[1].content {
            Content::Unreadable { raw, reason } => {
                assert!(reason.contains("not UTF-8"), "{reason}");
                assert_eq!(
                    raw,
                    &[
                        (b"\xff\xfe".to_vec(), b"x".to_vec()),
                        (b"seq".to_vec(), b"5".to_vec())
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        match &got[2].content {
            Content::Unreadable { raw, reason } => {
                assert!(reason.contains("odd number"), "{reason}");
                assert_eq!(raw[1], (b"dangling".to_vec(), Vec::new()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(got[3].content, Content::Deleted);
        match &got[4].content {
            Content::Unreadable { reason, .. } => {
                assert!(reason.contains("not a string"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Status and integer items are text, as the redis crate reads them.
        assert_eq!(got[5].content, Content::Fields(Fields::from([("st", "7")])));
        assert!(matches!(got[6].content, Content::Fields(_)));
    }

    #[test]
    fn nothing_read_is_the_null_array_and_errors_are_redis_errors() {
        assert!(entries(b"*-1\r\n".to_vec()).is_empty());
        let err = match read_reply(&Bytes::from_static(
            b"-NOGROUP No such key 's' or consumer group 'g'\r\n",
        ))
        .unwrap()
        {
            ReadReply::Error(err) => err,
            other => panic!("{other:?}"),
        };
        assert_eq!(err.code(), Some("NOGROUP"));
        let loading = server_error(b"-LOADING Redis is loading\r\n").unwrap();
        assert!(crate::error::is_transient(&loading));
    }

    #[test]
    fn a_malformed_reply_is_an_error() {
        for bad in [
            &b":3\r\n"[..],
            b"*1\r\n:1\r\n",
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$-1\r\n$-1\r\n",
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*3\r\n$1\r\na\r\n*0\r\n*0\r\n",
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$2\r\n\xff\xff\r\n*0\r\n",
        ] {
            assert!(read_reply(&Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
    }
}
