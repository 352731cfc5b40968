//! Distinct's keys as compact bytes for equality (`distinct_keys.rs`): two rows' bytes are
//! equal exactly when their keys are (null equals null, floats by their bits — as arrow-row
//! compares them). arrow-row's encoding keeps order, which costs bytes: a string goes in
//! 8-byte mini-blocks and 32-byte blocks each with a continuation byte (a 36-character uuid
//! takes 70), so a users_batch row's key took ~200 bytes; here a value is a tag byte, then a
//! primitive's bytes, or a string's length (LEB128) and bytes, or a list's count and elements,
//! or a struct's fields — ~130. Distinct hashes, copies and spills every key, so fewer bytes
//! is less of each. Types without an encoding here (dictionaries, maps, unions, ...) keep
//! arrow-row for the whole key.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::error::Result as DfResult;

/// Whether every value of `data_type` has a compact encoding.
fn compact(data_type: &DataType) -> bool {
    match data_type {
        DataType::Null | DataType::Boolean => true,
        t if byte_like(t) => true,
        DataType::List(f) | DataType::LargeList(f) => compact(f.data_type()),
        DataType::Struct(fields) => fields.iter().all(|f| compact(f.data_type())),
        t => t.primitive_width().is_some(),
    }
}

/// Strings and binaries: a length and bytes.
fn byte_like(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

/// Row bytes of a batch's keys, one encoding or the other.
pub(super) enum KeyRows {
    Compact { data: Vec<u8>, offsets: Vec<usize> },
    Rows(Rows),
}

impl KeyRows {
    pub(super) fn row(&self, i: usize) -> &[u8] {
        match self {
            KeyRows::Compact { data, offsets } => &data[offsets[i]..offsets[i + 1]],
            KeyRows::Rows(rows) => rows.row(i).data(),
        }
    }
}

/// Encodes key columns: compactly when every key type allows, else with arrow-row.
pub(super) struct KeyEncoder {
    rows: Option<RowConverter>,
    /// Where each row's next value goes: kept across batches (a fresh zeroed vector per batch
    /// cost a copy-on-write fault and a TLB flush per page).
    cursors: Vec<usize>,
}

impl KeyEncoder {
    pub(super) fn new(types: Vec<DataType>) -> DfResult<Self> {
        let rows = if types.iter().all(compact) {
            None
        } else {
            Some(RowConverter::new(types.into_iter().map(SortField::new).collect())?)
        };
        Ok(Self { rows, cursors: Vec::new() })
    }

    /// The rows of `columns` (all of one length), in `reuse`'s buffers when it has them.
    pub(super) fn encode(
        &mut self,
        columns: &[ArrayRef],
        reuse: Option<KeyRows>,
    ) -> DfResult<KeyRows> {
        let n = columns.first().map_or(0, |c| c.len());
        match (&self.rows, reuse) {
            (Some(converter), reuse) => {
                let mut rows = match reuse {
                    Some(KeyRows::Rows(mut rows)) => {
                        rows.clear();
                        rows
                    }
                    _ => converter.empty_rows(n, 64 * n),
                };
                converter.append(&mut rows, columns)?;
                Ok(KeyRows::Rows(rows))
            }
            (None, reuse) => {
                let (mut data, mut offsets) = match reuse {
                    Some(KeyRows::Compact { data, offsets }) => (data, offsets),
                    _ => (Vec::new(), Vec::new()),
                };
                // each row's bytes at its end offset, then summed into offsets
                offsets.clear();
                offsets.resize(n + 1, 0);
                for c in columns {
                    for (end, len) in offsets[1..].iter_mut().zip(lengths(c.as_ref())) {
                        *end += len;
                    }
                }
                for i in 1..=n {
                    offsets[i] += offsets[i - 1];
                }
                data.clear();
                data.resize(offsets[n], 0);
                self.cursors.clear();
                self.cursors.extend_from_slice(&offsets[..n]);
                for c in columns {
                    write(c.as_ref(), &mut self.cursors, &mut data);
                }
                Ok(KeyRows::Compact { data, offsets })
            }
        }
    }
}

/// Bytes of a LEB128 `n`.
fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn put_varint(data: &mut [u8], at: &mut usize, mut n: usize) {
    while n >= 0x80 {
        data[*at] = (n as u8) | 0x80;
        n >>= 7;
        *at += 1;
    }
    data[*at] = n as u8;
    *at += 1;
}

/// A byte-like column, downcast once (not per value).
enum Bytes<'a> {
    Utf8(&'a arrow::array::StringArray),
    LargeUtf8(&'a arrow::array::LargeStringArray),
    Utf8View(&'a arrow::array::StringViewArray),
    Binary(&'a arrow::array::BinaryArray),
    LargeBinary(&'a arrow::array::LargeBinaryArray),
    BinaryView(&'a arrow::array::BinaryViewArray),
    Fixed(&'a arrow::array::FixedSizeBinaryArray),
}

impl<'a> Bytes<'a> {
    fn new(array: &'a dyn Array) -> Self {
        match array.data_type() {
            DataType::Utf8 => Bytes::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Bytes::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View => Bytes::Utf8View(array.as_string_view()),
            DataType::Binary => Bytes::Binary(array.as_binary::<i32>()),
            DataType::LargeBinary => Bytes::LargeBinary(array.as_binary::<i64>()),
            DataType::BinaryView => Bytes::BinaryView(array.as_binary_view()),
            DataType::FixedSizeBinary(_) => Bytes::Fixed(array.as_fixed_size_binary()),
            t => unreachable!("{t} is not byte-like"),
        }
    }

    fn value(&self, i: usize) -> &'a [u8] {
        match self {
            Bytes::Utf8(a) => a.value(i).as_bytes(),
            Bytes::LargeUtf8(a) => a.value(i).as_bytes(),
            Bytes::Utf8View(a) => a.value(i).as_bytes(),
            Bytes::Binary(a) => a.value(i),
            Bytes::LargeBinary(a) => a.value(i),
            Bytes::BinaryView(a) => a.value(i),
            Bytes::Fixed(a) => a.value(i),
        }
    }
}

/// Whether value `i` is valid, nulls read once per column.
fn validity(array: &dyn Array) -> impl Fn(usize) -> bool + '_ {
    let nulls = array.logical_nulls();
    move |i| nulls.as_ref().is_none_or(|n| n.is_valid(i))
}

/// The element range of list value `i`.
fn list_range(array: &dyn Array, i: usize) -> (usize, usize) {
    match array.data_type() {
        DataType::List(_) => {
            let o = array.as_list::<i32>().value_offsets();
            (o[i] as usize, o[i + 1] as usize)
        }
        _ => {
            let o = array.as_list::<i64>().value_offsets();
            (o[i] as usize, o[i + 1] as usize)
        }
    }
}

fn list_values(array: &dyn Array) -> &ArrayRef {
    match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().values(),
        _ => array.as_list::<i64>().values(),
    }
}

/// Encoded bytes of each value of `array`.
fn lengths(array: &dyn Array) -> Vec<usize> {
    let n = array.len();
    let valid = validity(array);
    match array.data_type() {
        DataType::Null => vec![1; n],
        DataType::Boolean => (0..n).map(|i| if valid(i) { 2 } else { 1 }).collect(),
        t if byte_like(t) => {
            let bytes = Bytes::new(array);
            (0..n)
                .map(|i| {
                    if !valid(i) {
                        return 1;
                    }
                    let len = bytes.value(i).len();
                    1 + varint_len(len) + len
                })
                .collect()
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let child = lengths(list_values(array).as_ref());
            (0..n)
                .map(|i| {
                    if !valid(i) {
                        return 1;
                    }
                    let (from, to) = list_range(array, i);
                    1 + varint_len(to - from) + child[from..to].iter().sum::<usize>()
                })
                .collect()
        }
        DataType::Struct(_) => {
            let mut lens = vec![1; n];
            for child in array.as_struct().columns() {
                for (i, l) in lengths(child.as_ref()).into_iter().enumerate() {
                    if valid(i) {
                        lens[i] += l;
                    }
                }
            }
            lens
        }
        t => {
            let width = t.primitive_width().expect("a compact type");
            (0..n).map(|i| if valid(i) { 1 + width } else { 1 }).collect()
        }
    }
}

/// Writes each value `i` of `array` at `cursors[i]` and moves it past; `usize::MAX`: a value
/// under a null parent, not written.
fn write(array: &dyn Array, cursors: &mut [usize], data: &mut [u8]) {
    const SKIP: usize = usize::MAX;
    let valid = validity(array);
    match array.data_type() {
        DataType::Null => {
            for at in cursors.iter_mut().filter(|at| **at != SKIP) {
                data[*at] = 0;
                *at += 1;
            }
        }
        DataType::Boolean => {
            let values = array.as_boolean();
            for (i, at) in cursors.iter_mut().enumerate().filter(|(_, at)| **at != SKIP) {
                if valid(i) {
                    data[*at] = 1;
                    data[*at + 1] = u8::from(values.value(i));
                    *at += 2;
                } else {
                    data[*at] = 0;
                    *at += 1;
                }
            }
        }
        t if byte_like(t) => {
            let bytes = Bytes::new(array);
            for (i, at) in cursors.iter_mut().enumerate().filter(|(_, at)| **at != SKIP) {
                if valid(i) {
                    let value = bytes.value(i);
                    data[*at] = 1;
                    *at += 1;
                    put_varint(data, at, value.len());
                    data[*at..*at + value.len()].copy_from_slice(value);
                    *at += value.len();
                } else {
                    data[*at] = 0;
                    *at += 1;
                }
            }
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let values = list_values(array);
            let child_lens = lengths(values.as_ref());
            let mut child = vec![SKIP; values.len()];
            for (i, at) in cursors.iter_mut().enumerate().filter(|(_, at)| **at != SKIP) {
                if !valid(i) {
                    data[*at] = 0;
                    *at += 1;
                    continue;
                }
                let (from, to) = list_range(array, i);
                data[*at] = 1;
                *at += 1;
                put_varint(data, at, to - from);
                for j in from..to {
                    child[j] = *at;
                    *at += child_lens[j];
                }
            }
            write(values.as_ref(), &mut child, data);
        }
        DataType::Struct(_) => {
            let mut fields: Vec<usize> = Vec::with_capacity(cursors.len());
            for (i, at) in cursors.iter_mut().enumerate() {
                if *at == SKIP {
                    fields.push(SKIP);
                    continue;
                }
                data[*at] = u8::from(valid(i));
                *at += 1;
                fields.push(if valid(i) { *at } else { SKIP });
            }
            for column in array.as_struct().columns() {
                write(column.as_ref(), &mut fields, data);
            }
            // the fields moved their cursors past what they wrote
            for (at, end) in cursors.iter_mut().zip(&fields) {
                if *end != SKIP {
                    *at = *end;
                }
            }
        }
        t => {
            let width = t.primitive_width().expect("a compact type");
            let array_data = array.to_data();
            let bytes = &array_data.buffers()[0].as_slice()[array_data.offset() * width..];
            for (i, at) in cursors.iter_mut().enumerate().filter(|(_, at)| **at != SKIP) {
                if valid(i) {
                    data[*at] = 1;
                    data[*at + 1..*at + 1 + width]
                        .copy_from_slice(&bytes[i * width..(i + 1) * width]);
                    *at += 1 + width;
                } else {
                    data[*at] = 0;
                    *at += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use arrow::array::{
        BooleanArray, Float64Array, Int64Array, ListBuilder, StringArray, StringBuilder,
        StringViewArray, StructArray,
    };
    use arrow::datatypes::{Field, Fields};

    use super::*;

    fn rows(columns: &[ArrayRef]) -> Vec<Vec<u8>> {
        let types = columns.iter().map(|c| c.data_type().clone()).collect();
        let mut encoder = KeyEncoder::new(types).unwrap();
        assert!(encoder.rows.is_none(), "compact");
        let keys = encoder.encode(columns, None).unwrap();
        (0..columns[0].len()).map(|i| keys.row(i).to_vec()).collect()
    }

    /// Equal bytes exactly for equal keys, whatever sits next to a value: nulls, empty
    /// strings and lists, values that would run into the next column's.
    #[test]
    fn equal_bytes_for_equal_keys_only() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("ab"),
            Some("a"),
            Some(""),
            None,
            Some("ab"),
            Some("é ü"),
            Some("a"),
        ]));
        let b: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("c"),
            Some("bc"),
            None,
            Some(""),
            Some("c"),
            Some("日本"),
            Some("bc"),
        ]));
        let n: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(1),
            Some(1),
            None,
            Some(0),
            Some(1),
            None,
            Some(2),
        ]));
        let r = rows(&[a, b, n]);
        assert_eq!(r[0], r[4], "same key, same bytes");
        let distinct: HashSet<&Vec<u8>> = r.iter().collect();
        assert_eq!(distinct.len(), 6, "('ab','c') vs ('a','bc'), null vs '' all differ");
    }

    #[test]
    fn lists_structs_floats_and_booleans() {
        let mut lists = ListBuilder::new(StringBuilder::new());
        for value in
            [Some(vec!["a", "b"]), Some(vec!["ab"]), None, Some(vec![]), Some(vec!["a", "b"])]
        {
            match value {
                Some(v) => {
                    for s in v {
                        lists.values().append_value(s);
                    }
                    lists.append(true);
                }
                None => lists.append(false),
            }
        }
        let lists: ArrayRef = Arc::new(lists.finish());
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(0.0),
            Some(-0.0),
            Some(f64::NAN),
            None,
            Some(0.0),
        ]));
        let flags: ArrayRef = Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(true),
            None,
            Some(false),
            Some(true),
        ]));
        let fields = Fields::from(vec![
            Field::new("x", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]);
        let structs: ArrayRef = Arc::new(StructArray::new(
            fields,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(1), Some(7), None, Some(1)])),
                Arc::new(StringArray::from(vec![Some("s"), Some("s"), Some("t"), None, Some("s")])),
            ],
            Some(vec![true, true, false, true, true].into()),
        ));
        let r = rows(&[lists, floats, flags, structs]);
        assert_eq!(r[0], r[4]);
        assert_eq!(
            r.iter().collect::<HashSet<_>>().len(),
            4,
            "[a,b] vs [ab], 0.0 vs -0.0, null vs []"
        );
    }

    /// A row holds its values' bytes and nothing more: a null is its tag alone.
    #[test]
    fn rows_hold_exactly_their_values() {
        let flags: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), None]));
        let names: ArrayRef = Arc::new(StringArray::from(vec![Some("ab"), None]));
        let r = rows(&[flags, names]);
        assert_eq!(r[0], vec![1, 1, 1, 2, b'a', b'b']);
        assert_eq!(r[1], vec![0, 0]);
    }

    /// The same keys encoded from a slice and from the whole array.
    #[test]
    fn slices_encode_like_the_whole() {
        let mut lists = ListBuilder::new(StringBuilder::new());
        for i in 0..6 {
            for j in 0..i {
                lists.values().append_value(format!("v{j}"));
            }
            lists.append(i != 3);
        }
        let lists: ArrayRef = Arc::new(lists.finish());
        let ints: ArrayRef = Arc::new(Int64Array::from((0..6).map(Some).collect::<Vec<_>>()));
        let whole = rows(&[Arc::clone(&lists), Arc::clone(&ints)]);
        let part = rows(&[lists.slice(2, 3), ints.slice(2, 3)]);
        assert_eq!(part, whole[2..5].to_vec());
    }

    #[test]
    fn other_types_keep_arrow_row() {
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let encoder = KeyEncoder::new(vec![dict]).unwrap();
        assert!(encoder.rows.is_some());
    }
}
