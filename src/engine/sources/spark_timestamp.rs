//! TIMESTAMP from text the way Spark reads one (`DateTimeUtils.stringToTimestamp`; PySpark 4.3,
//! CSV and JSON, checked with `scripts/spark_read_rules.py`): blanks around it are ignored;
//! `yyyy`, `yyyy-[m]m`, `yyyy-[m]m-[d]d`, then after a space or `T` `[h]h`, `[h]h:[m]m` or
//! `[h]h:[m]m:[s]s[.fraction]` (digits past the sixth truncated), then a zone: `Z`, an offset
//! (`+1`, `+01`, `+01:00`, `+0100`), `UTC` / `GMT` / `UT` with or without one, or a region
//! (`Europe/Paris`); no zone is UTC, the session time zone here. So `2026` is 2026-01-01
//! 00:00 and `2026-01-02 03:04` is 03:04:00, where arrow's cast refuses both; text after the
//! zone (`… junk`) makes it no timestamp. Not read: Spark's time alone (`03:04:05`, today's date)
//! and Java's three-letter zone names (`PST`).

use std::str::FromStr;

use arrow::array::{StringArray, TimestampMicrosecondArray};
use chrono::{NaiveDate, Offset, TimeZone};

use super::timestamps::days_from_civil;

/// A text column as TIMESTAMP (microseconds, UTC) by [`spark_timestamp`]: NULL where it does
/// not read.
pub fn timestamps_from_text(text: &StringArray) -> TimestampMicrosecondArray {
    text.iter()
        .map(|v| v.and_then(spark_timestamp))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC")
}

/// Microseconds since 1970 (UTC) of `text`, or `None`.
pub fn spark_timestamp(text: &str) -> Option<i64> {
    let b = text.trim_matches(|c: char| c <= ' ').as_bytes();
    let (sign, mut j) = match b.first()? {
        b'-' => (-1, 1),
        b'+' => (1, 1),
        _ => (1, 0),
    };
    // year, month, day, hour, minute, second, fraction
    let mut seg = [1i64, 1, 1, 0, 0, 0, 0];
    let (mut i, mut value, mut digits, mut fraction_digits) = (0usize, 0i64, 0usize, 0u32);
    let valid = |segment: usize, digits: usize| match segment {
        0 => (4..=7).contains(&digits),
        6 => digits > 0,
        _ => (1..=2).contains(&digits),
    };
    let mut zone: Option<&[u8]> = None;
    while j < b.len() {
        let c = b[j];
        if c.is_ascii_digit() {
            if i == 6 {
                // past microseconds the digits are dropped, as Spark truncates them
                if fraction_digits < 6 {
                    value = value * 10 + i64::from(c - b'0');
                    fraction_digits += 1;
                }
            } else {
                if digits == 7 {
                    return None;
                }
                value = value * 10 + i64::from(c - b'0');
            }
            digits += 1;
            j += 1;
            continue;
        }
        let next = match (i, c) {
            (0 | 1, b'-') => true,
            (2, b' ' | b'T') => true,
            (3 | 4, b':') => true,
            (5, b'.') => true,
            // anything else after the seconds or their fraction is the zone
            (5 | 6, _) => {
                zone = Some(&b[j..]);
                false
            }
            _ => return None,
        };
        if !valid(i, digits) {
            return None;
        }
        seg[i] = value;
        (value, digits) = (0, 0);
        if !next {
            i = 7;
            break;
        }
        i += 1;
        j += 1;
    }
    if i < 7 {
        // the text ended inside segment `i`: `yyyy` and `yyyy-[m]m` end there, the others too
        if !valid(i, digits) {
            return None;
        }
        seg[i] = value;
    }
    let fraction = seg[6] * 10i64.pow(6 - fraction_digits.min(6));
    let (year, month, day) = (sign * seg[0], seg[1], seg[2]);
    let (hour, minute, second) = (seg[3], seg[4], seg[5]);
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month as u32, day as u32)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let local = days_from_civil(year, month, day) * 86_400_000_000
        + ((hour * 60 + minute) * 60 + second) * 1_000_000
        + fraction;
    let offset_secs = match zone {
        None => 0,
        Some(z) => zone_offset(std::str::from_utf8(z).ok()?.trim(), date, hour, minute, second)?,
    };
    local.checked_sub(i64::from(offset_secs) * 1_000_000)
}

