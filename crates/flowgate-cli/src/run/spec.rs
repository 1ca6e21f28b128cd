//! The value parsers of `flowgate run`'s flags, usable by clap
//! (`value_parser = parse_rate`) and from code.
//!
//! Each refuses what cannot work (a zero rate, an inverted range, NaN, an
//! unknown unit) with a [`SpecError`] that states the rule and shows a valid
//! example naming the flag; clap puts it after "invalid value 'X' for
//! '--flag'".
//!
//! | flag | forms |
//! |---|---|
//! | `--timeout`, durations | `100ms`, `30s`, `2m`, `1h`, `1.5s`, `1m30s`, `30` (seconds); units `ns us ms s m h d` |
//! | `--rate` | `COUNT/PERIOD`: `10/s`, `600/m`, `5/500ms`, `1/1h` |
//! | `--backoff` | `exp:MIN..MAX`, `linear:MIN..MAX` (steps of MIN), `const:D` |
//! | `--jitter` | `full`, `equal`, `none` |
//! | `--breaker` | `RATIO%/WINDOW/COOLDOWN`: `50%/20/30s` |
//! | `--halt` | `soon,fail=N`, `soon,fail=P%`, `now,fail=N`, `now,fail=P%` |
//! | `--adaptive` | `MIN..MAX` with `1 <= MIN < MAX`: `2..16` |
//! | `--no-retry-on` | exit codes 1–255, comma-separated: `2,3` |
//! | `--then`, `--on-error` | a command line, split with shell-words rules: `'gzip -c'` |

use std::error::Error;
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use flowgate::limit::Rate;
use flowgate::resilience::{AdaptiveLimit, Backoff, Jitter};

use super::config::{BreakerSpec, Halt, HaltOn, HaltWhen};

/// A flag value that does not parse or breaks a rule: the rule and an
/// example. A usage error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    message: String,
}

