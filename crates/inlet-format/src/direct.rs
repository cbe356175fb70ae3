//! The fast path's decoder: JSON records that fit the schema as written go straight into
//! Arrow columns, checked and built in one pass over their bytes (no tape, no second parse).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
    Int8Array, ListArray, NullArray, StringArray, StructArray,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, FieldRef, Fields, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::shape::{Name, Scan};

/// One column being built. Every kind keeps a value slot for a null row, so its length is
/// its row count and a record that turns out not to fit is undone by truncating.
enum Col {
    Str {
        offsets: Vec<i32>,
        data: Vec<u8>,
        valid: Vec<bool>,
    },
    Bool {
        values: Vec<bool>,
        valid: Vec<bool>,
    },
    Int {
        dtype: DataType,
        min: i64,
        max: i64,
        values: Vec<i64>,
        valid: Vec<bool>,
    },
    Float {
        single: bool,
        values: Vec<f64>,
        valid: Vec<bool>,
    },
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        valid: Vec<bool>,
        item: Box<Col>,
    },
    Struct {
        fields: Fields,
        names: Vec<Name>,
        cols: Vec<Col>,
        valid: Vec<bool>,
    },
    /// A column only ever seen as null.
    Null {
        len: usize,
    },
}

impl Col {
    /// The builder for `dtype`; `None` for a type this decoder leaves to arrow-json (the
    /// file then takes the tape decoder, as before).
    fn of(dtype: &DataType, nullable: bool) -> Option<Self> {
        use DataType::*;
        // Arrow's decoder refuses a null in a non-nullable column; this one leaves them be.
        if !nullable {
            return None;
        }
        let int = |min: i64, max: i64| Col::Int {
            dtype: dtype.clone(),
            min,
            max,
            values: Vec::new(),
            valid: Vec::new(),
        };
        Some(match dtype {
            Utf8 => Col::Str {
                offsets: vec![0],
                data: Vec::new(),
                valid: Vec::new(),
            },
            Boolean => Col::Bool {
                values: Vec::new(),
                valid: Vec::new(),
            },
            Int8 => int(i8::MIN.into(), i8::MAX.into()),
            Int16 => int(i16::MIN.into(), i16::MAX.into()),
            Int32 => int(i32::MIN.into(), i32::MAX.into()),
            Int64 => int(i64::MIN, i64::MAX),
            Float32 | Float64 => Col::Float {
                single: matches!(dtype, Float32),
                values: Vec::new(),
                valid: Vec::new(),
            },
            List(field) => Col::List {
                field: field.clone(),
                offsets: vec![0],
                valid: Vec::new(),
                item: Box::new(Col::of(field.data_type(), field.is_nullable())?),
            },
            Struct(fields) => Col::Struct {
                fields: fields.clone(),
                names: fields.iter().map(|f| Name::new(f.name())).collect(),
                cols: fields
                    .iter()
                    .map(|f| Col::of(f.data_type(), f.is_nullable()))
                    .collect::<Option<_>>()?,
                valid: Vec::new(),
            },
            Null => Col::Null { len: 0 },
            _ => return None,
        })
    }

    fn len(&self) -> usize {
        match self {
            Col::Str { valid, .. }
            | Col::Bool { valid, .. }
            | Col::Int { valid, .. }
            | Col::Float { valid, .. }
            | Col::List { valid, .. }
            | Col::Struct { valid, .. } => valid.len(),
            Col::Null { len } => *len,
        }
    }

    fn push_null(&mut self) {
        match self {
            Col::Str { offsets, valid, .. } | Col::List { offsets, valid, .. } => {
                offsets.push(offsets.last().copied().unwrap_or(0));
                valid.push(false);
            }
            Col::Bool { values, valid } => {
                values.push(false);
                valid.push(false);
            }
            Col::Int { values, valid, .. } => {
                values.push(0);
                valid.push(false);
            }
            Col::Float { values, valid, .. } => {
                values.push(0.0);
                valid.push(false);
            }
            Col::Struct { cols, valid, .. } => {
                cols.iter_mut().for_each(Col::push_null);
                valid.push(false);
            }
            Col::Null { len } => *len += 1,
        }
    }

