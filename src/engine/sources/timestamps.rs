//! TIMESTAMP values read from text the way Spark's JSON reader does, whole columns at a time:
//! the canonical `yyyy-MM-dd'T'HH:mm:ss[.S{1,6}][Z]` by arithmetic, anything else as Spark's
//! `stringToTimestamp` reads it (`spark_timestamp`; no zone means UTC, the session time zone
//! here; a JSON integer's seconds arrive as ISO text from `json_spark`). DATE values read from
//! text as Spark's CSV and JSON readers do (`spark_date`).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use arrow::compute::{and, is_not_null, is_null};
use arrow::datatypes::{DataType, TimeUnit};

use super::spark_timestamp;

type Res<T> = std::result::Result<T, String>;

/// `text` (a string column) as `target` (a TIMESTAMP type), and the rows whose non-null text
/// did not parse.
pub fn from_text(text: &ArrayRef, target: &DataType) -> Res<(ArrayRef, Vec<usize>)> {
    let err = |e: arrow::error::ArrowError| e.to_string();
    let strings = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| format!("expected text, got {}", text.data_type()))?;
    if let Some(fast) = by_arithmetic(strings, target) {
        return Ok((fast, Vec::new()));
    }
    // Spark's forms (`2026`, `2026-01-02 03:04`, …) where the target is ours, UTC micros (a
    // JSON integer's seconds arrive as ISO text: `json_spark`)
    let utc = matches!(target, DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC");
    let parsed: ArrayRef = if utc {
        Arc::new(spark_timestamp::timestamps_from_text(strings))
    } else {
        let safe = CastOptions { safe: true, ..CastOptions::default() };
        cast_with_options(text, target, &safe).map_err(err)?
    };
    let failed: BooleanArray =
        and(&is_not_null(text).map_err(err)?, &is_null(&parsed).map_err(err)?).map_err(err)?;
    let rows = if failed.true_count() == 0 {
        Vec::new()
    } else {
        (0..failed.len()).filter(|&i| failed.value(i)).collect()
    };
    Ok((parsed, rows))
}

/// The column read by arithmetic when every value is `yyyy-MM-dd'T'HH:mm:ss[.S{1,6}][Z]` (or
/// a space for the `T`) from 1970 on and the target is microseconds in UTC — the form
/// producers write (the demo's `played_at`); `None` sends the column to the kernels above
/// (the epoch-seconds regex, chrono's parser and the time-zone lookup: ~3% of music_kafka's
/// CPU, which this replaces).
fn by_arithmetic(strings: &StringArray, target: &DataType) -> Option<ArrayRef> {
    match target {
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => {}
        _ => return None,
    }
    let mut values = Vec::with_capacity(strings.len());
    for i in 0..strings.len() {
        if strings.is_null(i) {
            values.push(0);
            continue;
        }
        values.push(utc_micros(strings.value(i).as_bytes())?);
    }
    let array = TimestampMicrosecondArray::new(values.into(), strings.nulls().cloned());
    Some(Arc::new(array.with_timezone("UTC")))
}

/// Microseconds since the epoch of `yyyy-MM-dd'T'HH:mm:ss[.S{1,6}][Z]` (a space for the
/// `T`), years 1970 to 9999; `None` for any other text.
pub(super) fn utc_micros(s: &[u8]) -> Option<i64> {
    if s.len() < 19
        || s[4] != b'-'
        || s[7] != b'-'
        || !(s[10] == b'T' || s[10] == b' ')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let year = two_digits(s, 0)? * 100 + two_digits(s, 2)?;
    let (month, day) = (two_digits(s, 5)?, two_digits(s, 8)?);
    let (hour, minute, second) = (two_digits(s, 11)?, two_digits(s, 14)?, two_digits(s, 17)?);
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut micros = 0i64;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=6).contains(&digits) {
            return None;
        }
        for &b in &fraction[..digits] {
            micros = micros * 10 + i64::from(b - b'0');
        }
        micros *= 10i64.pow(6 - digits as u32);
        rest = &fraction[digits..];
    }
    if !(rest.is_empty() || rest == b"Z") {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) * 1_000_000 + micros)
}

/// The two decimal digits at `s[at..at + 2]`, inlined: as closures they were a call each
/// (music_kafka, 1M messages: `utc_micros` and the calls it makes 3.1% -> 2.6% of `perf`'s
/// samples, ~5 ms of CPU).
#[inline(always)]
fn two_digits(s: &[u8], at: usize) -> Option<i64> {
    let (tens, ones) = (s[at].wrapping_sub(b'0'), s[at + 1].wrapping_sub(b'0'));
    (tens < 10 && ones < 10).then(|| i64::from(tens) * 10 + i64::from(ones))
}

