//! State shared by the reader, the lease renewer, the deliveries and the
//! acker: which deliveries are held, the claim guard, the counters, and the
//! Lua scripts.

use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use flowgate::resilience::{Backoff, Jitter, Retry};
use redis::aio::ConnectionManager;
use redis::{RedisError, Script};

use crate::error::{SourceError, Target, is_transient};
use crate::source::SourceStats;

/// Renews the leases of the ids given that are still pending with this
/// consumer (`XCLAIM … JUSTID`: the idle time is reset, the delivery counter
/// is not incremented); returns the ids that are pending with another
/// consumer (taken over: those leases are lost).
///
/// `KEYS[1]` stream; `ARGV[1]` group, `ARGV[2]` consumer, `ARGV[3..]` ids.
pub(crate) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)[1]
  if row then
    if row[2] == ARGV[2] then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
    else
      lost[#lost + 1] = id
    end
  end
end
return lost
",
    )
});

/// Takes over the ids given that are still pending and idle for at least
/// `ARGV[3]` ms (so a lease renewed since they were listed is respected):
/// `XCLAIM … JUSTID` moves them to this consumer without counting a
/// delivery (the take script counts it when it reads them). An id whose
/// entry was deleted from the stream is removed from the pending list
/// instead. Returns `[claimed ids, deleted ids]`.
///
/// `KEYS[1]` stream; `ARGV[1]` group, `ARGV[2]` consumer, `ARGV[3]` the
/// minimum idle time in ms, `ARGV[4..]` ids.
pub(crate) static TAKEOVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local claimed, deleted = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], id, id, 1)[1]
  if row then
    if #redis.call('XRANGE', KEYS[1], id, id) == 0 then
      redis.call('XACK', KEYS[1], ARGV[1], id)
      deleted[#deleted + 1] = id
    else
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], id, 'JUSTID')
      claimed[#claimed + 1] = id
    end
  end
end
return {claimed, deleted}
",
    )
});

/// The client name a consumer gives its command connection while it runs
/// (`CLIENT SETNAME`), so that other consumers can see that it is alive:
/// `flowgate:` and the hex of the stream, group and consumer names (client
/// names may not hold spaces).
pub(crate) fn presence_name(stream: &str, group: &str, consumer: &str) -> String {
    let hex = |name: &str| -> String { name.bytes().map(|b| format!("{b:02x}")).collect() };
    format!("flowgate:{}:{}:{}", hex(stream), hex(group), hex(consumer))
}

/// Takes the content of the ids given that are pending with this consumer,
/// counting a delivery (`XCLAIM` without `JUSTID`); returns
/// `[id, deliveries, fields]` for each, with `fields` nil when the entry was
/// deleted from the stream. Ids pending with another consumer (or no more)
/// are left out.
///
/// `KEYS[1]` stream; `ARGV[1]` group, `ARGV[2]` consumer, `ARGV[3..]` ids.
pub(crate) static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)[1]
  if row and row[2] == ARGV[2] then
    local entry = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id)[1]
    if entry then
      out[#out + 1] = {id, row[4] + 1, entry[2]}
    else
      out[#out + 1] = {id, row[4], false}
    end
  end
end
return out
",
    )
});

/// Adds a dead-letter entry and acks the original, atomically; the `XACK`
/// runs only if the `XADD` succeeded. With `ARGV[3] == '1'`, does nothing
/// (returns 0) when the original is no longer pending (someone acked it).
///
/// `KEYS[1]` stream, `KEYS[2]` dead-letter stream; `ARGV[1]` group,
/// `ARGV[2]` id, `ARGV[3]` `'1'` or `'0'`, `ARGV[4..]` the fields.
pub(crate) static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[3] == '1' then
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)[1]
  if not row then return 0 end
end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
",
    )
});

/// Above this many field items, a dead letter is written with `MULTI`
/// instead of the script (Lua's `unpack` is limited to about 8000 values).
const MAX_SCRIPT_ITEMS: usize = 7000;

/// How many ids one renewal or take script call handles.
pub(crate) const SCRIPT_CHUNK: usize = 500;