    /// Drops every row from `rows` on.
    fn truncate(&mut self, rows: usize) {
        match self {
            Col::Str {
                offsets,
                data,
                valid,
            } => {
                offsets.truncate(rows + 1);
                data.truncate(offsets.last().map_or(0, |&o| o as usize));
                valid.truncate(rows);
            }
            Col::List {
                offsets,
                valid,
                item,
                ..
            } => {
                offsets.truncate(rows + 1);
                item.truncate(offsets.last().map_or(0, |&o| o as usize));
                valid.truncate(rows);
            }
            Col::Bool { values, valid } => {
                values.truncate(rows);
                valid.truncate(rows);
            }
            Col::Int { values, valid, .. } => {
                values.truncate(rows);
                valid.truncate(rows);
            }
            Col::Float { values, valid, .. } => {
                values.truncate(rows);
                valid.truncate(rows);
            }
            Col::Struct { cols, valid, .. } => {
                cols.iter_mut().for_each(|c| c.truncate(rows));
                valid.truncate(rows);
            }
            Col::Null { len } => *len = (*len).min(rows),
        }
    }

    /// One value at the scan's cursor into this column; `None` when it does not fit as
    /// written (the same answer as `Shape::accepts`).
    fn value(&mut self, scan: &mut Scan<'_>) -> Option<()> {
        scan.ws();
        let first = scan.peek()?;
        if first == b'n' {
            scan.literal(b"null")?;
            self.push_null();
            return Some(());
        }
        match self {
            Col::Bool { values, valid } => {
                match first {
                    b't' => scan.literal(b"true").map(|()| values.push(true))?,
                    b'f' => scan.literal(b"false").map(|()| values.push(false))?,
                    _ => return None,
                }
                valid.push(true);
            }
            Col::Str {
                offsets,
                data,
                valid,
            } => {
                if first != b'"' {
                    return None;
                }
                let (raw, escaped) = scan.string()?;
                if escaped {
                    unescape(raw, data)?;
                } else {
                    data.extend_from_slice(raw);
                }
                offsets.push(i32::try_from(data.len()).ok()?);
                valid.push(true);
            }
            Col::Int {
                min,
                max,
                values,
                valid,
                ..
            } => {
                if !matches!(first, b'-' | b'0'..=b'9') {
                    return None;
                }
                values.push(scan.number()?.int(*min, *max)?);
                valid.push(true);
            }
            Col::Float {
                single,
                values,
                valid,
            } => {
                if !matches!(first, b'-' | b'0'..=b'9') {
                    return None;
                }
                let text = std::str::from_utf8(scan.number()?.text).ok()?;
                // Parsed at the column's own width, as arrow-json does: an f32 read through
                // an f64 could round twice.
                let v = if *single {
                    f64::from(text.parse::<f32>().ok()?)
                } else {
                    text.parse::<f64>().ok()?
                };
                values.push(v);
                valid.push(true);
            }
            Col::List {
                offsets,
                valid,
                item,
                ..
            } => {
                if first != b'[' {
                    return None;
                }
                scan.items(|scan| item.value(scan))?;
                offsets.push(i32::try_from(item.len()).ok()?);
                valid.push(true);
            }
            Col::Struct {
                names, cols, valid, ..
            } => {
                if first != b'{' {
                    return None;
                }
                members(scan, names, cols, valid.len())?;
                valid.push(true);
            }
            Col::Null { .. } => return None,
        }
        Some(())
    }