impl SpecError {
    fn new(message: impl Into<String>) -> SpecError {
        SpecError {
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for SpecError {}

const DURATION_FORMS: &str = "a number and a unit (ns, us, ms, s, m, h, d), e.g. 100ms, 30s, 2m, 1h, 1m30s; a bare number is seconds";
const RATE_FORMS: &str = "e.g. --rate 10/s, 600/m, 5/500ms, 1/1h";
const BACKOFF_FORMS: &str = "e.g. --backoff exp:100ms..10s, linear:100ms..5s, const:1s";
const BREAKER_FORMS: &str = "RATIO%/WINDOW/COOLDOWN, e.g. --breaker 50%/20/30s (open when 50% of the last 20 jobs failed; pause 30s, then probe)";
const HALT_FORMS: &str =
    "WHEN,fail=N or WHEN,fail=P% with WHEN soon or now, e.g. --halt soon,fail=10%, now,fail=3";
const ADAPTIVE_FORMS: &str = "MIN..MAX with 1 <= MIN < MAX, e.g. --adaptive 2..16";
const EXIT_CODE_FORMS: &str = "exit codes 1 to 255, comma-separated, e.g. --no-retry-on 2,3";

// ===== durations =====

/// A duration above zero: `100ms`, `30s`, `2m`, `1h`, `1.5s`, `1m30s`, or a
/// bare number of seconds (`30`, as GNU parallel's `--timeout`). Units: `ns`,
/// `us` (or `µs`), `ms`, `s`, `m`, `h`, `d`.
///
/// # Errors
///
/// Anything else, zero, or more than 2^64 ns (about 584 years).
pub fn parse_duration(text: &str) -> Result<Duration, SpecError> {
    let d = duration(text).map_err(|why| SpecError::new(format!("{why}; {DURATION_FORMS}")))?;
    if d.is_zero() {
        return Err(SpecError::new(
            "the duration must be above zero, e.g. 100ms, 30s",
        ));
    }
    Ok(d)
}

/// A duration, zero allowed; the error is the rule, for the callers to
/// wrap.
fn duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("`{text}` is not a duration: {why}");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return nanos_of(s, 1_000_000_000)
            .ok_or_else(|| bad("not a number, or too long"))
            .and_then(|n| to_duration(n).ok_or_else(|| bad("too long (at most about 584 years)")));
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_end == 0 {
            return Err(bad("a unit must follow a number"));
        }
        let (number, after) = rest.split_at(number_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "" => return Err(bad("a number without a unit must be alone")),
            other => return Err(bad(&format!("unknown unit `{other}`"))),
        };
        let n = nanos_of(number, unit_nanos)
            .ok_or_else(|| bad(&format!("`{number}` is not a number")))?;
        total = total.saturating_add(n);
        rest = after;
    }
    to_duration(total).ok_or_else(|| bad("too long (at most about 584 years)"))
}

/// `number` (digits, optionally `.` and digits) times `unit` nanoseconds,
/// rounded down to the nanosecond; `None` when it is not such a number.
fn nanos_of(number: &str, unit: u128) -> Option<u128> {
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(whole) || !digits_ok(frac) || number.ends_with('.') {
        return None;
    }
    // Beyond 2^64 ns either part is too long anyway: cap the digits so the
    // arithmetic cannot overflow u128.
    let whole: u128 = if whole.is_empty() {
        0
    } else if whole.len() > 25 {
        u128::MAX / unit
    } else {
        whole.parse().ok()?
    };
    let frac = &frac[..frac.len().min(20)];
    let frac_nanos = if frac.is_empty() {
        0
    } else {
        frac.parse::<u128>().ok()? * unit / 10u128.pow(frac.len() as u32)
    };
    Some(whole.saturating_mul(unit).saturating_add(frac_nanos))
}

fn to_duration(nanos: u128) -> Option<Duration> {
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

// ===== rate =====

/// `--rate COUNT/PERIOD`: `10/s`, `600/m`, `5/500ms`, `1/1h` (a unit alone
/// is one of it). The burst is 1; `--burst` sets another with
/// [`with_burst`].
///
/// # Errors
///
/// A count that is not a whole number of at least 1, a period that is not
/// a duration above zero, or a rate [`Rate::new`] refuses (an interval
/// below 1 ns).
pub fn parse_rate(text: &str) -> Result<Rate, SpecError> {
    let s = text.trim();
    let Some((count, period)) = s.split_once('/') else {
        return Err(SpecError::new(format!(
            "a rate is COUNT/PERIOD; {RATE_FORMS}"
        )));
    };
    let count: u32 = match count.trim().parse::<u64>() {
        Ok(0) => {
            return Err(SpecError::new(format!(
                "the count must be at least 1 (nothing could ever run); {RATE_FORMS}"
            )));
        }
        Ok(n) => u32::try_from(n).map_err(|_| {
            SpecError::new(format!(
                "the count must be at most {}; {RATE_FORMS}",
                u32::MAX
            ))
        })?,
        Err(_) => {
            return Err(SpecError::new(format!(
                "the count must be a whole number of at least 1 (for less than one per unit, use a longer period: 1/2s); {RATE_FORMS}"
            )));
        }
    };
    let period = period.trim();
    // A unit alone is one of it: `s` is `1s`.
    let period_text = if period.starts_with(|c: char| c.is_ascii_alphabetic() || c == 'µ') {
        format!("1{period}")
    } else {
        period.to_owned()
    };
    let period = duration(&period_text).map_err(|why| {
        if period_text.len() > period.len() {
            SpecError::new(format!("the period `{period}` is neither a unit (ns, us, ms, s, m, h, d) nor a duration; {RATE_FORMS}"))
        } else {
            SpecError::new(format!("the period: {why}; {RATE_FORMS}"))
        }
    })?;
    Rate::new(count, period, 1).map_err(|err| SpecError::new(format!("{err}; {RATE_FORMS}")))
}

/// `rate` with `--burst burst`.
///
/// # Errors
///
/// A burst of 0, or one whose `interval × burst` exceeds 2^64 ns.
pub fn with_burst(rate: Rate, burst: u32) -> Result<Rate, SpecError> {
    Rate::new(rate.count(), rate.period(), burst).map_err(|err| {
        SpecError::new(format!(
            "a burst of {burst} at this rate: {err}; e.g. --rate 10/s --burst 5"
        ))
    })
}

/// `--burst N`: a whole number of at least 1.
///
/// # Errors
///
/// Zero, or not a whole number up to `u32::MAX`.
pub fn parse_burst(text: &str) -> Result<u32, SpecError> {
    positive(text, u64::from(u32::MAX), "e.g. --rate 10/s --burst 5")
        .map(|n| u32::try_from(n).expect("at most u32::MAX"))
}

// ===== counts =====

/// `-j N`: a whole number, 1 to [`AdaptiveLimit::MAX`].
///
/// # Errors
///
/// Zero, or not such a number.
pub fn parse_jobs(text: &str) -> Result<usize, SpecError> {
    positive(text, AdaptiveLimit::MAX as u64, "e.g. -j 4")
        .map(|n| usize::try_from(n).expect("at most AdaptiveLimit::MAX"))
}

/// `--retries N`: a whole number, 0 (the default: no retry) to `u32::MAX`.
///
/// # Errors
///
/// Not such a number.
pub fn parse_retries(text: &str) -> Result<u32, SpecError> {
    text.trim().parse::<u32>().map_err(|_| {
        SpecError::new(format!(
            "the number of retries must be a whole number from 0 to {}, e.g. --retries 3",
            u32::MAX
        ))
    })
}

fn positive(text: &str, max: u64, example: &str) -> Result<u64, SpecError> {
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(0) => Err(SpecError::new(format!("must be at least 1, {example}"))),
        _ => Err(SpecError::new(format!(
            "must be a whole number from 1 to {max}, {example}"
        ))),
    }
}

// ===== backoff =====

/// `--backoff`: `exp:MIN..MAX` (MIN, 2×MIN, 4×MIN… capped at MAX),
/// `linear:MIN..MAX` (MIN, 2×MIN, 3×MIN… capped at MAX) or `const:D` (D
/// every time; `const:0s` retries at once). The jitter is none: `--jitter`
/// sets it (`Backoff::jitter`).
///
/// # Errors
///
/// Another form, MIN zero, MIN above MAX, or a duration that does not parse.
pub fn parse_backoff(text: &str) -> Result<Backoff, SpecError> {
    let s = text.trim();
    let bad = |why: &str| SpecError::new(format!("{why}; {BACKOFF_FORMS}"));
    let Some((kind, rest)) = s.split_once(':') else {
        return Err(bad("the form is KIND:DELAYS"));
    };
    match kind {
        "const" | "constant" => {
            let d = duration(rest).map_err(|why| bad(&why))?;
            Ok(Backoff::constant(d))
        }
        "exp" | "exponential" | "linear" => {
            let Some((min, max)) = rest.split_once("..") else {
                return Err(bad(&format!("{kind} takes a range MIN..MAX")));
            };
            let min = duration(min).map_err(|why| bad(&why))?;
            let max = duration(max).map_err(|why| bad(&why))?;
            if min.is_zero() {
                return Err(bad(
                    "MIN must be above zero (every delay would be zero; use const:0s to retry at once)",
                ));
            }
            if min > max {
                return Err(bad("MIN must be at most MAX (the range is inverted)"));
            }
            Ok(if kind == "linear" {
                Backoff::linear(min, min).max_delay(max)
            } else {
                Backoff::exponential(min).max_delay(max)
            })
        }
        other => Err(bad(&format!(
            "unknown kind `{other}` (exp, linear or const)"
        ))),
    }
}

/// `--jitter`: `full` (each delay uniform in [0, d], the default), `equal`
/// ([d/2, d]) or `none`.
///
/// # Errors
///
/// Another word.
pub fn parse_jitter(text: &str) -> Result<Jitter, SpecError> {
    match text.trim() {
        "full" => Ok(Jitter::Full),
        "equal" => Ok(Jitter::Equal),
        "none" => Ok(Jitter::None),
        _ => Err(SpecError::new(
            "the jitter is full, equal or none, e.g. --jitter equal",
        )),
    }
}

// ===== breaker, halt, adaptive, exit codes =====

/// `--breaker RATIO%/WINDOW/COOLDOWN`: `50%/20/30s`.
///
/// # Errors
///
/// Another form, a ratio not above 0% and at most 100% (NaN included), a
/// window of 0 jobs, a cooldown that is zero or does not parse.
pub fn parse_breaker(text: &str) -> Result<BreakerSpec, SpecError> {
    let bad = |why: &str| SpecError::new(format!("{why}; {BREAKER_FORMS}"));
    let parts: Vec<&str> = text.trim().split('/').collect();
    let &[ratio, window, cooldown] = parts.as_slice() else {
        return Err(bad("three parts separated by `/` are needed"));
    };
    let Some(percent) = ratio.trim().strip_suffix('%') else {
        return Err(bad("the ratio is a percentage, e.g. 50%"));
    };
    let percent = percent
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|p| p.is_finite())
        .ok_or_else(|| bad(&format!("`{ratio}` is not a percentage")))?;
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(bad("the ratio must be above 0% and at most 100%"));
    }
    let window = match window.trim().parse::<usize>() {
        Ok(0) => return Err(bad("the window must be at least 1 job")),
        Ok(n) => n,
        Err(_) => {
            return Err(bad(&format!(
                "the window `{window}` must be a whole number of jobs"
            )));
        }
    };
    let cooldown = duration(cooldown).map_err(|why| bad(&format!("the cooldown: {why}")))?;
    if cooldown.is_zero() {
        return Err(bad("the cooldown must be above zero"));
    }
    Ok(BreakerSpec {
        failure_ratio: percent / 100.0,
        window,
        cooldown,
    })
}

