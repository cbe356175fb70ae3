//! Reading a table's data files column by column with each row's position in its file, past
//! the rows its deletion vector already removes: the MERGE's key scan and the purge's rewrite.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
// object_store's reader: deprecated upstream in favour of hand-written readers, and still
// what delta-rs's own scans use at this version.
use deltalake::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
#[allow(deprecated)]
use deltalake::parquet::arrow::async_reader::{
    ParquetObjectReader, ParquetRecordBatchStreamBuilder,
};
use deltalake::parquet::arrow::ProjectionMask;
use futures::StreamExt;
use object_store::path::Path;
use object_store::ObjectStore;
use roaring::RoaringTreemap;

/// Rows decoded at a time.
const SCAN_BATCH_ROWS: usize = 65_536;

/// Why a data file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("data file {path}: {detail}")]
pub struct ScanError {
    pub path: String,
    pub detail: String,
}

/// One data file to read: where it is, and its partition values (columns not in the file).
#[derive(Debug, Clone)]
pub struct FileToRead {
    pub path: Path,
    pub partition_values: HashMap<String, Option<String>>,
}

/// Reads `columns` of `file` (partition columns from its partition values; columns the file
/// lacks as nulls; each cast to its field's type) and hands each decoded batch to `each`
/// with the position of its first row in the file and a mask of the rows `deleted` does not
/// remove (`None`: all are live).
pub async fn read_file<F>(
    store: &Arc<dyn ObjectStore>,
    file: &FileToRead,
    columns: &SchemaRef,
    deleted: &RoaringTreemap,
    mut each: F,
) -> Result<(), ScanError>
where
    F: FnMut(u64, RecordBatch, Option<BooleanArray>) -> Result<(), ScanError>,
{
    let mut batches = FileBatches::open(store, file, columns).await?;
    while let Some((offset, batch, live)) = batches.next(deleted).await? {
        each(offset, batch, live)?;
    }
    Ok(())
}

/// The decoded batches of one data file, as [`read_file`] hands them over, pulled one at a
/// time (so a caller may await between them).
pub struct FileBatches {
    #[allow(deprecated)]
    stream: deltalake::parquet::arrow::async_reader::ParquetRecordBatchStream<ParquetObjectReader>,
    file: FileToRead,
    columns: SchemaRef,
    offset: u64,
}

impl FileBatches {
    /// Opens `file` to read `columns` (its footer is read now).
    pub async fn open(
        store: &Arc<dyn ObjectStore>,
        file: &FileToRead,
        columns: &SchemaRef,
    ) -> Result<Self, ScanError> {
        let err = |detail: String| ScanError {
            path: file.path.to_string(),
            detail,
        };
        #[allow(deprecated)]
        let mut reader = ParquetObjectReader::new(store.clone(), file.path.clone());
        let mut meta = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
            .await
            .map_err(|e| err(e.to_string()))?;
        if let Some(hinted) = dictionary_hint(meta.schema(), columns) {
            meta = ArrowReaderMetadata::try_new(
                meta.metadata().clone(),
                ArrowReaderOptions::new().with_schema(hinted),
            )
            .map_err(|e| err(e.to_string()))?;
        }
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta);
        let file_schema = builder.schema().clone();
        let wanted: Vec<usize> = columns
            .fields()
            .iter()
            .filter_map(|f| file_schema.index_of(f.name()).ok())
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
        let stream = builder
            .with_projection(mask)
            .with_batch_size(SCAN_BATCH_ROWS)
            .build()
            .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            stream,
            file: file.clone(),
            columns: columns.clone(),
            offset: 0,
        })
    }

    /// The next batch: the position of its first row in the file, the batch, and the mask of
    /// the rows `deleted` does not remove (`None`: all are live); `None` at the end.
    pub async fn next(
        &mut self,
        deleted: &RoaringTreemap,
    ) -> Result<Option<(u64, RecordBatch, Option<BooleanArray>)>, ScanError> {
        let err = |detail: String| ScanError {
            path: self.file.path.to_string(),
            detail,
        };
        let Some(batch) = self.stream.next().await else {
            return Ok(None);
        };
        let batch = batch.map_err(|e| err(e.to_string()))?;
        let rows = batch.num_rows();
        let shaped = shape(&batch, &self.columns, &self.file.partition_values).map_err(err)?;
        let offset = self.offset;
        self.offset += rows as u64;
        Ok(Some((offset, shaped, live_mask(deleted, offset, rows))))
    }
}