/// Seconds east of UTC of a zone as Spark's `getZoneId` reads it, at this local time (a region
/// has daylight saving; of two readings of an hour the earlier, a skipped hour is no time).
fn zone_offset(zone: &str, date: NaiveDate, hour: i64, minute: i64, second: i64) -> Option<i32> {
    if zone == "Z" {
        return Some(0);
    }
    for prefix in ["UTC", "GMT", "UT"] {
        if let Some(rest) = zone.strip_prefix(prefix) {
            return if rest.is_empty() { Some(0) } else { fixed_offset(rest) };
        }
    }
    if zone.starts_with(['+', '-']) {
        return fixed_offset(zone);
    }
    let tz = chrono_tz::Tz::from_str(zone).ok()?;
    let local = date.and_hms_opt(hour as u32, minute as u32, second as u32)?;
    let at = tz.from_local_datetime(&local).earliest()?;
    Some(at.offset().fix().local_minus_utc())
}

/// `+h`, `+hh`, `+h:mm`, `+hh:mm` or `+hhmm` (or `-`), as seconds.
fn fixed_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) if (1..=2).contains(&h.len()) && m.len() == 2 => (h, m),
        None if (1..=2).contains(&rest.len()) => (rest, "0"),
        None if rest.len() == 4 => rest.split_at(2),
        _ => return None,
    };
    if !(h.bytes().chain(m.bytes()).all(|c| c.is_ascii_digit())) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 18 && m <= 59).then_some(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(text: &str) -> Option<String> {
        let micros = spark_timestamp(text)?;
        let t = chrono::DateTime::from_timestamp_micros(micros)?;
        Some(t.format("%Y-%m-%d %H:%M:%S%.f").to_string())
    }

    /// PySpark 4.3's reading of each text with `spark.sql.session.timeZone = UTC` (CSV and
    /// JSON alike; `scripts/spark_read_rules.py`).
    #[test]
    fn timestamps_read_as_in_spark() {
        let spark = [
            ("2026-01-02 03:04", Some("2026-01-02 03:04:00")),
            ("2026-01-02T03:04:05.5", Some("2026-01-02 03:04:05.500")),
            ("2026-01-02 03:04:05 +02:00", Some("2026-01-02 01:04:05")),
            ("2026", Some("2026-01-01 00:00:00")),
            ("2026-01", Some("2026-01-01 00:00:00")),
            ("2026-01-02T03", Some("2026-01-02 03:00:00")),
            (" 2026-01-02 03:04:05", Some("2026-01-02 03:04:05")),
            ("2026-01-02 03:04:05 junk", None),
            ("2026-01-02T03:04:05.123+0100", Some("2026-01-02 02:04:05.123")),
            ("2026-01-02T03:04:05UTC", Some("2026-01-02 03:04:05")),
            ("2026-01-02T03:04:05.1234567", Some("2026-01-02 03:04:05.123456")),
            ("1/2/2026 03:04", None),
            ("2026-01-02T03:04:05Z", Some("2026-01-02 03:04:05")),
            ("2026-07-02T03:04:05 Europe/Paris", Some("2026-07-02 01:04:05")),
            ("2026-02-30", None),
            ("2026-01-02 24:00:00", None),
            ("1700000000", None),
            ("", None),
        ];
        for (text, want) in spark {
            assert_eq!(show(text).as_deref(), want, "{text:?}");
        }
    }
}