/// The field names the dead-letter entries add.
pub(crate) const ORIGINAL_ID: &str = "flowgate-original-id";
pub(crate) const DELIVERIES: &str = "flowgate-deliveries";
pub(crate) const REASON: &str = "flowgate-reason";

/// A stream entry id as a hash key, without a heap allocation: Redis ids
/// are two `u64`s (`ms-seq`, at most 41 bytes), kept inline; anything longer
/// (never sent by Redis) is boxed. Compared byte for byte.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Boxed(Box<str>),
}

const INLINE: usize = 46;

impl Key {
    pub(crate) fn new(id: &str) -> Self {
        if id.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..id.len()].copy_from_slice(id.as_bytes());
            Key::Inline {
                len: id.len() as u8,
                bytes,
            }
        } else {
            Key::Boxed(id.into())
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Always the bytes of a `&str`, cut at its end: valid UTF-8.
            Key::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            Key::Boxed(id) => id,
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// The deliveries this consumer holds, and the claim guard.
#[derive(Debug, Default)]
struct Holds {
    /// Held ids → whether the lease is still ours (false once another
    /// consumer was seen owning it).
    held: FastMap<Key, bool>,
    /// A claim (or recovery read) is in progress.
    claiming: bool,
    /// Ids released (acked, dead-lettered or dropped) while `claiming`.
    released_during_claim: FastSet<Key>,
}

/// State shared by the reader, the renewer, the deliveries and the acker.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) target: Target,
    holds: Mutex<Holds>,
    stats: Mutex<SourceStats>,
}

impl Shared {
    pub(crate) fn new(target: Target) -> Self {
        Shared {
            target,
            holds: Mutex::default(),
            stats: Mutex::default(),
        }
    }

    fn holds(&self) -> MutexGuard<'_, Holds> {
        self.holds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> MutexGuard<'_, SourceStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `id` as handed out; false if it already is.
    #[cfg(test)]
    pub(crate) fn hold(&self, id: &str) -> bool {
        self.hold_all(vec![id], |id| id)
            .pop()
            .is_some_and(|(_, key)| key.is_some())
    }

    /// Marks the ids of `items` as handed out, in one critical section;
    /// returns each item with its key, `None` for an id that is held already
    /// (or repeats in `items`).
    pub(crate) fn hold_all<T>(
        &self,
        items: Vec<T>,
        id: impl Fn(&T) -> &str,
    ) -> Vec<(T, Option<Key>)> {
        let mut holds = self.holds();
        holds.held.reserve(items.len());
        items
            .into_iter()
            .map(|item| {
                let key = Key::new(id(&item));
                let new = match holds.held.entry(key.clone()) {
                    std::collections::hash_map::Entry::Occupied(_) => None,
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(true);
                        Some(key)
                    }
                };
                (item, new)
            })
            .collect()
    }

    /// `id` is no longer handed out (acked, dead-lettered or dropped).
    pub(crate) fn release(&self, id: &Key) {
        let mut holds = self.holds();
        holds.held.remove(id);
        if holds.claiming {
            holds.released_during_claim.insert(id.clone());
        }
    }

    /// `ids` are no longer handed out, in one critical section.
    pub(crate) fn release_all<'a>(&self, ids: impl Iterator<Item = &'a Key>) {
        let mut holds = self.holds();
        let claiming = holds.claiming;
        for id in ids {
            holds.held.remove(id);
            if claiming {
                holds.released_during_claim.insert(id.clone());
            }
        }
    }

    /// `ids` were acked (their `XACK` was answered), whether or not they
    /// were held.
    pub(crate) fn acked(&self, ids: &[String]) {
        let mut holds = self.holds();
        if holds.claiming {
            holds
                .released_during_claim
                .extend(ids.iter().map(|id| Key::new(id)));
        }
    }

    /// Starts a claim or a recovery read: from now until the guard's
    /// [`keep`](ClaimGuard::keep), every id released is remembered, so the
    /// reply can be filtered exactly.
    pub(crate) fn begin_claim(&self) -> ClaimGuard<'_> {
        let mut holds = self.holds();
        holds.claiming = true;
        holds.released_during_claim.clear();
        ClaimGuard { shared: self }
    }

    /// The ids whose leases are to be renewed.
    pub(crate) fn leased(&self) -> Vec<String> {
        self.holds()
            .held
            .iter()
            .filter(|(_, ours)| **ours)
            .map(|(id, _)| id.as_str().to_owned())
            .collect()
    }

    /// Marks the leases of `ids` as lost (another consumer owns them);
    /// returns how many of them were held.
    pub(crate) fn lost(&self, ids: &[String]) -> u64 {
        let mut holds = self.holds();
        let mut lost = 0;
        for id in ids {
            if let Some(ours) = holds.held.get_mut(&Key::new(id))
                && *ours
            {
                *ours = false;
                lost += 1;
            }
        }
        lost
    }

    /// How many deliveries are held.
    pub(crate) fn held(&self) -> usize {
        self.holds().held.len()
    }
}