/// `--halt WHEN,fail=N` or `WHEN,fail=P%`, WHEN `soon` (start no new job,
/// let the running ones finish) or `now` (kill them).
///
/// # Errors
///
/// Another form (GNU parallel's `success=` and `done=` are not supported), N
/// zero, P not above 0 and at most 100 (NaN included).
pub fn parse_halt(text: &str) -> Result<Halt, SpecError> {
    let bad = |why: &str| SpecError::new(format!("{why}; {HALT_FORMS}"));
    let Some((when, on)) = text.trim().split_once(',') else {
        return Err(bad("WHEN and a condition separated by `,` are needed"));
    };
    let when = match when.trim() {
        "soon" => HaltWhen::Soon,
        "now" => HaltWhen::Now,
        other => return Err(bad(&format!("unknown WHEN `{other}`"))),
    };
    let Some(value) = on.trim().strip_prefix("fail=") else {
        return Err(bad("the condition must be fail=N or fail=P%"));
    };
    let on = if let Some(percent) = value.strip_suffix('%') {
        let p = percent
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite())
            .ok_or_else(|| bad(&format!("`{value}` is not a percentage")))?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(bad("fail=P% must have P above 0 and at most 100"));
        }
        HaltOn::FailurePercent(p)
    } else {
        match value.parse::<u64>() {
            Ok(0) => return Err(bad("fail=N must have N at least 1")),
            Ok(n) => HaltOn::Failures(n),
            Err(_) => return Err(bad(&format!("`{value}` is not a whole number of failures"))),
        }
    };
    Ok(Halt { when, on })
}