    /// The column's rows as an array, leaving it empty (with its capacity) for the next.
    fn finish(&mut self) -> Result<ArrayRef, String> {
        let rows = self.len();
        let err = |e: arrow::error::ArrowError| e.to_string();
        Ok(match self {
            Col::Str {
                offsets,
                data,
                valid,
            } => {
                let (capacity, data_capacity) = (offsets.capacity(), data.capacity());
                let offsets = std::mem::replace(offsets, Vec::with_capacity(capacity));
                let data = std::mem::replace(data, Vec::with_capacity(data_capacity));
                let array = StringArray::try_new(
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    Buffer::from_vec(data),
                    nulls(valid),
                )
                .map_err(err)?;
                self.reset_offsets();
                Arc::new(array)
            }
            Col::Bool { values, valid } => {
                let array = BooleanArray::new(BooleanBuffer::from(values.as_slice()), nulls(valid));
                values.clear();
                Arc::new(array)
            }
            Col::Int {
                dtype,
                values,
                valid,
                ..
            } => {
                let nulls = nulls(valid);
                // The scan checked each value against the column's range.
                let array: ArrayRef = match dtype {
                    DataType::Int8 => Arc::new(Int8Array::new(
                        values.iter().map(|&v| v as i8).collect(),
                        nulls,
                    )),
                    DataType::Int16 => Arc::new(Int16Array::new(
                        values.iter().map(|&v| v as i16).collect(),
                        nulls,
                    )),
                    DataType::Int32 => Arc::new(Int32Array::new(
                        values.iter().map(|&v| v as i32).collect(),
                        nulls,
                    )),
                    _ => Arc::new(Int64Array::new(
                        ScalarBuffer::from(values.as_slice().to_vec()),
                        nulls,
                    )),
                };
                values.clear();
                array
            }
            Col::Float {
                single,
                values,
                valid,
            } => {
                let nulls = nulls(valid);
                let array: ArrayRef = if *single {
                    // Each value was an f32 to begin with: exact.
                    Arc::new(Float32Array::new(
                        values.iter().map(|&v| v as f32).collect(),
                        nulls,
                    ))
                } else {
                    Arc::new(Float64Array::new(
                        ScalarBuffer::from(values.as_slice().to_vec()),
                        nulls,
                    ))
                };
                values.clear();
                array
            }
            Col::List {
                field,
                offsets,
                valid,
                item,
            } => {
                let array = ListArray::try_new(
                    field.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offsets.as_slice().to_vec())),
                    item.finish()?,
                    nulls(valid),
                )
                .map_err(err)?;
                self.reset_offsets();
                Arc::new(array)
            }
            Col::Struct {
                fields,
                cols,
                valid,
                ..
            } => {
                let children = cols
                    .iter_mut()
                    .map(Col::finish)
                    .collect::<Result<Vec<_>, _>>()?;
                let array = if fields.is_empty() {
                    StructArray::new_empty_fields(rows, nulls(valid))
                } else {
                    StructArray::try_new(fields.clone(), children, nulls(valid)).map_err(err)?
                };
                valid.clear();
                Arc::new(array)
            }
            Col::Null { len } => {
                let array = NullArray::new(*len);
                *len = 0;
                Arc::new(array)
            }
        })
    }

    /// After `finish`: offsets start again at 0, validity empty.
    fn reset_offsets(&mut self) {
        if let Col::Str { offsets, valid, .. } | Col::List { offsets, valid, .. } = self {
            offsets.clear();
            offsets.push(0);
            valid.clear();
        }
    }
}

/// An object's members into `cols` (the record or a struct column holding `rows` rows);
/// fields it does not name are null.
fn members(scan: &mut Scan<'_>, names: &[Name], cols: &mut [Col], rows: usize) -> Option<()> {
    scan.members(names, |scan, at| cols.get_mut(at)?.value(scan))?;
    for col in cols.iter_mut().filter(|c| c.len() == rows) {
        col.push_null();
    }
    Some(())
}

/// The validity of `valid` as a null buffer; `None` when every row is valid. Leaves it empty.
fn nulls(valid: &mut Vec<bool>) -> Option<NullBuffer> {
    let buffer = valid
        .contains(&false)
        .then(|| NullBuffer::from(valid.as_slice()));
    valid.clear();
    buffer
}

/// A JSON string's escaped text (between its quotes) as UTF-8 onto `out`. The scan has
/// checked every escape, and let no surrogate through.
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut i = 0;
    while let Some(at) = raw[i..].iter().position(|&c| c == b'\\') {
        out.extend_from_slice(&raw[i..i + at]);
        i += at + 1;
        let c = *raw.get(i)?;
        i += 1;
        let byte = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hex = std::str::from_utf8(raw.get(i..i + 4)?).ok()?;
                let ch = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                i += 4;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            _ => return None,
        };
        out.push(byte);
    }
    out.extend_from_slice(&raw[i..]);
    Some(())
}

/// Rows of one schema built straight from JSON records (see the module docs).
pub(crate) struct Direct {
    schema: SchemaRef,
    /// The rescued data column's index: null in every row decoded here.
    rescued: Option<usize>,
    names: Vec<Name>,
    cols: Vec<Col>,
    rows: usize,
}

