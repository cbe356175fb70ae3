//! Parquet: the schema from the footer (types normalised to what the table keeps), and
//! columns cast to the table's types; a value that cannot be cast without loss is rescued.

use arrow::datatypes::{Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use crate::column_types::table_columns;
use crate::columnar::decode_batches;
use crate::decoded::{Decoded, BATCH_ROWS};
use crate::error::FormatError;
use crate::options::DecodeOptions;

fn bad_file(path: &str, detail: impl std::fmt::Display) -> FormatError {
    FormatError::Decode {
        path: path.to_string(),
        line: 0,
        detail: format!("not a readable Parquet file: {detail}"),
    }
}

/// The reader of the file at `path`. A file whose embedded Arrow schema cannot be read
/// (arrow-rs and pyarrow write one; its flatbuffer verifier refuses deeply nested schemas,
/// as the 100-level test file) is read by its Parquet schema alone, as Spark's files are.
fn reader(path: &str, data: &Bytes) -> Result<ParquetRecordBatchReaderBuilder<Bytes>, FormatError> {
    ParquetRecordBatchReaderBuilder::try_new(data.clone()).or_else(|first| {
        let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        ParquetRecordBatchReaderBuilder::try_new_with_options(data.clone(), options)
            .map_err(|_| bad_file(path, first))
    })
}

/// The columns of the file's footer, with the types the table would keep (`table_columns`).
pub(crate) fn footer_schema(path: &str, data: &Bytes) -> Result<Schema, FormatError> {
    Ok(table_columns(reader(path, data)?.schema()))
}

/// Decodes a Parquet file into batches of `schema`.
pub(crate) fn decode(
    path: &str,
    data: &Bytes,
    schema: &SchemaRef,
    opts: &DecodeOptions<'_>,
) -> Result<Decoded, FormatError> {
    let builder = reader(path, data)?;
    let file_schema = builder.schema().clone();
    let batches = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| bad_file(path, e))?
        .map(|batch| batch.map_err(|e| bad_file(path, e)));
    decode_batches(path, &file_schema, batches, schema, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column_types::nesting;
    use crate::{CsvOptions, Format, NumberMode};
    use arrow::array::{
        Array, ArrayRef, AsArray, Float64Array, Int32Array, StringArray, StructArray,
    };
    use arrow::datatypes::{DataType, Field, Fields, Int32Type, Int64Type};
    use arrow::record_batch::RecordBatch;
    use inlet_schema::{EvolutionMode, MAX_NESTING};
    use serde_json::Value;
    use std::sync::Arc;

    fn parquet_bytes(batch: &RecordBatch) -> Bytes {
        let mut out = Vec::new();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
        w.write(batch).expect("write");
        w.close().expect("close");
        Bytes::from(out)
    }

    #[test]
    fn columns_are_cast_and_what_cannot_be_is_rescued() {
        let file = RecordBatch::try_from_iter([
            ("id", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(1.5), None])) as ArrayRef,
            ),
            (
                "extra",
                Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
            ),
        ])
        .expect("batch");
        let data = parquet_bytes(&file);
        let footer = footer_schema("f.parquet", &data).expect("footer");
        assert_eq!(footer.field(0).data_type(), &DataType::Int64);
        // The table has x as BIGINT: 1.5 cannot be kept there, so it is rescued.
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("x", DataType::Int64, true),
            Field::new("_rescued_data", DataType::Utf8, true),
        ]));
        let csv = CsvOptions::default();
        let mut opts = DecodeOptions {
            format: Format::Parquet,
            numbers: NumberMode::Auto,
            multiline: false,
            export_time_micros: None,
            csv: &csv,
            mode: EvolutionMode::AddNewColumns,
            rescued_column: Some("_rescued_data"),
            infer_types: true,
            hints: &[],
            partition_columns: &[],
            known_to_fit: false,
        };
        let Decoded::NewColumns(new) =
            decode("s3://b/f.parquet", &data, &schema, &opts).expect("decode")
        else {
            panic!("extra is new");
        };
        assert_eq!(new, vec![Field::new("extra", DataType::Utf8, true)]);
        opts.mode = EvolutionMode::Rescue;
        let Decoded::Rows {
            batches,
            rescued_rows,
            ..
        } = decode("s3://b/f.parquet", &data, &schema, &opts).expect("decode")
        else {
            panic!("rows");
        };
        let b = &batches[0];
        assert_eq!(
            b.column(0).as_primitive::<Int64Type>().values().to_vec(),
            vec![1, 2]
        );
        assert!(b.column(1).is_null(0));
        let rescued: Vec<Value> = b
            .column(2)
            .as_string::<i32>()
            .iter()
            .map(|t| serde_json::from_str(t.expect("text")).expect("json"))
            .collect();
        assert_eq!(
            rescued[0],
            serde_json::json!({"x": 1.5, "extra": "a", "_file_path": "s3://b/f.parquet"})
        );
        assert_eq!(
            rescued[1],
            serde_json::json!({"extra": "b", "_file_path": "s3://b/f.parquet"})
        );
        assert_eq!(rescued_rows, 2);
    }

    fn opts_for(csv: &CsvOptions, mode: EvolutionMode) -> DecodeOptions<'_> {
        DecodeOptions {
            csv,
            ..crate::testing::options(Format::Parquet, mode)
        }
    }

    fn decoded_rows(d: Decoded) -> RecordBatch {
        match d {
            Decoded::Rows { batches, .. } => {
                arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat")
            }
            Decoded::NewColumns(f) => panic!("new columns {f:?}"),
        }
    }

    /// A one-row column of `levels` structs (field `c`) or lists around the number 1, and the
    /// same value as JSON.
    fn nested_column(levels: usize, lists: bool) -> (ArrayRef, Value) {
        let mut a: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![1]));
        let mut v = serde_json::json!(1);
        for _ in 0..levels {
            let field = Field::new(
                if lists { "item" } else { "c" },
                a.data_type().clone(),
                true,
            );
            a = if lists {
                Arc::new(
                    arrow::array::ListArray::try_new(
                        Arc::new(field),
                        arrow::buffer::OffsetBuffer::from_lengths([1]),
                        a,
                        None,
                    )
                    .expect("list"),
                )
            } else {
                Arc::new(
                    StructArray::try_new(Fields::from(vec![field]), vec![a], None).expect("struct"),
                )
            };
            v = if lists {
                serde_json::json!([v])
            } else {
                serde_json::json!({ "c": v })
            };
        }
        (a, v)
    }

    #[test]
    fn columns_nested_deeper_than_the_limit_become_their_json_text() {
        let csv = CsvOptions::default();
        for lists in [false, true] {
            for levels in [31, 32, 33, 42, 100] {
                let (column, value) = nested_column(levels, lists);
                let file = RecordBatch::try_from_iter([("c", column.clone())]).expect("batch");
                let data = parquet_bytes(&file);
                let footer = footer_schema("f.parquet", &data).expect("footer");
                // The table can be made: its schema reads back under serde_json's limit.
                let stored = inlet_schema::to_json(&footer);
                assert_eq!(inlet_schema::from_json(&stored).ok(), Some(footer.clone()));
                let dtype = footer.field(0).data_type();
                if levels <= MAX_NESTING {
                    assert_eq!(nesting(dtype), levels);
                } else {
                    assert_eq!(dtype, &DataType::Utf8, "{levels} levels");
                }
                let o = opts_for(&csv, EvolutionMode::AddNewColumns);
                // A table without the column gets it with the same type.
                let empty = Arc::new(inlet_schema::with_rescued_column(
                    &Schema::empty(),
                    Some("_rescued_data"),
                ));
                let Decoded::NewColumns(new) =
                    decode("f.parquet", &data, &empty, &o).expect("decode")
                else {
                    panic!("c is new");
                };
                assert_eq!(
                    new,
                    footer
                        .fields()
                        .iter()
                        .map(|f| f.as_ref().clone())
                        .collect::<Vec<_>>()
                );
                let schema = Arc::new(inlet_schema::with_rescued_column(
                    &footer,
                    Some("_rescued_data"),
                ));
                let batch = decoded_rows(decode("f.parquet", &data, &schema, &o).expect("decode"));
                assert!(batch.column(1).is_null(0), "nothing rescued");
                if levels > MAX_NESTING {
                    let text = batch.column(0).as_string::<i32>().value(0);
                    let back: Value = serde_json::from_str(text).expect("json");
                    assert_eq!(back, value, "{levels} levels");
                } else {
                    assert_eq!(batch.column(0).data_type(), dtype);
                }
            }
        }
    }

    /// Samples the Parquet files `files` apart and merges them, as the first batch does,
    /// then appends the rescued data column.
    fn sampled(files: &[&Bytes], o: &DecodeOptions<'_>) -> SchemaRef {
        let mut sample = crate::SchemaSample::new(true);
        for bytes in files {
            let mut one = crate::SchemaSample::new(true);
            one.add("f.parquet", bytes, o).expect("sample");
            sample.merge(one);
        }
        Arc::new(inlet_schema::with_rescued_column(
            &sample.schema(),
            Some("_rescued_data"),
        ))
    }

    fn names(schema: &Schema) -> Vec<&str> {
        schema.fields().iter().map(|f| f.name().as_str()).collect()
    }

    #[test]
    fn footers_with_names_equal_but_for_case_make_one_column() {
        let column = |name: &str, v: i32| {
            parquet_bytes(
                &RecordBatch::try_from_iter([(
                    name,
                    Arc::new(Int32Array::from(vec![v])) as ArrayRef,
                )])
                .expect("batch"),
            )
        };
        let (first, second, third) = (column("Qq", 1), column("qQ", 2), column("äx", 3));
        let nested = parquet_bytes(
            &RecordBatch::try_from_iter([(
                "s",
                Arc::new(
                    StructArray::try_from(vec![
                        ("Ab", Arc::new(Int32Array::from(vec![4])) as ArrayRef),
                        ("aB", Arc::new(Int32Array::from(vec![5])) as ArrayRef),
                    ])
                    .expect("struct"),
                ) as ArrayRef,
            )])
            .expect("batch"),
        );
        let csv = CsvOptions::default();
        let o = opts_for(&csv, EvolutionMode::AddNewColumns);
        let schema = sampled(&[&first, &second, &column("ÄX", 0), &third, &nested], &o);
        assert_eq!(names(&schema), vec!["Qq", "ÄX", "s", "_rescued_data"]);
        assert_eq!(
            schema.field(2).data_type(),
            &DataType::Struct(vec![Field::new("Ab", DataType::Int64, true)].into())
        );
        for (data, rescued) in [
            (&second, "{\"_file_path\":\"f.parquet\",\"qQ\":2}"),
            (&third, "{\"_file_path\":\"f.parquet\",\"äx\":3}"),
            (
                &nested,
                "{\"_file_path\":\"f.parquet\",\"s\":{\"Ab\":4,\"aB\":5}}",
            ),
        ] {
            let batch = decoded_rows(decode("f.parquet", data, &schema, &o).expect("decode"));
            assert_eq!(batch.column(3).as_string::<i32>().value(0), rescued);
        }
    }

    #[test]
    fn a_file_column_named_like_the_rescued_column_is_rescued_under_its_name() {
        let file = RecordBatch::try_from_iter([
            ("a", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
            (
                "_rescued_data",
                Arc::new(Int32Array::from(vec![Some(5), None])) as ArrayRef,
            ),
        ])
        .expect("batch");
        let data = parquet_bytes(&file);
        let csv = CsvOptions::default();
        let schema = sampled(&[&data], &opts_for(&csv, EvolutionMode::AddNewColumns));
        assert_eq!(names(&schema), vec!["a", "_rescued_data"]);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        for mode in [EvolutionMode::AddNewColumns, EvolutionMode::None] {
            let batch = decoded_rows(
                decode("f.parquet", &data, &schema, &opts_for(&csv, mode)).expect("decode"),
            );
            let rescued: Vec<Option<&str>> = batch.column(1).as_string::<i32>().iter().collect();
            assert_eq!(
                rescued,
                vec![
                    Some("{\"_file_path\":\"f.parquet\",\"_rescued_data\":5}"),
                    None
                ],
                "{mode:?}"
            );
        }
    }

    #[test]
    fn a_map_column_reads_into_the_map_type_delta_gives_back() {
        let mut builder = arrow::array::MapBuilder::new(
            None,
            arrow::array::StringBuilder::new(),
            arrow::array::Int32Builder::new(),
        );
        builder.keys().append_value("a");
        builder.values().append_value(1);
        builder.append(true).expect("entry");
        builder.append(false).expect("null map");
        let file = RecordBatch::try_from_iter([("m", Arc::new(builder.finish()) as ArrayRef)])
            .expect("batch");
        let data = parquet_bytes(&file);
        let footer = footer_schema("f.parquet", &data).expect("footer");
        // As the table reads back from Delta: entries `key_value`, integers BIGINT.
        let table_map = DataType::Map(
            Arc::new(Field::new(
                "key_value",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", DataType::Int64, true),
                ])),
                false,
            )),
            false,
        );
        assert_eq!(footer.field(0).data_type(), &table_map);
        let csv = CsvOptions::default();
        let schema = Arc::new(inlet_schema::with_rescued_column(
            &footer,
            Some("_rescued_data"),
        ));
        let batch = decoded_rows(
            decode(
                "f.parquet",
                &data,
                &schema,
                &opts_for(&csv, EvolutionMode::AddNewColumns),
            )
            .expect("decode"),
        );
        assert_eq!(batch.column(0).data_type(), &table_map);
        let map = batch.column(0).as_map();
        assert_eq!(
            map.value(0).column(1).as_primitive::<Int64Type>().value(0),
            1
        );
        assert!(map.is_null(1));
        assert_eq!(batch.column(1).null_count(), 2, "nothing rescued");
    }

    #[test]
    fn lists_convert_element_by_element_and_a_list_that_cannot_is_rescued_whole() {
        // A list of structs of 32-bit integers: the table keeps BIGINT inside.
        let inner = Fields::from(vec![Field::new("a", DataType::Int32, true)]);
        let structs = StructArray::try_new(
            inner.clone(),
            vec![Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef],
            None,
        )
        .expect("structs");
        let lists = arrow::array::ListArray::try_new(
            Arc::new(Field::new("item", DataType::Struct(inner), true)),
            arrow::buffer::OffsetBuffer::from_lengths([2, 1]),
            Arc::new(structs),
            None,
        )
        .expect("lists");
        let texts = arrow::array::ListArray::from_iter_primitive::<Int32Type, _, _>([
            Some(vec![Some(1)]),
            Some(vec![Some(2)]),
        ]);
        let file = RecordBatch::try_from_iter([
            ("l", Arc::new(lists) as ArrayRef),
            ("t", Arc::new(texts) as ArrayRef),
        ])
        .expect("batch");
        let data = parquet_bytes(&file);
        let footer = footer_schema("f.parquet", &data).expect("footer");
        let csv = CsvOptions::default();
        let o = opts_for(&csv, EvolutionMode::AddNewColumns);
        // The table has `t` as a list of booleans: no integer converts, so each non-empty
        // list is rescued whole and left null.
        let mut fields: Vec<Field> = footer.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[1] = Field::new(
            "t",
            DataType::List(Arc::new(Field::new("element", DataType::Boolean, true))),
            true,
        );
        let schema = Arc::new(inlet_schema::with_rescued_column(
            &Schema::new(fields),
            Some("_rescued_data"),
        ));
        let batch = decoded_rows(decode("f.parquet", &data, &schema, &o).expect("decode"));
        let l = batch.column(0).as_list::<i32>();
        let a = l.values().as_struct().column(0);
        assert_eq!(
            a.as_primitive::<Int64Type>().values().to_vec(),
            vec![1, 2, 3]
        );
        assert_eq!(batch.column(1).null_count(), 2);
        let rescued: Vec<Option<&str>> = batch.column(2).as_string::<i32>().iter().collect();
        assert_eq!(
            rescued,
            vec![
                Some("{\"_file_path\":\"f.parquet\",\"t\":[1]}"),
                Some("{\"_file_path\":\"f.parquet\",\"t\":[2]}")
            ]
        );
    }
}