/// `--adaptive MIN..MAX`: `2..16`, with `1 <= MIN < MAX <=`
/// [`AdaptiveLimit::MAX`].
///
/// # Errors
///
/// Another form, MIN 0, MIN at or above MAX (use `-j N` for a fixed limit).
pub fn parse_adaptive(text: &str) -> Result<RangeInclusive<usize>, SpecError> {
    let bad = |why: &str| SpecError::new(format!("{why}; {ADAPTIVE_FORMS}"));
    let Some((min, max)) = text.trim().split_once("..") else {
        return Err(bad("a range MIN..MAX is needed"));
    };
    let number = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| bad(&format!("`{s}` is not a whole number")))
    };
    let (min, max) = (number(min)?, number(max)?);
    if min == 0 {
        return Err(bad("MIN must be at least 1 (nothing could ever run)"));
    }
    if min > max {
        return Err(bad("MIN must be below MAX (the range is inverted)"));
    }
    if min == max {
        return Err(bad("MIN must be below MAX (for a fixed limit use -j N)"));
    }
    if max > AdaptiveLimit::MAX {
        return Err(bad(&format!("MAX must be at most {}", AdaptiveLimit::MAX)));
    }
    Ok(min..=max)
}

/// `--no-retry-on 2,3`: exit codes 1 to 255, comma-separated; duplicates
/// are kept once, the order is kept.
///
/// # Errors
///
/// An empty list or item, a code that is not a whole number from 1 to 255
/// (0 is success).
pub fn parse_exit_codes(text: &str) -> Result<Vec<i32>, SpecError> {
    let bad = |why: &str| SpecError::new(format!("{why}; {EXIT_CODE_FORMS}"));
    if text.trim().is_empty() {
        return Err(bad("the list is empty"));
    }
    let mut codes = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad("an exit code is missing between commas"));
        }
        let code = match part.parse::<i32>() {
            Ok(0) => return Err(bad("0 is success, not a failure")),
            Ok(c) if (1..=255).contains(&c) => c,
            _ => return Err(bad(&format!("`{part}` is not an exit code"))),
        };
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