/// A DATE (days since 1970) from text the way Spark reads one (`DateTimeUtils.stringToDate`;
/// PySpark 4.3, CSV and JSON, checked by hand): blanks and control characters around it are
/// ignored; `yyyy`, `yyyy-[m]m`, or `yyyy-[m]m-[d]d` followed by anything after a space or a
/// `T`; the year has 4 to 7 digits and may have a sign. So `2026` is 2026-01-01,
/// `2026-01-02 junk` is 2026-01-02, and `20260102` is no date (arrow's cast reads it and
/// refuses the others).
pub(super) fn spark_date(text: &str) -> Option<i32> {
    let t = text.trim_matches(|c: char| c <= ' ');
    // the date is what comes before a space or `T`, read as a TIMESTAMP's date part is
    let (date, rest) = t.split_at(t.find([' ', 'T']).unwrap_or(t.len()));
    // `yyyy` and `yyyy-[m]m` take the whole text
    let separators = date.trim_start_matches(['-', '+']).matches('-').count();
    if separators < 2 && !rest.is_empty() {
        return None;
    }
    let micros = spark_timestamp::spark_timestamp(date)?;
    i32::try_from(micros.div_euclid(86_400_000_000)).ok()
}

/// A text column as DATE by [`spark_date`] (NULL where it does not read); `digits_are_days`:
/// text of digits alone that is no date is days since 1970, as Spark's JSON reader has it
/// (`"20260102"` is +57440-04-11; its CSV reader refuses it).
pub(super) fn dates_from_text(text: &StringArray, digits_are_days: bool) -> Date32Array {
    text.iter()
        .map(|v| {
            let v = v?;
            spark_date(v).or_else(|| {
                (digits_are_days && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse::<i32>().ok())
                    .flatten()
            })
        })
        .collect()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(super) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PySpark 4.3's DATE of each text (CSV and JSON alike, but the JSON reader's digits).
    #[test]
    fn dates_read_as_in_spark() {
        let spark = [
            ("2026", Some("2026-01-01")),
            ("2026-01", Some("2026-01-01")),
            ("20260102", None),
            ("2026-01-02 ", Some("2026-01-02")),
            (" 2026-01-02", Some("2026-01-02")),
            ("2026-01-02 junk", Some("2026-01-02")),
            ("2026-01-02T99", Some("2026-01-02")),
            ("+2026-01-02", Some("2026-01-02")),
            ("-0044-03-15", Some("-0044-03-15")),
            ("12026-01-02", Some("+12026-01-02")),
            ("2026-1-2", Some("2026-01-02")),
            ("2026-02-30", None),
            ("2026-13-01", None),
            ("2026-01-02-03", None),
            ("2026 x", None),
            ("", None),
        ];
        let show = |days: i32| {
            let d = Date32Array::from(vec![days]);
            arrow::util::display::array_value_to_string(&d, 0).unwrap()
        };
        for (text, want) in spark {
            assert_eq!(spark_date(text).map(show).as_deref(), want, "{text:?}");
        }
        let json = dates_from_text(&StringArray::from(vec!["20260102", "2026"]), true);
        assert_eq!(show(json.value(0)), "+57440-04-11");
        assert_eq!(show(json.value(1)), "2026-01-01");
    }

    /// What the kernels give for one text (the reading before the arithmetic path).
    fn by_kernels(text: &str) -> Option<i64> {
        let target = crate::engine::schema::delta_timestamp();
        let safe = CastOptions { safe: true, ..CastOptions::default() };
        let column: ArrayRef = Arc::new(StringArray::from(vec![text]));
        let out = cast_with_options(&column, &target, &safe).unwrap();
        let out = out.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        out.is_valid(0).then(|| out.value(0))
    }

    #[test]
    fn the_arithmetic_reads_what_the_kernels_read_and_leaves_the_rest_to_them() {
        // a spread of instants 1970..9999 (leap days, month and year ends included), in
        // every form the arithmetic takes
        let mut texts = vec![
            "1970-01-01T00:00:00".to_owned(),
            "2000-02-29T23:59:59.999999Z".to_owned(),
            "2024-02-29 12:00:00.5".to_owned(),
            "2100-12-31T23:59:59Z".to_owned(),
            "9999-12-31T23:59:59.000001".to_owned(),
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let year = 1970 + x % 8030;
            let month = 1 + (x >> 13) % 12;
            let day = 1 + (x >> 17) % days_in_month(year as i64, month as i64) as u64;
            let (h, m, s) = ((x >> 22) % 24, (x >> 27) % 60, (x >> 33) % 60);
            let sep = if x >> 39 & 1 == 0 { 'T' } else { ' ' };
            let digits = ((x >> 40) % 7) as usize;
            let fraction = format!("{:06}", (x >> 43) % 1_000_000);
            let fraction =
                if digits == 0 { String::new() } else { format!(".{}", &fraction[..digits]) };
            let zone = if x >> 63 == 0 { "" } else { "Z" };
            texts.push(format!(
                "{year:04}-{month:02}-{day:02}{sep}{h:02}:{m:02}:{s:02}{fraction}{zone}"
            ));
        }
        for t in &texts {
            let fast = utc_micros(t.as_bytes());
            assert!(fast.is_some(), "the arithmetic takes {t}");
            assert_eq!(fast, by_kernels(t), "{t}");
        }
        // anything else goes to the kernels
        for t in [
            "2026-02-29T00:00:00",
            "2026-01-02T24:00:00",
            "2026-01-02T03:60:00",
            "2026-01-02T03:04:60",
            " 2026-01-02T03:04:05",
            "2026-01-02T03:04:05 ",
            "2026-01-02T03:04:05.1234567",
            "2026-01-02T03:04:05.",
            "2026-01-02T03:04:05+01:00",
            "2026-01-02t03:04:05",
            "2026-01-02T03:04:05z",
            "1969-12-31T23:59:59",
            "2026-01-02",
            "1767323045",
            "2026-13-01T00:00:00",
            "2026-00-10T00:00:00",
            "２０２６-01-02T03:04:05",
            // a byte just past either end of the digits, in each field (`/` is `0` - 1, `:`
            // is `9` + 1), and a space where a digit belongs
            "20/6-01-02T03:04:05",
            "2026-0:-02T03:04:05",
            "2026-01-/2T03:04:05",
            "2026-01-02T0:04:05Z",
            "2026-01-02T03:/4:05",
            "2026-01-02T03:04:0:",
            "2026-01-02T 3:04:05",
        ] {
            assert_eq!(utc_micros(t.as_bytes()), None, "{t}");
        }
        // one such value sends the whole column to the kernels (same rows as before)
        let column: ArrayRef = Arc::new(StringArray::from(vec![
            Some("2026-01-02T03:04:05Z"),
            None,
            Some("2026-01-02T04:04:05+01:00"),
        ]));
        let target = crate::engine::schema::delta_timestamp();
        let (out, failed) = from_text(&column, &target).unwrap();
        let out = out.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        assert_eq!(
            (out.value(0), out.is_null(1), out.value(2)),
            (1_767_323_045_000_000, true, 1_767_323_045_000_000)
        );
        assert!(failed.is_empty());
        let clean: ArrayRef = Arc::new(StringArray::from(vec![Some("2026-01-02T03:04:05Z"), None]));
        let (out, _) = from_text(&clean, &target).unwrap();
        assert_eq!(out.data_type(), &target);
        assert_eq!((out.null_count(), out.len()), (1, 2));
    }

    #[test]
    fn spark_default_formats_parse_and_digit_text_does_not() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("2026-01-02T03:04:05.123Z"),
            Some("2026-01-02T03:04:05"),
            Some("2026-01-02 03:04:05"),
            Some("2026-01-02T04:04:05+01:00"),
            Some("2026-01-02"),
            Some("1767323045"),
            None,
            Some("yesterday"),
        ]));
        let (out, failed) = from_text(&text, &crate::engine::schema::delta_timestamp()).unwrap();
        let shown: Vec<String> = (0..out.len())
            .map(|i| arrow::util::display::array_value_to_string(&out, i).unwrap())
            .collect();
        assert_eq!(
            shown,
            [
                "2026-01-02T03:04:05.123Z",
                "2026-01-02T03:04:05Z",
                "2026-01-02T03:04:05Z",
                "2026-01-02T03:04:05Z",
                "2026-01-02T00:00:00Z",
                // text of digits is no epoch: Spark reads a JSON *integer* as seconds (its ISO
                // text comes from `json_spark`), a string of ten digits as no timestamp
                "",
                "",
                ""
            ]
        );
        assert_eq!(failed, [5, 7]);
    }
}
