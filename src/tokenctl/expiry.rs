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
fn parse_duration(value: &str) -> Option<Duration> {
    const DAY: u64 = 86_400;
    let (number, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "d" => Some(n * DAY),
        "w" => Some(n * 7 * DAY),
        "y" => Some(n * 365 * DAY),
        _ => None,
    };
    seconds
        .map(Duration::from_secs)
        .or_else(|| humantime::parse_duration(value).ok())
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
}
