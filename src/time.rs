//! Wall-clock helpers: the one place that reads the clock, plus RFC 3339 and duration text.
//! Pure conversions take and return unix milliseconds; nothing here sleeps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn split_ms(ms: i64) -> (i64, i64, i64, i64, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    (
        year,
        month,
        day,
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ms.rem_euclid(1000),
    )
}

/// `2024-01-15T10:30:00Z`: the form of an event's `created_at`.
pub(crate) fn format_rfc3339_seconds(ms: i64) -> String {
    let (y, mo, d, h, mi, s, _) = split_ms(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2024-01-15T10:30:00.123Z`: the form of every other time in the API.
pub(crate) fn format_rfc3339_millis(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = split_ms(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// `Thu, 01 Jan 1970 00:00:00 GMT` parsing, for `Retry-After`; None when malformed.
pub(crate) fn parse_http_date(text: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let rest = text.trim().split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, hms, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day = digits(day.as_bytes())?;
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let year = digits(year.as_bytes())?;
    let hms: Vec<i64> = hms
        .split(':')
        .map(|p| digits(p.as_bytes()).unwrap_or(-1))
        .collect();
    if hms.len() != 3 || hms.iter().any(|v| *v < 0) || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400) + hms[0] * 3600 + hms[1] * 60 + hms[2]) * 1000)
}

/// Strict `YYYY-MM-DD`; returns the day's start in unix ms.
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400_000)
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// RFC 3339 date-time (`2024-01-15T09:00:00Z`, `…T09:00:00.5+02:00`); returns unix ms.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || !(b[10] == b'T' || b[10] == b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let date_ms = parse_date(&text[0..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0;
    if rest.first() == Some(&b'.') {
        let frac_len = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if frac_len == 0 {
            return None;
        }
        let frac = &rest[1..1 + frac_len];
        let mut padded = [b'0'; 3];
        for (slot, digit) in padded.iter_mut().zip(frac) {
            *slot = *digit;
        }
        millis = digits(&padded)?;
        rest = &rest[1 + frac_len..];
    }
    let offset_ms = match rest {
        [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let magnitude = (oh * 60 + om) * 60_000;
            if *sign == b'+' { magnitude } else { -magnitude }
        }
        _ => return None,
    };
    Some(date_ms + ((hour * 60 + minute) * 60 + second) * 1000 + millis - offset_ms)
}

/// The longest duration anything accepts, flags and API fields alike: `3650d` (ten years).
/// Every duration is at most this, so adding one to a time in unix ms cannot overflow; the
/// helpers below saturate anyway, so a duration built in code cannot either.
pub(crate) const DURATION_MAX: Duration = Duration::from_secs(3650 * 86_400);

/// `250ms`, `5s`, `1m`, `2h`, `3d` (and `0s`), at most [`DURATION_MAX`]. The error names the
/// accepted forms, or the maximum.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("\"{text}\" is not a duration (examples: 250ms, 5s, 1m, 2h, 3d)");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(bad());
    }
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    let too_long = || {
        format!(
            "\"{text}\" is longer than the maximum, {}",
            format_duration(DURATION_MAX)
        )
    };
    // Digits only, so a parse error is a number too big for u64: too long, like an overflow.
    let n: u64 = number.parse().map_err(|_| too_long())?;
    let ms = n
        .checked_mul(unit_ms)
        .filter(|ms| u128::from(*ms) <= DURATION_MAX.as_millis())
        .ok_or_else(too_long)?;
    Ok(Duration::from_millis(ms))
}

/// A duration in whole milliseconds as a time offset; saturates instead of wrapping.
pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The time `duration` after `at_ms`; saturates instead of wrapping.
pub(crate) fn after_ms(at_ms: i64, duration: Duration) -> i64 {
    at_ms.saturating_add(duration_ms(duration))
}

/// The time `duration` before `at_ms`; saturates instead of wrapping.
pub(crate) fn before_ms(at_ms: i64, duration: Duration) -> i64 {
    at_ms.saturating_sub(duration_ms(duration))
}

/// The shortest text `parse_duration` reads back as `duration`.
pub(crate) fn format_duration(duration: Duration) -> String {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms != 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    if ms == 0 {
        "0s".to_string()
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_rfc3339_round_trip() {
        let ms = parse_rfc3339("2024-01-15T10:30:00Z").unwrap();
        assert_eq!(ms, 1_705_314_600_000);
        assert_eq!(format_rfc3339_seconds(ms), "2024-01-15T10:30:00Z");
        assert_eq!(format_rfc3339_millis(ms + 7), "2024-01-15T10:30:00.007Z");
        assert_eq!(parse_rfc3339("2024-01-15T12:30:00.5+02:00"), Some(ms + 500));
        assert_eq!(format_rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z")
                .map(format_rfc3339_seconds)
                .as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "",
            "2024-01-15",
            "2024-01-15 10:30:00Z",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-15T24:00:00Z",
            "2024-01-15T10:30:00",
            "2024-01-15T10:30:00+0200",
            "2024-01-15T10:30:00.Z",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(parse_date("2024-1-5"), None);
        assert!(parse_date("2024-12-31").is_some());
    }

    #[test]
    fn parses_durations_in_every_unit() {
        let cases = [
            ("250ms", 250),
            ("5s", 5000),
            ("1m", 60_000),
            ("2h", 7_200_000),
            ("3d", 259_200_000),
            ("0s", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
            assert_eq!(
                parse_duration(&format_duration(Duration::from_millis(ms))),
                Ok(Duration::from_millis(ms))
            );
        }
        for bad in ["", "5", "5x", "s", "-1s", "1.5s", "5 s"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.contains("is not a duration"), "{error}");
        }
    }

    #[test]
    fn refuses_durations_over_the_maximum() {
        assert_eq!(parse_duration("3650d"), Ok(DURATION_MAX));
        assert_eq!(format_duration(DURATION_MAX), "3650d");
        for long in [
            "3651d",
            "87601h",
            "315360000001ms",
            "200000000000d",
            "60000000000d",
            "213503982335d",
            "99999999999999999999999999s",
        ] {
            let error = parse_duration(long).unwrap_err();
            assert!(error.contains("longer than the maximum, 3650d"), "{error}");
        }
        assert_eq!(after_ms(i64::MAX - 1, DURATION_MAX), i64::MAX);
        assert_eq!(before_ms(i64::MIN + 1, DURATION_MAX), i64::MIN);
        assert_eq!(duration_ms(Duration::MAX), i64::MAX);
    }

    #[test]
    fn parses_http_dates() {
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:10 GMT"),
            Some(10_000)
        );
        assert_eq!(
            parse_http_date("Mon, 15 Jan 2024 10:30:00 GMT"),
            Some(1_705_314_600_000)
        );
        assert_eq!(parse_http_date("soon"), None);
    }
}