/// A claim or recovery read in progress; see [`Shared::begin_claim`].
#[derive(Debug)]
pub(crate) struct ClaimGuard<'a> {
    shared: &'a Shared,
}

impl ClaimGuard<'_> {
    /// Ends the claim: keeps the items whose id is neither held nor was
    /// released since the claim began. Those were sent to Redis before the
    /// claim or are still held: handing them out again would deliver a
    /// message this consumer holds or has just acked.
    pub(crate) fn keep<T>(self, items: Vec<T>, id: impl Fn(&T) -> &str) -> (Vec<T>, usize) {
        let holds = self.shared.holds();
        let before = items.len();
        let kept: Vec<T> = items
            .into_iter()
            .filter(|item| {
                let id = Key::new(id(item));
                !holds.held.contains_key(&id) && !holds.released_during_claim.contains(&id)
            })
            .collect();
        let skipped = before - kept.len();
        drop(holds);
        (kept, skipped)
    }
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        let mut holds = self.shared.holds();
        holds.claiming = false;
        holds.released_during_claim.clear();
    }
}

/// The retry policy of acks and dead letters: 50 ms doubling to 2 s, within
/// `budget`, for transient errors; each retry is logged.
pub(crate) fn retry_policy(
    target: &Target,
    what: &'static str,
    budget: Duration,
) -> Retry<RedisError> {
    let stream = target.stream.clone();
    let server = target.server.clone();
    Retry::new(
        Backoff::exponential(Duration::from_millis(50))
            .max_delay(Duration::from_secs(2))
            .jitter(Jitter::Equal),
    )
    .max_attempts(u32::MAX)
    .budget(budget)
    .when(is_transient)
    .on_retry(move |err, attempt, delay| {
        tracing::warn!(
            error = %err, attempt, ?delay, stream = %stream, server = %server,
            "{what} failed; retrying"
        );
    })
}

/// A dead-letter entry to write.
#[derive(Debug)]
pub(crate) struct DeadLetter<'a> {
    /// The original entry id.
    pub(crate) id: &'a str,
    /// The original fields, as raw bytes.
    pub(crate) fields: &'a [(Vec<u8>, Vec<u8>)],
    /// How many times the original was delivered.
    pub(crate) deliveries: u64,
    /// Why it is dead-lettered.
    pub(crate) reason: &'a str,
    /// Write nothing if the original is no longer pending.
    pub(crate) if_pending: bool,
}

