//! Expiry as people type it: `never`, a duration (`30d`, `1y`, `12h`), or an absolute time
//! (RFC 3339, e.g. `2027-01-01T00:00:00Z`).

use std::time::{Duration, SystemTime};

use crate::proto::create_token_request::Expiry;

/// Parses an `--expires` value; None means the token never expires.
pub fn parse(value: &str) -> Result<Option<Expiry>, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    if let Ok(at) = humantime::parse_rfc3339_weak(value) {
        return Ok(Some(Expiry::ExpireTime(at.into())));
    }
    let ttl = parse_duration(value)
        .ok_or_else(|| format!("`{value}` is not `never`, a duration like 30d or 1y, or a time like 2027-01-01T00:00:00Z"))?;
    let ttl = prost_types::Duration::try_from(ttl).map_err(|_| format!("`{value}` is too long"))?;
    Ok(Some(Expiry::Ttl(ttl)))
}

/// `30d`, `1y`, `2w`, `12h`, `90m`, or anything humantime accepts (`1year 2days`).
pub fn parse_duration(value: &str) -> Option<Duration> {
    const DAY: u64 = 86_400;
    let (number, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    let unit_seconds = match unit {
        "d" => Some(DAY),
        "w" => Some(7 * DAY),
        "y" => Some(365 * DAY),
        _ => None,
    };
    match unit_seconds {
        // Out of range is refused (None), never wrapped or a panic.
        Some(unit) => n.checked_mul(unit).map(Duration::from_secs),
        None => humantime::parse_duration(value).ok(),
    }
}

/// The moment `ttl` from now, or an error naming `flag` when that is past what a clock can
/// represent.
pub fn from_now(ttl: Duration, flag: &str) -> Result<SystemTime, String> {
    SystemTime::now()
        .checked_add(ttl)
        .ok_or_else(|| format!("{flag}: too far in the future"))
}

/// A timestamp for tables: RFC 3339 to the second.
pub fn format_time(time: Option<&prost_types::Timestamp>) -> String {
    time.and_then(|t| SystemTime::try_from(*t).ok())
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_durations_and_times_parse() {
        assert_eq!(parse("never").unwrap(), None);
        let day = |d: u64| {
            Some(Expiry::Ttl(
                prost_types::Duration::try_from(Duration::from_secs(d * 86_400)).unwrap(),
            ))
        };
        assert_eq!(parse("30d").unwrap(), day(30));
        assert_eq!(parse("1y").unwrap(), day(365));
        assert_eq!(parse("2w").unwrap(), day(14));
        assert!(matches!(parse("12h").unwrap(), Some(Expiry::Ttl(d)) if d.seconds == 43_200));
        assert!(
            matches!(parse("2027-01-01T00:00:00Z").unwrap(), Some(Expiry::ExpireTime(t)) if t.seconds == 1_798_761_600)
        );
        assert!(parse("soon").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn absurd_durations_are_errors_not_panics() {
        // Regression: `999999999y` and longer overflowed.
        assert!(
            matches!(parse("999999999y"), Ok(Some(Expiry::Ttl(d))) if d.seconds == 31_535_999_968_464_000)
        );
        for value in [
            "99999999999999999y",
            "18446744073709551615w",
            "99999999999999999999d",
        ] {
            assert!(parse(value).is_err(), "{value}");
        }
        assert!(from_now(Duration::MAX, "--expires").is_err());
    }

    proptest::proptest! {
        /// Whatever is typed, parsing answers (a value or a message) and never panics.
        #[test]
        fn any_input_parses_or_is_refused(value in "\\PC{0,40}", digits in "[0-9]{1,30}[dwy]") {
            let _ = parse(&value);
            if let Ok(Some(Expiry::Ttl(ttl))) = parse(&digits)
                && let Ok(ttl) = Duration::try_from(ttl)
            {
                let _ = from_now(ttl, "--expires");
            }
        }
    }
}