// ===== commands and strings =====

/// `--then` / `--on-error COMMAND`: one string split into an argv with
/// shell-words rules (quotes, backslashes; no expansion): `'gzip -c'`,
/// `"sh -c 'grep x || true'"`.
///
/// # Errors
///
/// An empty command, or an unclosed quote.
pub fn parse_command(text: &str) -> Result<Vec<String>, SpecError> {
    match shlex::split(text) {
        None => Err(SpecError::new(
            "a quote is not closed, e.g. --then 'sh -c \"sort | uniq -c\"'",
        )),
        Some(argv) if argv.is_empty() || argv[0].is_empty() => Err(SpecError::new(
            "the command is empty, e.g. --then 'gzip -c'",
        )),
        Some(argv) => Ok(argv),
    }
}

/// `--key` and `--delimiter`: any string but the empty one.
///
/// # Errors
///
/// The empty string.
pub fn parse_non_empty(text: &str) -> Result<String, SpecError> {
    if text.is_empty() {
        Err(SpecError::new(
            "the value must not be empty, e.g. --key '{1}', --delimiter ,",
        ))
    } else {
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const S: fn(u64) -> Duration = Duration::from_secs;

    #[track_caller]
    fn refused<T: fmt::Debug>(result: Result<T, SpecError>, wants: &[&str]) {
        let err = result.expect_err("refused");
        let message = err.to_string();
        assert!(
            !message.contains("_FORMS}"),
            "an unformatted message: {message:?}"
        );
        for want in wants {
            assert!(
                message.contains(want),
                "{message:?} should contain {want:?}"
            );
        }
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("100ms"), Ok(MS(100)));
        assert_eq!(parse_duration("30s"), Ok(S(30)));
        assert_eq!(parse_duration("2m"), Ok(S(120)));
        assert_eq!(parse_duration("1h"), Ok(S(3600)));
        assert_eq!(parse_duration("1d"), Ok(S(86_400)));
        assert_eq!(parse_duration("5us"), Ok(Duration::from_micros(5)));
        assert_eq!(parse_duration("5µs"), Ok(Duration::from_micros(5)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("1.5s"), Ok(MS(1500)));
        assert_eq!(parse_duration(".5s"), Ok(MS(500)));
        assert_eq!(parse_duration("0.1s"), Ok(MS(100)));
        assert_eq!(parse_duration("1m30s"), Ok(S(90)));
        assert_eq!(parse_duration("1h2m3s4ms"), Ok(S(3723) + MS(4)));
        assert_eq!(parse_duration("30"), Ok(S(30)));
        assert_eq!(parse_duration("2.25"), Ok(MS(2250)));
        assert_eq!(parse_duration(" 10s "), Ok(S(10)));
        // The longest: 2^64 - 1 ns.
        assert_eq!(
            parse_duration("18446744073709551615ns"),
            Ok(Duration::from_nanos(u64::MAX))
        );
    }

    #[test]
    fn bad_durations_are_refused() {
        refused(parse_duration(""), &["empty"]);
        refused(parse_duration("0s"), &["above zero"]);
        refused(parse_duration("0"), &["above zero"]);
        refused(parse_duration("10x"), &["unknown unit `x`", "100ms"]);
        refused(parse_duration("s"), &["a unit must follow a number"]);
        refused(parse_duration("-1s"), &["not a duration"]);
        refused(parse_duration("1.s"), &["not a number"]);
        refused(parse_duration("1..2s"), &["not a number"]);
        refused(parse_duration("NaN"), &["not a duration"]);
        refused(parse_duration("inf"), &["not a duration"]);
        refused(parse_duration("1s2"), &["without a unit"]);
        refused(parse_duration("18446744073709551616ns"), &["too long"]);
        refused(parse_duration("600000d"), &["too long"]);
        refused(
            parse_duration("99999999999999999999999999999999999999h"),
            &["too long"],
        );
    }

    #[test]
    fn rates_in_every_form() {
        let rate = parse_rate("10/s").unwrap();
        assert_eq!((rate.count(), rate.period(), rate.burst()), (10, S(1), 1));
        assert_eq!(parse_rate("600/m").unwrap().interval(), MS(100));
        assert_eq!(parse_rate("5/500ms").unwrap().interval(), MS(100));
        assert_eq!(parse_rate("1/1h").unwrap().interval(), S(3600));
        assert_eq!(parse_rate("1/h").unwrap().interval(), S(3600));
        assert_eq!(parse_rate("3/2s").unwrap().period(), S(2));
        assert_eq!(parse_rate(" 20 / s ").unwrap().interval(), MS(50));
        assert_eq!(parse_rate("4294967295/d").unwrap().count(), u32::MAX);
    }

    #[test]
    fn bad_rates_are_refused() {
        refused(
            parse_rate("0/s"),
            &["count must be at least 1", "--rate 10/s"],
        );
        refused(
            parse_rate("10/x"),
            &["period `x` is neither a unit", "--rate"],
        );
        refused(parse_rate("10/0s"), &["period", "--rate"]);
        refused(parse_rate("10"), &["COUNT/PERIOD", "--rate"]);
        refused(parse_rate("/s"), &["whole number", "--rate"]);
        refused(parse_rate("1.5/s"), &["whole number", "1/2s"]);
        refused(parse_rate("-1/s"), &["whole number"]);
        refused(parse_rate("NaN/s"), &["whole number"]);
        refused(parse_rate("4294967296/s"), &["at most 4294967295"]);
        refused(parse_rate("10/"), &["period", "empty"]);
        refused(parse_rate("2000000000/1s"), &["at least 1 ns"]);
    }

    #[test]
    fn bursts() {
        let rate = with_burst(parse_rate("10/s").unwrap(), 5).unwrap();
        assert_eq!((rate.interval(), rate.burst()), (MS(100), 5));
        assert_eq!(parse_burst("5"), Ok(5));
        assert_eq!(parse_burst("4294967295"), Ok(u32::MAX));
        refused(parse_burst("0"), &["at least 1", "--burst"]);
        refused(parse_burst("4294967296"), &["from 1 to 4294967295"]);
        refused(parse_burst("x"), &["whole number"]);
        refused(
            with_burst(parse_rate("1/d").unwrap(), u32::MAX),
            &["--burst", "2^64"],
        );
    }

    #[test]
    fn jobs_and_retries() {
        assert_eq!(parse_jobs("1"), Ok(1));
        assert_eq!(parse_jobs("64"), Ok(64));
        assert_eq!(
            parse_jobs(&AdaptiveLimit::MAX.to_string()),
            Ok(AdaptiveLimit::MAX)
        );
        refused(parse_jobs("0"), &["at least 1", "-j 4"]);
        refused(
            parse_jobs(&(AdaptiveLimit::MAX as u64 + 1).to_string()),
            &["from 1 to"],
        );
        refused(parse_jobs("-1"), &["whole number"]);
        refused(parse_jobs("50%"), &["whole number"]);
        assert_eq!(parse_retries("0"), Ok(0));
        assert_eq!(parse_retries("3"), Ok(3));
        assert_eq!(parse_retries("4294967295"), Ok(u32::MAX));
        refused(parse_retries("-1"), &["--retries 3"]);
        refused(parse_retries("x"), &["whole number"]);
    }

    #[test]
    fn backoffs_in_every_form() {
        let delays = |b: Backoff| b.schedule().take(5).collect::<Vec<_>>();
        let exp = parse_backoff("exp:100ms..1s").unwrap();
        assert_eq!(delays(exp), [MS(100), MS(200), MS(400), MS(800), S(1)]);
        assert_eq!(exp.cap(), Some(S(1)));
        assert_eq!(parse_backoff("exponential:100ms..1s"), Ok(exp));
        let linear = parse_backoff("linear:100ms..350ms").unwrap();
        assert_eq!(
            delays(linear),
            [MS(100), MS(200), MS(300), MS(350), MS(350)]
        );
        assert_eq!(delays(parse_backoff("const:1s").unwrap()), [S(1); 5]);
        assert_eq!(
            delays(parse_backoff("const:0s").unwrap()),
            [Duration::ZERO; 5]
        );
        assert_eq!(delays(parse_backoff("exp:1s..1s").unwrap()), [S(1); 5]);
        // The jitter is --jitter's: none here.
        assert_eq!(exp.jitter(Jitter::None), exp);
    }

    #[test]
    fn bad_backoffs_are_refused() {
        refused(
            parse_backoff("exp:10s..100ms"),
            &["inverted", "--backoff exp:100ms..10s"],
        );
        refused(parse_backoff("linear:5s..1s"), &["inverted"]);
        refused(parse_backoff("exp:0s..1s"), &["MIN must be above zero"]);
        refused(parse_backoff("exp:100ms"), &["range MIN..MAX"]);
        refused(parse_backoff("exp:100ms..10x"), &["unknown unit `x`"]);
        refused(parse_backoff("fib:1s..2s"), &["unknown kind `fib`"]);
        refused(parse_backoff("100ms"), &["KIND:DELAYS"]);
        refused(parse_backoff("const:"), &["empty"]);
        refused(parse_backoff("const:NaN"), &["not a duration"]);
    }

    #[test]
    fn jitters() {
        assert_eq!(parse_jitter("full"), Ok(Jitter::Full));
        assert_eq!(parse_jitter("equal"), Ok(Jitter::Equal));
        assert_eq!(parse_jitter("none"), Ok(Jitter::None));
        refused(parse_jitter("half"), &["full, equal or none", "--jitter"]);
    }

    #[test]
    fn breakers() {
        assert_eq!(
            parse_breaker("50%/20/30s"),
            Ok(BreakerSpec {
                failure_ratio: 0.5,
                window: 20,
                cooldown: S(30)
            })
        );
        let b = parse_breaker("100%/1/1ms").unwrap();
        assert_eq!((b.failure_ratio, b.window, b.cooldown), (1.0, 1, MS(1)));
        assert_eq!(parse_breaker("12.5%/8/1m").unwrap().failure_ratio, 0.125);
    }

    #[test]
    fn bad_breakers_are_refused() {
        refused(
            parse_breaker("150%/20/30s"),
            &["at most 100%", "--breaker 50%/20/30s"],
        );
        refused(parse_breaker("0%/20/30s"), &["above 0%"]);
        refused(parse_breaker("-5%/20/30s"), &["above 0%"]);
        refused(parse_breaker("NaN%/20/30s"), &["not a percentage"]);
        refused(parse_breaker("inf%/20/30s"), &["not a percentage"]);
        refused(parse_breaker("0.5/20/30s"), &["percentage"]);
        refused(parse_breaker("50%/0/30s"), &["at least 1 job"]);
        refused(parse_breaker("50%/x/30s"), &["whole number of jobs"]);
        refused(parse_breaker("50%/20/0s"), &["cooldown must be above zero"]);
        refused(parse_breaker("50%/20/30x"), &["cooldown", "unknown unit"]);
        refused(parse_breaker("50%/20"), &["three parts"]);
        refused(parse_breaker("50%/20/30s/1"), &["three parts"]);
    }

    #[test]
    fn halts() {
        assert_eq!(
            parse_halt("soon,fail=10%"),
            Ok(Halt {
                when: HaltWhen::Soon,
                on: HaltOn::FailurePercent(10.0)
            })
        );
        assert_eq!(
            parse_halt("now,fail=3"),
            Ok(Halt {
                when: HaltWhen::Now,
                on: HaltOn::Failures(3)
            })
        );
        assert_eq!(
            parse_halt("now,fail=100%").unwrap().on,
            HaltOn::FailurePercent(100.0)
        );
        assert_eq!(parse_halt("soon,fail=1").unwrap().on, HaltOn::Failures(1));
    }

    #[test]
    fn bad_halts_are_refused() {
        refused(
            parse_halt("soon,fail=150%"),
            &["at most 100", "--halt soon,fail=10%"],
        );
        refused(parse_halt("soon,fail=0%"), &["above 0"]);
        refused(parse_halt("soon,fail=NaN%"), &["not a percentage"]);
        refused(parse_halt("now,fail=0"), &["at least 1"]);
        refused(parse_halt("now,fail=-1"), &["whole number"]);
        refused(parse_halt("later,fail=3"), &["unknown WHEN `later`"]);
        refused(parse_halt("now,success=3"), &["fail=N or fail=P%"]);
        refused(parse_halt("now"), &["separated by `,`"]);
        refused(parse_halt("never"), &["separated by `,`"]);
    }

    #[test]
    fn adaptive_ranges() {
        assert_eq!(parse_adaptive("2..16"), Ok(2..=16));
        assert_eq!(parse_adaptive("1..2"), Ok(1..=2));
        refused(
            parse_adaptive("0..4"),
            &["MIN must be at least 1", "--adaptive 2..16"],
        );
        refused(parse_adaptive("16..2"), &["inverted"]);
        refused(parse_adaptive("4..4"), &["-j N"]);
        refused(parse_adaptive("4"), &["MIN..MAX"]);
        refused(parse_adaptive("a..4"), &["`a` is not a whole number"]);
        refused(parse_adaptive("2..-4"), &["not a whole number"]);
        refused(
            parse_adaptive(&format!("1..{}", usize::MAX)),
            &["MAX must be at most"],
        );
    }

    #[test]
    fn exit_code_lists() {
        assert_eq!(parse_exit_codes("2,3"), Ok(vec![2, 3]));
        assert_eq!(parse_exit_codes("255"), Ok(vec![255]));
        assert_eq!(parse_exit_codes("3, 2,3"), Ok(vec![3, 2]));
        refused(
            parse_exit_codes(""),
            &["the list is empty", "--no-retry-on 2,3"],
        );
        refused(parse_exit_codes(" "), &["the list is empty"]);
        refused(parse_exit_codes("2,,3"), &["missing between commas"]);
        refused(parse_exit_codes("2,"), &["missing between commas"]);
        refused(parse_exit_codes("0"), &["0 is success"]);
        refused(parse_exit_codes("256"), &["`256` is not an exit code"]);
        refused(parse_exit_codes("-1"), &["not an exit code"]);
        refused(parse_exit_codes("x"), &["not an exit code"]);
    }

    #[test]
    fn commands_split_like_a_shell() {
        assert_eq!(
            parse_command("gzip -c"),
            Ok(vec!["gzip".into(), "-c".into()])
        );
        assert_eq!(
            parse_command("sh -c 'sort | uniq -c'"),
            Ok(vec!["sh".into(), "-c".into(), "sort | uniq -c".into()])
        );
        assert_eq!(
            parse_command(r#"printf "%s\n" a\ b"#),
            Ok(vec!["printf".into(), "%s\\n".into(), "a b".into()])
        );
        refused(parse_command(""), &["empty", "--then"]);
        refused(parse_command("   "), &["empty"]);
        refused(parse_command("''"), &["empty"]);
        refused(parse_command("sh -c 'x"), &["quote is not closed"]);
    }

    #[test]
    fn non_empty_strings() {
        assert_eq!(parse_non_empty("{1}"), Ok("{1}".to_owned()));
        assert_eq!(parse_non_empty(" "), Ok(" ".to_owned()));
        refused(parse_non_empty(""), &["must not be empty"]);
    }
}