/// Writes a dead-letter entry (the original fields, then
/// `flowgate-original-id`, `flowgate-deliveries`, `flowgate-reason`) and acks
/// the original, atomically. With `if_pending`, does nothing when the
/// original is no longer pending (returns false).
async fn write_dead_letter(
    conn: &mut ConnectionManager,
    target: &Target,
    letter: &DeadLetter<'_>,
) -> Result<bool, RedisError> {
    let mut items: Vec<Vec<u8>> = Vec::with_capacity(letter.fields.len() * 2 + 6);
    for (name, value) in letter.fields {
        items.push(name.clone());
        items.push(value.clone());
    }
    items.extend([
        ORIGINAL_ID.as_bytes().to_vec(),
        letter.id.as_bytes().to_vec(),
        DELIVERIES.as_bytes().to_vec(),
        letter.deliveries.to_string().into_bytes(),
        REASON.as_bytes().to_vec(),
        letter.reason.as_bytes().to_vec(),
    ]);
    if items.len() <= MAX_SCRIPT_ITEMS {
        let mut call = DEAD_LETTER.key(&target.stream);
        call.key(&target.dead_letter)
            .arg(&target.group)
            .arg(letter.id)
            .arg(if letter.if_pending { "1" } else { "0" });
        for item in &items {
            call.arg(item.as_slice());
        }
        let written: i64 = call.invoke_async(conn).await?;
        Ok(written == 1)
    } else {
        let mut add = redis::cmd("XADD");
        add.arg(&target.dead_letter).arg("*");
        for item in &items {
            add.arg(item.as_slice());
        }
        redis::pipe()
            .atomic()
            .add_command(add)
            .ignore()
            .cmd("XACK")
            .arg(&target.stream)
            .arg(&target.group)
            .arg(letter.id)
            .ignore()
            .query_async::<()>(conn)
            .await?;
        Ok(true)
    }
}

/// Writes `letter` (see [`DeadLetter`]), retrying transient errors with
/// `retry`; true if it was written, false if the original was no longer
/// pending.
pub(crate) async fn dead_letter(
    conn: &ConnectionManager,
    retry: &Retry<RedisError>,
    target: &Target,
    letter: &DeadLetter<'_>,
) -> Result<bool, SourceError> {
    retry
        .run(|| {
            let mut conn = conn.clone();
            async move { write_dead_letter(&mut conn, target, letter).await }
        })
        .await
        .map_err(|err| target.error("XADD+XACK (dead letter)", err.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared::new(Target {
            server: "127.0.0.1:6379/0".into(),
            stream: "s".into(),
            group: "g".into(),
            consumer: "c".into(),
            dead_letter: "s:dead".into(),
        })
    }

    fn ids(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_claim_reply_never_hands_out_what_is_held_or_was_released_meanwhile() {
        let shared = shared();
        assert!(shared.hold("1-0"));
        assert!(shared.hold("2-0"));
        assert!(shared.hold("4-0"));
        assert!(!shared.hold("1-0"), "held once");
        shared.release(&Key::new("2-0")); // acked before the claim was sent: not remembered
        let claim = shared.begin_claim();
        // While the takeover is on its way, the XACK of 4-0 is answered (it
        // ran after the claim in Redis, so the reply may still carry 4-0).
        shared.release(&Key::new("4-0"));
        shared.acked(&ids(&["5-0"])); // a raw Acker::ack answered meanwhile
        let (kept, skipped) = claim.keep(ids(&["1-0", "2-0", "3-0", "4-0", "5-0"]), |s| s);
        assert_eq!(kept, ids(&["2-0", "3-0"]));
        assert_eq!(skipped, 3);
        // After the claim, releases are forgotten again.
        shared.release(&Key::new("1-0"));
        let claim = shared.begin_claim();
        let (kept, _) = claim.keep(ids(&["1-0", "4-0"]), |s| s);
        assert_eq!(kept, ids(&["1-0", "4-0"]));
    }

    #[test]
    fn lost_leases_are_not_renewed_and_counted_once() {
        let shared = shared();
        shared.hold("1-0");
        shared.hold("2-0");
        assert_eq!(shared.lost(&ids(&["1-0", "9-0"])), 1);
        assert_eq!(shared.lost(&ids(&["1-0"])), 0);
        assert_eq!(shared.leased(), ids(&["2-0"]));
        let long = "9".repeat(60);
        assert!(
            shared.hold(&long),
            "an id too long for inline keys is held too"
        );
        assert!(!shared.hold(&long));
        assert_eq!(Key::new(&long).as_str(), long);
        shared.release_all([Key::new(&long), Key::new("2-0")].iter());
        assert_eq!(shared.held(), 1);
        assert!(shared.hold("2-0"));
        assert_eq!(shared.held(), 2);
        shared.release(&Key::new("1-0"));
        assert_eq!(shared.held(), 1);
    }
}
