//! TIMESTAMP values read from text the way Spark's JSON reader does, with Arrow kernels over
//! whole columns: an integer is seconds since the epoch, anything else is parsed with
//! Spark's default format `yyyy-MM-dd'T'HH:mm:ss[.SSS][XXX]` (a space for the `T`, a date
//! alone, a zone offset or `Z`; no zone means UTC, the session time zone here).

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray};
use arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use arrow::compute::kernels::numeric::mul;
use arrow::compute::{and, is_not_null, is_null, regexp_is_match_scalar};
use arrow::datatypes::DataType;

type Res<T> = std::result::Result<T, String>;

/// `text` (a string column) as `target` (a TIMESTAMP type), and the rows whose non-null text
/// did not parse.
pub fn from_text(text: &ArrayRef, target: &DataType) -> Res<(ArrayRef, Vec<usize>)> {
    let err = |e: arrow::error::ArrowError| e.to_string();
    let strings = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| format!("expected text, got {}", text.data_type()))?;
    let safe = CastOptions { safe: true, ..CastOptions::default() };
    let integer = regexp_is_match_scalar(strings, r"^\s*-?[0-9]+\s*$", None).map_err(err)?;
    let parsed = if integer.true_count() == 0 {
        cast_with_options(text, target, &safe).map_err(err)?
    } else {
        let secs = cast_with_options(text, &DataType::Int64, &safe).map_err(err)?;
        let micros = mul(&secs, &Int64Array::new_scalar(1_000_000)).map_err(err)?;
        let from_secs = cast_with_options(&micros, target, &safe).map_err(err)?;
        let from_text = cast_with_options(text, target, &safe).map_err(err)?;
        arrow::compute::kernels::zip::zip(&integer, &from_secs, &from_text).map_err(err)?
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn spark_default_formats_and_epoch_seconds_parse() {
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
                "2026-01-02T03:04:05Z",
                "",
                ""
            ]
        );
        assert_eq!(failed, [7]);
    }
}