/// The file's schema with the string columns `columns` wants dictionary-encoded read as
/// dictionaries (Parquet stores them so: no string is copied out, and a hash of each
/// dictionary value serves every row), or `None` when it wants none.
fn dictionary_hint(file: &SchemaRef, columns: &SchemaRef) -> Option<SchemaRef> {
    let mut changed = false;
    let fields: Vec<Field> = file
        .fields()
        .iter()
        .map(
            |f| match columns.field_with_name(f.name()).map(|c| c.data_type()) {
                Ok(dict @ DataType::Dictionary(_, value)) if value.as_ref() == f.data_type() => {
                    changed = true;
                    f.as_ref().clone().with_data_type(dict.clone())
                }
                _ => f.as_ref().clone(),
            },
        )
        .collect();
    changed.then(|| Arc::new(Schema::new_with_metadata(fields, file.metadata().clone())))
}

/// `columns` with each plain string column read as a dictionary of strings.
pub fn strings_as_dictionaries(columns: &Schema) -> SchemaRef {
    let fields: Vec<Field> = columns
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8),
            )),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// `batch` (a file's projected columns) with exactly `columns`, in order.
fn shape(
    batch: &RecordBatch,
    columns: &SchemaRef,
    partition_values: &HashMap<String, Option<String>>,
) -> Result<RecordBatch, String> {
    let rows = batch.num_rows();
    let arrays = columns
        .fields()
        .iter()
        .map(|f| {
            let array = match (
                batch.column_by_name(f.name()),
                partition_values.get(f.name()),
            ) {
                (_, Some(value)) => partition_column(f, value.as_deref(), rows)?,
                (Some(c), None) => c.clone(),
                (None, None) => new_null_array(f.data_type(), rows),
            };
            cast(array, f)
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        columns.clone(),
        arrays,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| e.to_string())
}

/// A partition column of `rows` rows; an empty value is null, as the protocol has it (and
/// must not reach a cast to a number or a date).
fn partition_column(field: &Field, value: Option<&str>, rows: usize) -> Result<ArrayRef, String> {
    match value {
        None | Some("") => Ok(new_null_array(field.data_type(), rows)),
        Some(v) => Ok(Arc::new(StringArray::from(vec![v; rows])) as ArrayRef),
    }
}

fn cast(array: ArrayRef, field: &Field) -> Result<ArrayRef, String> {
    if array.data_type() == field.data_type() {
        return Ok(array);
    }
    conform(&array, field.data_type()).map_err(|e| {
        format!(
            "column {} is {} in the file and cannot be read as {}: {e}",
            field.name(),
            array.data_type(),
            field.data_type()
        )
    })
}

/// `array` as `to`: struct fields matched by name (a field the file's rows lack, added to
/// the table since they were written, is null), through lists; otherwise arrow's checked
/// cast, which would match struct fields by position.
fn conform(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, arrow::error::ArrowError> {
    use arrow::array::{AsArray, GenericListArray, OffsetSizeTrait, StructArray};
    fn list<O: OffsetSizeTrait>(
        array: &ArrayRef,
        field: &arrow::datatypes::FieldRef,
    ) -> Result<ArrayRef, arrow::error::ArrowError> {
        let l = array.as_list::<O>();
        let values = conform(l.values(), field.data_type())?;
        Ok(Arc::new(GenericListArray::<O>::try_new(
            field.clone(),
            l.offsets().clone(),
            values,
            l.nulls().cloned(),
        )?))
    }
    match (array.data_type(), to) {
        (from, to) if from == to => Ok(array.clone()),
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let s = array.as_struct();
            let children = fields
                .iter()
                .map(|f| match s.column_by_name(f.name()) {
                    Some(c) => conform(c, f.data_type()),
                    None => Ok(new_null_array(f.data_type(), s.len())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                s.nulls().cloned(),
            )?))
        }
        (DataType::List(_), DataType::List(f)) => list::<i32>(array, f),
        (DataType::LargeList(_), DataType::LargeList(f)) => list::<i64>(array, f),
        _ => {
            let options = arrow::compute::CastOptions {
                safe: false,
                ..Default::default()
            };
            arrow::compute::cast_with_options(array, to, &options)
        }
    }
}

/// The rows `offset..offset + rows` that `deleted` keeps; `None` when it keeps them all.
fn live_mask(deleted: &RoaringTreemap, offset: u64, rows: usize) -> Option<BooleanArray> {
    let end = offset + rows as u64;
    if deleted.range_cardinality(offset..end) == 0 {
        return None;
    }
    let mut keep = vec![true; rows];
    let mut rows_deleted = deleted.iter();
    rows_deleted.advance_to(offset);
    for row in rows_deleted.take_while(|r| *r < end) {
        // In range by construction.
        keep[(row - offset) as usize] = false;
    }
    Some(BooleanArray::from(keep))
}

/// The schema of `names` as the table has them.
pub fn project(table: &Schema, names: &[&str]) -> Result<SchemaRef, String> {
    let fields = names
        .iter()
        .map(|n| {
            table
                .field_with_name(n)
                .cloned()
                .map_err(|_| format!("the table has no column {n}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_fields_added_since_a_file_was_written_read_as_null() {
        use arrow::array::{AsArray, Int64Array, ListArray, StructArray};
        use arrow::datatypes::Fields;
        let old_fields = Fields::from(vec![Field::new("a", DataType::Int64, true)]);
        let new_fields = Fields::from(vec![
            Field::new("b", DataType::Utf8, true),
            Field::new("a", DataType::Int64, true),
        ]);
        let old: ArrayRef = Arc::new(StructArray::new(
            old_fields.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2]))],
            None,
        ));
        let read = cast(
            old,
            &Field::new("s", DataType::Struct(new_fields.clone()), true),
        )
        .expect("conformed");
        let s = read.as_struct();
        assert_eq!(s.column_by_name("b").expect("b").null_count(), 2);
        let a = s.column_by_name("a").expect("a");
        assert_eq!(
            a.as_primitive::<arrow::datatypes::Int64Type>().values(),
            &[1, 2]
        );
        // The same inside a list.
        let item = |f: Fields| Arc::new(Field::new("item", DataType::Struct(f), true));
        let values = StructArray::new(
            old_fields.clone(),
            vec![Arc::new(Int64Array::from(vec![5]))],
            None,
        );
        let list: ArrayRef = Arc::new(ListArray::new(
            item(old_fields),
            arrow::buffer::OffsetBuffer::from_lengths([1]),
            Arc::new(values),
            None,
        ));
        let read = cast(
            list,
            &Field::new("l", DataType::List(item(new_fields)), true),
        )
        .expect("conformed list");
        let values = read.as_list::<i32>().values().as_struct().clone();
        assert_eq!(values.column_by_name("b").expect("b").null_count(), 1);
        // An empty partition value is null, whatever the column's type.
        let date = partition_column(&Field::new("d", DataType::Date32, true), Some(""), 3)
            .expect("null partition");
        let date = cast(date, &Field::new("d", DataType::Date32, true)).expect("cast");
        assert_eq!(date.null_count(), 3);
    }

    #[test]
    fn the_live_mask_skips_only_deleted_rows_in_range() {
        let deleted: RoaringTreemap = [2u64, 10, 11].into_iter().collect();
        assert!(live_mask(&deleted, 3, 5).is_none());
        let mask = live_mask(&deleted, 8, 4).expect("some deleted");
        let got: Vec<bool> = mask.iter().map(|v| v.unwrap_or(true)).collect();
        assert_eq!(got, vec![true, true, false, false]);
    }
}