impl Direct {
    /// A decoder for `schema`, or `None` when a column's type is one it does not build.
    pub fn new(schema: &SchemaRef, rescued: Option<&str>) -> Option<Self> {
        let rescued = rescued.and_then(|name| schema.index_of(name).ok());
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != rescued)
            .map(|(_, f)| f)
            .collect();
        Some(Self {
            schema: schema.clone(),
            rescued,
            names: fields.iter().map(|f| Name::new(f.name())).collect(),
            cols: fields
                .iter()
                .map(|f| Col::of(f.data_type(), f.is_nullable()))
                .collect::<Option<_>>()?,
            rows: 0,
        })
    }

    /// Takes `raw` as one row when it is one JSON object that fits the schema as written
    /// (exactly when `Shape::accepts` would); false, with nothing kept, when it does not.
    pub fn push(&mut self, raw: &str) -> bool {
        let mut scan = Scan::new(raw);
        scan.ws();
        let fits = scan.peek() == Some(b'{')
            && members(&mut scan, &self.names, &mut self.cols, self.rows).is_some()
            && scan.at_end();
        if fits {
            self.rows += 1;
        } else {
            let rows = self.rows;
            self.cols.iter_mut().for_each(|c| c.truncate(rows));
        }
        fits
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    /// The rows taken so far as one batch (`None` when there are none), starting afresh.
    pub fn flush(&mut self) -> Result<Option<RecordBatch>, String> {
        if self.rows == 0 {
            return Ok(None);
        }
        let mut columns = self
            .cols
            .iter_mut()
            .map(Col::finish)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(at) = self.rescued {
            let dtype = self.schema.field(at).data_type();
            columns.insert(at, arrow::array::new_null_array(dtype, self.rows));
        }
        // The row count is given: a schema of no columns (records `{}`) still has rows.
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Shape;
    use crate::testing::{mixed_schema, random_records, with_mutations, RESCUED};
    use crate::testing::{MIXED_KEYS, MIXED_VALUES};
    use arrow::datatypes::{Field, Schema};

    /// What arrow-json's tape decoder makes of `lines`, in one batch.
    fn tape(schema: &SchemaRef, lines: &[String]) -> RecordBatch {
        let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
            .with_batch_size(lines.len().max(1))
            .build_decoder()
            .expect("decoder");
        for line in lines {
            decoder
                .decode(line.as_bytes())
                .expect("arrow-json decodes a fitting line");
        }
        decoder.flush().expect("flush").expect("rows")
    }

    #[test]
    fn builds_what_arrow_json_decodes_from_exactly_the_records_the_scan_accepts() {
        let mut fields = mixed_schema().fields().to_vec();
        fields.insert(3, Arc::new(Field::new(RESCUED, DataType::Utf8, true)));
        let schema = Arc::new(Schema::new(fields));
        let shape = Shape::of_schema(&schema, Some(RESCUED));
        let mut direct = Direct::new(&schema, Some(RESCUED)).expect("every kind is built");
        let (mut taken, mut batches) = (Vec::new(), Vec::new());
        let records = random_records(11, &MIXED_KEYS, &MIXED_VALUES, 6, 40_000);
        for raw in with_mutations(records) {
            let took = direct.push(&raw);
            assert_eq!(
                took,
                shape.accepts(&raw),
                "the decoder and the scan disagree: {raw}"
            );
            if took {
                taken.push(raw);
            }
            // Batches end now and then, so columns are reused after a flush.
            if direct.len() == 997 {
                batches.extend(direct.flush().expect("flush"));
            }
        }
        batches.extend(direct.flush().expect("flush"));
        let got = arrow::compute::concat_batches(&schema, &batches).expect("concat");
        // Not vacuous: thousands of records fit, of every column.
        assert!(taken.len() > 5_000, "{} taken", taken.len());
        let want = tape(&schema, &taken);
        assert_eq!(got.num_rows(), want.num_rows());
        // Every column but the rescued one and the one only ever null.
        for (c, field) in schema.fields().iter().enumerate() {
            if field.name() == RESCUED || field.data_type() == &DataType::Null {
                continue;
            }
            assert!(
                got.column(c).null_count() < got.num_rows(),
                "column {} is never set",
                field.name()
            );
        }
        for (row, raw) in taken.iter().enumerate() {
            assert_eq!(got.slice(row, 1), want.slice(row, 1), "row of {raw}");
        }
    }

    #[test]
    fn records_of_a_schema_without_columns_are_rows_as_arrow_json_makes_them() {
        let schema = Arc::new(Schema::empty());
        let mut direct = Direct::new(&schema, None).expect("no column to refuse");
        let lines: Vec<String> = (0..3).map(|_| "{}".to_string()).collect();
        for line in &lines {
            assert!(direct.push(line));
        }
        assert!(
            !direct.push(r#"{"a":1}"#),
            "an unknown key is the fitting path's"
        );
        let got = direct
            .flush()
            .expect("a batch of no columns")
            .expect("rows");
        assert_eq!(got.num_rows(), 3);
        assert_eq!(got, tape(&schema, &lines));
    }

    #[test]
    fn types_it_does_not_build_leave_the_schema_to_the_tape_decoder() {
        for dtype in [
            DataType::LargeUtf8,
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            DataType::Decimal128(10, 2),
        ] {
            let schema = Arc::new(Schema::new(vec![Field::new("x", dtype, true)]));
            assert!(Direct::new(&schema, None).is_none());
        }
        let strict = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, false)]));
        assert!(Direct::new(&strict, None).is_none());
    }
}
