//! The scanned MERGE: the rows a batch replaces or deletes are found by a scan of the key and
//! sequence columns, then marked in deletion vectors or their files rewritten without them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use deltalake::datafusion::common::hash_utils::{create_hashes, RandomState};
use deltalake::datafusion::prelude::{lit, SessionContext};
use deltalake::kernel::transaction::CommitBuilder;

use crate::one_attempt::only_blind_appends;
use deltalake::kernel::{Action, Add, DeletionVectorDescriptor, Remove};
use deltalake::protocol::{DeltaOperation, MergePredicate};
use deltalake::DeltaTableError;
use object_store::ObjectStore;
use roaring::RoaringTreemap;

use super::scan::{project, read_file, FileToRead, ScanError};
use crate::maintenance::MaintenanceStep;
use crate::merge::{MergeOutcome, MergeSpec};
use crate::sink::{commit_properties, version_i64, DeltaSink};
use crate::{BatchFile, SinkError};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The batch's keys, to look table rows up by. A table row is first looked up by a 64-bit
/// hash of its key columns, computed a column at a time (DataFusion's `create_hashes`); only
/// rows whose hash the batch has are converted to arrow's row format and compared whole.
struct Probe {
    keys: RowConverter,
    seq: RowConverter,
    /// The batch's keys in the row format, by batch row.
    source_keys: arrow::row::Rows,
    /// Key hash → the first batch row with it; `next` chains batch rows sharing a hash.
    index: FastMap<u64, u32>,
    next: Vec<u32>,
    hasher: RandomState,
    /// One bit per value of a hash's top [`FILTER_BITS`] bits, set for the batch's keys: most
    /// table rows are turned away here, in a bitmap that stays in cache, before the map.
    filter: Vec<u64>,
    /// The key and sequence columns, in the table's types.
    columns: SchemaRef,
    /// The same columns as the scan reads them (string keys as dictionaries).
    scan_columns: SchemaRef,
    key_count: usize,
}

/// Bits of a key hash that index [`Probe::filter`] (2^20 bits: 128 KiB).
const FILTER_BITS: u32 = 20;

fn filter_slot(hash: u64) -> (usize, u64) {
    let bit = (hash >> (64 - FILTER_BITS)) as usize;
    (bit / 64, 1u64 << (bit % 64))
}

/// `next` of a batch row that is the last with its hash.
const END: u32 = u32::MAX;

/// A live table row whose key the batch has.
struct Hit {
    row: u64,
    source: u32,
    /// The row's sequence value, encoded to compare as bytes; `None` when null.
    seq: Option<Box<[u8]>>,
}

/// A data file that may hold the batch's keys.
struct Candidate {
    read: FileToRead,
    add: Add,
    remove: Remove,
    dv: Option<DeletionVectorDescriptor>,
}

/// What scanning one file found.
struct Scanned {
    index: usize,
    deleted: RoaringTreemap,
    hits: Vec<Hit>,
}

/// How a scanned MERGE takes the rows it replaces or deletes out of their files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Marked in deletion vectors beside their files (merge-on-read).
    Vectors,
    /// Their files rewritten without them (copy-on-write).
    Rewrite,
}

impl DeltaSink {
    /// One attempt of a scanned MERGE of `source` (one row per key, cast to the table's
    /// types): scan the key and sequence columns, write the new row versions and either the
    /// deletion vectors or the touched files without the rows they lose, commit. The commit
    /// does not retry on its own: any commit that landed since the scan fails it with
    /// `MaxCommitAttempts` (a compaction's remove has `dataChange = false`, which delta-rs's
    /// conflict checker would let through, re-adding a file whose rows were rewritten).
    pub(crate) async fn merge_scanned(
        &mut self,
        app_id: &str,
        batch_id: i64,
        source: RecordBatch,
        spec: &MergeSpec,
        files: &[BatchFile],
        removal: Removal,
    ) -> Result<MergeOutcome, SinkError> {
        let url = self.url().to_string();
        let fail = |detail: String| SinkError::Commit {
            url: url.clone(),
            source: DeltaTableError::Generic(detail),
        };
        let commit_err = |source| SinkError::Commit {
            url: url.clone(),
            source,
        };
        let table = self.loaded()?.clone();
        let snapshot = table.snapshot().map_err(commit_err)?.clone();
        let table_schema = self
            .arrow_schema()?
            .ok_or_else(|| fail("the table has no schema".into()))?;
        let deletes = delete_flags(&source, spec.delete_when.as_deref())
            .await
            .map_err(|e| fail(format!("sink.delete_when: {e}")))?;
        let probe = Arc::new(Probe::new(&source, &table_schema, spec).map_err(&fail)?);
        let seq_column = source_column(&source, &spec.sequence_by).map_err(&fail)?;
        let source_seq = probe
            .seq
            .convert_columns(std::slice::from_ref(&seq_column))
            .map_err(|e| fail(e.to_string()))?;

        let bounds = KeyBounds::of(&source, &spec.keys);
        let mut candidates = Vec::new();
        let mut skipped = 0u64;
        for file in snapshot.log_data().iter() {
            let partition_values = file.partition_values_map();
            if bounds.excludes(file.stats().as_deref(), &partition_values) {
                skipped += 1;
                continue;
            }
            #[allow(deprecated)]
            let add = file.add_action();
            candidates.push(Candidate {
                read: FileToRead {
                    path: file.object_store_path(),
                    partition_values,
                },
                remove: file.remove_action(true),
                dv: file.deletion_vector_descriptor(),
                add,
            });
        }
        let store = table.log_store().object_store(None);
        let root_store = table.log_store().root_object_store(None);
        let scanned = scan(&store, &root_store, &probe, &candidates).await?;

        // Decide per hit, as the copy-on-write MERGE's clauses do: a matched row is replaced
        // (or deleted) when the batch's sequence is not older; a batch row matching nothing
        // is inserted unless it deletes.
        let mut matched = vec![false; source.num_rows()];
        let mut take: Vec<u32> = Vec::new();
        let mut outcome = MergeOutcome {
            files_scanned: candidates.len() as u64,
            files_skipped: skipped,
            ..Default::default()
        };
        let mut touched: Vec<(usize, RoaringTreemap)> = Vec::new();
        for found in scanned {
            let mut deleted = found.deleted.clone();
            for hit in &found.hits {
                let s = hit.source as usize;
                matched[s] = true;
                let not_older = match &hit.seq {
                    None => true,
                    Some(t) => seq_column.is_valid(s) && source_seq.row(s).as_ref() >= t.as_ref(),
                };
                if !not_older {
                    continue;
                }
                deleted.insert(hit.row);
                if deletes.value(s) {
                    outcome.deleted += 1;
                } else {
                    outcome.updated += 1;
                    take.push(hit.source);
                }
            }
            if deleted.len() > found.deleted.len() {
                touched.push((found.index, deleted));
            }
        }
        for (s, was_matched) in matched.iter().enumerate() {
            if !was_matched && !deletes.value(s) {
                outcome.inserted += 1;
                take.push(u32::try_from(s).map_err(|e| fail(e.to_string()))?);
            }
        }

        // The new row versions (and the rewritten files), then the vectors, then one commit
        // of everything.
        let mut actions: Vec<Action> = Vec::new();
        let rewrite = if removal == Removal::Rewrite {
            std::mem::take(&mut touched)
        } else {
            Vec::new()
        };
        if !take.is_empty() || !rewrite.is_empty() {
            let mut writer = self.writer(spec.target_file_size)?;
            if !rewrite.is_empty() {
                // Decoding a file costs far less than encoding its rows again: a lane per
                // core (up to 8), not one per three as for JSON. W4 on 2 cores: 1.99 s with
                // one lane, 1.70 s with two, +13 MB.
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                writer = writer.with_lanes(cores.clamp(1, 8), crate::writer::LANE_BYTES);
                actions.extend(
                    rewrite
                        .iter()
                        .map(|(i, _)| Action::Remove(candidates[*i].remove.clone())),
                );
                let files: Vec<(FileToRead, RoaringTreemap)> = rewrite
                    .into_iter()
                    .map(|(i, deleted)| (candidates[i].read.clone(), deleted))
                    .collect();
                super::rewrite::rewrite_into(&mut writer, &store, &table_schema, &files, &fail)
                    .await?;
            }
            if !take.is_empty() {
                let indices = UInt32Array::from(take);
                let rows = arrow::compute::take_record_batch(&source, &indices)
                    .map_err(|e| fail(e.to_string()))?;
                writer.write(rows).await?;
            }
            actions.extend(
                writer
                    .finish()
                    .await?
                    .into_adds()
                    .into_iter()
                    .map(Action::Add),
            );
        }
        self.step(MaintenanceStep::MergeRowsWritten);
        if !touched.is_empty() {
            let (indices, vectors): (Vec<usize>, Vec<RoaringTreemap>) = touched.into_iter().unzip();
            let written = super::format::write(&store, vectors)
                .await
                .map_err(|e| fail(e.to_string()))?;
            tracing::debug!(path = %written.path, files = indices.len(), "deletion vectors written");
            for (i, dv) in indices.into_iter().zip(written.descriptors) {
                let c = &candidates[i];
                let mut add = c.add.clone();
                add.deletion_vector = Some(dv);
                add.data_change = true;
                add.stats = add.stats.as_deref().map(loose_bounds);
                actions.push(Action::Remove(c.remove.clone()));
                actions.push(Action::Add(add));
            }
        }
        self.step(MaintenanceStep::MergeVectorsWritten);
        let operation = DeltaOperation::Merge {
            predicate: None,
            merge_predicate: Some(
                spec.keys
                    .iter()
                    .map(|k| format!("target.{k} = source.{k}"))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            ),
            matched_predicates: vec![MergePredicate {
                action_type: "update".into(),
                predicate: Some(
                    match removal {
                        Removal::Vectors => "deletion vectors",
                        Removal::Rewrite => "files rewritten",
                    }
                    .into(),
                ),
            }],
            not_matched_predicates: vec![MergePredicate {
                action_type: "insert".into(),
                predicate: None,
            }],
            not_matched_by_source_predicates: vec![],
        };
        // Commits that only appended files (another pipeline's batches) change none of the
        // files this plan marks: the same actions commit on top of them, as delta-rs lets a
        // copy-on-write MERGE commit past blind appends. Anything else fails the attempt.
        let mut snapshot = snapshot;
        let mut latest = table.clone();
        for appended_past in 0.. {
            let committed = CommitBuilder::from(commit_properties(app_id, batch_id, files))
                .with_max_retries(0)
                .with_actions(actions.clone())
                .build(Some(&snapshot), table.log_store(), operation.clone())
                .await;
            let error = match committed {
                Ok(finalized) => {
                    outcome.version = version_i64(finalized.version());
                    self.set_state(finalized.snapshot());
                    return Ok(outcome);
                }
                Err(e) => e,
            };
            if appended_past >= BLIND_APPENDS_PASSED || !lost_race(&error) {
                return Err(commit_err(error));
            }
            latest.update_state().await.map_err(commit_err)?;
            let now = latest.snapshot().map_err(commit_err)?.clone();
            let first = snapshot.version() + 1;
            if !only_blind_appends(
                table.log_store().as_ref(),
                Some(app_id),
                first,
                now.version(),
            )
            .await
            {
                return Err(commit_err(error));
            }
            tracing::debug!(
                from = first,
                to = now.version(),
                "committing past blind appends"
            );
            snapshot = now;
        }
        unreachable!("the loop returns")
    }
}

/// Times a plan is committed again past other writers' appends before it plans anew.
const BLIND_APPENDS_PASSED: usize = 5;

/// Whether a commit failed because another commit took its version.
pub(crate) fn lost_race(e: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    matches!(
        e,
        DeltaTableError::Transaction {
            source: TransactionError::MaxCommitAttempts(_)
                | TransactionError::VersionAlreadyExists(_)
                | TransactionError::CommitConflict(_)
        } | DeltaTableError::VersionAlreadyExists(_)
    )
}

impl Probe {
    fn new(
        source: &RecordBatch,
        table: &arrow::datatypes::Schema,
        spec: &MergeSpec,
    ) -> Result<Self, String> {
        let mut names: Vec<&str> = spec.keys.iter().map(String::as_str).collect();
        names.push(spec.sequence_by.as_str());
        let columns = project(table, &names)?;
        let key_fields: Vec<SortField> = columns.fields()[..spec.keys.len()]
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let keys = RowConverter::new(key_fields).map_err(|e| e.to_string())?;
        let seq_type = columns.field(spec.keys.len()).data_type().clone();
        let seq = RowConverter::new(vec![SortField::new(seq_type)]).map_err(|e| e.to_string())?;
        let key_arrays = spec
            .keys
            .iter()
            .map(|k| source_column(source, k))
            .collect::<Result<Vec<_>, _>>()?;
        let source_keys = keys
            .convert_columns(&key_arrays)
            .map_err(|e| e.to_string())?;
        let hasher = RandomState::with_seed(0x0069_6e6c_6574);
        let mut hashes = vec![0u64; source.num_rows()];
        create_hashes(&key_arrays, &hasher, &mut hashes).map_err(|e| e.to_string())?;
        let mut index = FastMap::with_capacity_and_hasher(hashes.len(), Default::default());
        let mut next = vec![END; hashes.len()];
        let mut filter = vec![0u64; (1usize << FILTER_BITS) / 64];
        for (i, h) in hashes.iter().enumerate().rev() {
            let (word, bit) = filter_slot(*h);
            filter[word] |= bit;
            let i = u32::try_from(i).map_err(|e| e.to_string())?;
            if let Some(first) = index.insert(*h, i) {
                next[i as usize] = first;
                let mut s = first;
                while s != END {
                    if source_keys.row(i as usize) == source_keys.row(s as usize) {
                        return Err(format!(
                            "the batch holds one key ({}) twice; a MERGE takes one row per key",
                            spec.keys.join(", ")
                        ));
                    }
                    s = next[s as usize];
                }
            }
        }
        let mut scan_columns = super::scan::strings_as_dictionaries(&columns);
        // The sequence column stays as the table has it: its values rarely repeat.
        if let Ok(seq_field) = columns.field_with_name(&spec.sequence_by) {
            let mut fields: Vec<_> = scan_columns
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields[spec.keys.len()] = seq_field.clone();
            scan_columns = Arc::new(arrow::datatypes::Schema::new(fields));
        }
        Ok(Self {
            keys,
            seq,
            source_keys,
            index,
            next,
            hasher,
            filter,
            key_count: spec.keys.len(),
            columns,
            scan_columns,
        })
    }

    /// The live rows of `batch` (key and sequence columns) whose key the batch has.
    fn hits(
        &self,
        offset: u64,
        batch: &RecordBatch,
        live: Option<&BooleanArray>,
        hashes: &mut Vec<u64>,
        out: &mut Vec<Hit>,
    ) -> Result<(), String> {
        let key_columns = &batch.columns()[..self.key_count];
        hashes.clear();
        hashes.resize(batch.num_rows(), 0);
        create_hashes(key_columns, &self.hasher, hashes).map_err(|e| e.to_string())?;
        // A null in any key column never equals (SQL `=`), as in the copy-on-write MERGE.
        let key_nulls: Vec<&ArrayRef> = key_columns.iter().filter(|c| c.null_count() > 0).collect();
        let mut rows: Vec<u32> = Vec::new();
        let mut sources: Vec<u32> = Vec::new();
        for (i, h) in hashes.iter().enumerate() {
            let (word, bit) = filter_slot(*h);
            if self.filter[word] & bit == 0 {
                continue;
            }
            let Some(&first) = self.index.get(h) else {
                continue;
            };
            if live.is_some_and(|l| !l.value(i)) || key_nulls.iter().any(|c| c.is_null(i)) {
                continue;
            }
            let row = u32::try_from(i).map_err(|e| e.to_string())?;
            let mut s = first;
            while s != END {
                rows.push(row);
                sources.push(s);
                s = self.next[s as usize];
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        // The candidates' keys, compared whole: a shared hash is not a shared key.
        let take = UInt32Array::from(rows.clone());
        let taken = key_columns
            .iter()
            .zip(self.columns.fields())
            .map(|(c, f)| {
                let taken = arrow::compute::take(c, &take, None)?;
                arrow::compute::cast(&taken, f.data_type())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let candidate_keys = self
            .keys
            .convert_columns(&taken)
            .map_err(|e| e.to_string())?;
        let seq_column = arrow::compute::take(batch.column(self.key_count), &take, None)
            .map_err(|e| e.to_string())?;
        let seqs = self
            .seq
            .convert_columns(std::slice::from_ref(&seq_column))
            .map_err(|e| e.to_string())?;
        for (c, (row, source)) in rows.iter().zip(&sources).enumerate() {
            if candidate_keys.row(c) != self.source_keys.row(*source as usize) {
                continue;
            }
            out.push(Hit {
                row: offset + u64::from(*row),
                source: *source,
                seq: (!seq_column.is_null(c)).then(|| Box::from(seqs.row(c).as_ref())),
            });
        }
        Ok(())
    }
}

fn source_column(source: &RecordBatch, name: &str) -> Result<ArrayRef, String> {
    source
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| format!("the batch has no column {name}"))
}

/// Scans the key and sequence columns of every candidate, several files at once.
async fn scan(
    store: &Arc<dyn ObjectStore>,
    root_store: &Arc<dyn ObjectStore>,
    probe: &Arc<Probe>,
    candidates: &[Candidate],
) -> Result<Vec<Scanned>, SinkError> {
    use futures::StreamExt;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let tasks = candidates.iter().enumerate().map(|(index, c)| {
        let store = store.clone();
        let root_store = root_store.clone();
        let probe = probe.clone();
        let read = c.read.clone();
        let dv = c.dv.clone();
        tokio::spawn(async move {
            let deleted = match &dv {
                Some(dv) => super::format::read(&store, &root_store, dv)
                    .await
                    .map_err(|e| ScanError {
                        path: read.path.to_string(),
                        detail: e.to_string(),
                    })?,
                None => RoaringTreemap::new(),
            };
            let mut hits = Vec::new();
            let mut hashes = Vec::new();
            read_file(
                &store,
                &read,
                &probe.scan_columns,
                &deleted,
                |offset, batch, live| {
                    probe
                        .hits(offset, &batch, live.as_ref(), &mut hashes, &mut hits)
                        .map_err(|detail| ScanError {
                            path: read.path.to_string(),
                            detail,
                        })
                },
            )
            .await?;
            Ok::<_, ScanError>(Scanned {
                index,
                deleted,
                hits,
            })
        })
    });
    let results: Vec<_> = futures::stream::iter(tasks)
        .buffer_unordered(cores.max(2))
        .collect()
        .await;
    results
        .into_iter()
        .map(|joined| {
            let scanned = joined.map_err(|e| SinkError::Commit {
                url: String::new(),
                source: DeltaTableError::Generic(format!("the key scan stopped: {e}")),
            })?;
            scanned.map_err(|e| SinkError::Commit {
                url: String::new(),
                source: DeltaTableError::Generic(e.to_string()),
            })
        })
        .collect()
}

/// Whether each batch row deletes: `delete_when` over the batch, null counting as false.
async fn delete_flags(
    source: &RecordBatch,
    delete_when: Option<&str>,
) -> Result<BooleanArray, DeltaTableError> {
    let Some(sql) = delete_when else {
        return Ok(BooleanArray::from(vec![false; source.num_rows()]));
    };
    let ctx = SessionContext::new();
    let df = ctx.read_batch(source.clone())?;
    let expr = df.parse_sql_expr(sql)?;
    let flag = deltalake::datafusion::functions::expr_fn::coalesce(vec![expr, lit(false)]);
    let out = df.select(vec![flag.alias("deletes")])?.collect().await?;
    let mut values = Vec::with_capacity(source.num_rows());
    for b in &out {
        let column = b.column(0);
        let flags = column
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| {
                DeltaTableError::Generic(format!("is {}, not a predicate", column.data_type()))
            })?;
        values.extend(flags.iter().map(|v| v.unwrap_or(false)));
    }
    Ok(BooleanArray::from(values))
}

/// A file's statistics once a deletion vector hides some of its rows: the bounds still hold
/// but may be wider than the live rows (`tightBounds = false`, as the protocol asks).
fn loose_bounds(stats: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(stats) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.insert("tightBounds".into(), serde_json::Value::Bool(false));
            serde_json::Value::Object(m).to_string()
        }
        _ => stats.to_string(),
    }
}

/// The batch's smallest and largest value of each key column that is an integer or a
/// string, to skip files whose statistics show none of the batch's keys.
struct KeyBounds {
    bounds: Vec<(String, Bound)>,
}

enum Bound {
    Int(i64, i64),
    Text(String, String),
}

impl KeyBounds {
    fn of(source: &RecordBatch, keys: &[String]) -> Self {
        use arrow::array::AsArray;
        let mut bounds = Vec::new();
        for k in keys {
            let Some(c) = source.column_by_name(k) else {
                continue;
            };
            let bound = match c.data_type() {
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                    let Ok(c) = arrow::compute::cast(c, &DataType::Int64) else {
                        continue;
                    };
                    let ints = c.as_primitive::<arrow::datatypes::Int64Type>();
                    match (arrow::compute::min(ints), arrow::compute::max(ints)) {
                        (Some(lo), Some(hi)) => Bound::Int(lo, hi),
                        _ => continue,
                    }
                }
                DataType::Utf8 => {
                    let s = c.as_string::<i32>();
                    match (arrow::compute::min_string(s), arrow::compute::max_string(s)) {
                        (Some(lo), Some(hi)) => Bound::Text(lo.to_string(), hi.to_string()),
                        _ => continue,
                    }
                }
                _ => continue,
            };
            bounds.push((k.clone(), bound));
        }
        Self { bounds }
    }

    /// True when some key column's range in the file (its statistics, or its partition
    /// value) does not meet the batch's.
    fn excludes(&self, stats: Option<&str>, partition: &HashMap<String, Option<String>>) -> bool {
        if self.bounds.is_empty() {
            return false;
        }
        let stats: Option<serde_json::Value> = stats.and_then(|s| serde_json::from_str(s).ok());
        self.bounds.iter().any(|(column, bound)| {
            if let Some(value) = partition.get(column) {
                // A null partition value holds only null keys, which match nothing.
                let Some(v) = value else { return true };
                return match bound {
                    Bound::Int(lo, hi) => v.parse::<i64>().is_ok_and(|v| v < *lo || v > *hi),
                    Bound::Text(lo, hi) => v.as_str() < lo.as_str() || v.as_str() > hi.as_str(),
                };
            }
            let Some(stats) = &stats else { return false };
            let (min, max) = (&stats["minValues"][column], &stats["maxValues"][column]);
            match bound {
                Bound::Int(lo, hi) => match (min.as_i64(), max.as_i64()) {
                    (Some(min), Some(max)) => max < *lo || min > *hi,
                    _ => false,
                },
                // String statistics may be truncated: the minimum to a prefix (still a lower
                // bound), the maximum never trusted below the batch's lowest key unless whole.
                Bound::Text(lo, hi) => match (min.as_str(), max.as_str()) {
                    (Some(min), Some(max)) => {
                        min > hi.as_str() || (max < lo.as_str() && !lo.starts_with(max))
                    }
                    _ => false,
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn statistics_skip_only_files_whose_keys_cannot_meet_the_batch() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("t", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![10, 20])),
                Arc::new(StringArray::from(vec!["b", "d"])),
            ],
        )
        .expect("batch");
        let b = KeyBounds::of(&batch, &["id".into(), "t".into()]);
        let none = HashMap::new();
        let stats = |lo: i64, hi: i64, tlo: &str, thi: &str| {
            format!(
                r#"{{"numRecords":1,"minValues":{{"id":{lo},"t":"{tlo}"}},"maxValues":{{"id":{hi},"t":"{thi}"}}}}"#
            )
        };
        assert!(!b.excludes(Some(&stats(0, 15, "a", "z")), &none));
        assert!(b.excludes(Some(&stats(21, 30, "a", "z")), &none));
        assert!(b.excludes(Some(&stats(0, 15, "e", "z")), &none));
        assert!(!b.excludes(None, &none), "no statistics: scanned");
        let part = HashMap::from([("t".to_string(), Some("c".to_string()))]);
        assert!(!b.excludes(None, &part));
        let part = HashMap::from([("t".to_string(), Some("x".to_string()))]);
        assert!(b.excludes(None, &part));
    }

    fn rows(ids: &[i64], seq: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("seq", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
        ]));
        let v: Vec<String> = ids.iter().map(|i| format!("{i}@{seq}")).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(Int64Array::from(vec![seq; ids.len()])),
                Arc::new(StringArray::from(v)),
            ],
        )
        .expect("batch")
    }

    /// (id, v) of every row the table shows, through delta-rs's own reader.
    async fn table_rows(sink: &DeltaSink) -> Vec<(i64, String)> {
        use arrow::array::AsArray;
        let table = sink.loaded().expect("table");
        let ctx = SessionContext::new();
        table
            .update_datafusion_session(&ctx.state())
            .expect("session");
        let provider = table.table_provider().await.expect("provider");
        let batches = ctx
            .read_table(provider)
            .expect("read")
            .select_columns(&["id", "v"])
            .expect("select")
            .collect()
            .await
            .expect("collect");
        let mut out = Vec::new();
        for b in batches {
            let ids = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
            let v = arrow::compute::cast(b.column(1), &DataType::Utf8).expect("utf8");
            let v = v.as_string::<i32>();
            for i in 0..b.num_rows() {
                // A null id reads as -1.
                let id = if ids.is_null(i) { -1 } else { ids.value(i) };
                out.push((id, v.value(i).to_string()));
            }
        }
        out.sort();
        out
    }

    /// A new table with deletion vectors enabled and one data file (one batch of pipeline
    /// `p`, sequence 1) per entry of `files`.
    async fn table_of_files(dir: &std::path::Path, files: &[Vec<i64>]) -> DeltaSink {
        table_with(dir, files, true).await
    }

    /// `table_of_files`, with deletion vectors enabled or not.
    async fn table_with(dir: &std::path::Path, files: &[Vec<i64>], vectors: bool) -> DeltaSink {
        let url = url::Url::from_directory_path(dir).expect("url");
        let mut sink = DeltaSink::open(&url, &HashMap::new()).await.expect("open");
        let properties = std::collections::BTreeMap::from([(
            "delta.enableDeletionVectors".to_string(),
            vectors.to_string(),
        )]);
        sink.create(&rows(&[], 0).schema(), &[], &properties)
            .await
            .expect("create");
        for (b, ids) in files.iter().enumerate() {
            let mut w = sink.writer(1 << 20).expect("writer");
            w.write(rows(ids, 1)).await.expect("write");
            let staged = w.finish().await.expect("finish");
            sink.commit_batch("p", b as i64 + 1, staged, None, &[])
                .await
                .expect("commit");
        }
        sink
    }

    /// The merge-on-read spec of these tests: key `id`, sequence `seq`.
    fn spec(delete_when: Option<&str>) -> MergeSpec {
        MergeSpec {
            keys: vec!["id".into()],
            sequence_by: "seq".into(),
            delete_when: delete_when.map(str::to_string),
            strategy: crate::MergeStrategy::DeletionVectors,
            target_file_size: 1 << 20,
        }
    }

    /// `(id, v)` rows as `table_rows` gives them.
    fn expected(rows: &[(i64, &str)]) -> Vec<(i64, String)> {
        rows.iter().map(|(i, v)| (*i, (*v).to_string())).collect()
    }

    /// MERGEs ids 2, 3 (sequence 2) and 9 into `sink` as batch 3 while `interloper` acts on a
    /// second handle once, between the deletion vectors' write and the commit. Returns the
    /// outcome and how many times the MERGE planned (wrote its new rows).
    async fn merge_beside<F, Fut>(sink: &mut DeltaSink, interloper: F) -> (MergeOutcome, usize)
    where
        F: FnOnce(DeltaSink) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        merge_beside_with(sink, &spec(None), interloper).await
    }

    /// `merge_beside`, with `spec`.
    async fn merge_beside_with<F, Fut>(
        sink: &mut DeltaSink,
        spec: &MergeSpec,
        interloper: F,
    ) -> (MergeOutcome, usize)
    where
        F: FnOnce(DeltaSink) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let once = std::sync::Mutex::new(Some((sink.second_handle(), interloper)));
        let planned = Arc::new(AtomicUsize::new(0));
        let seen = planned.clone();
        sink.set_step_hook(Some(Arc::new(move |step| match step {
            MaintenanceStep::MergeRowsWritten => {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            MaintenanceStep::MergeVectorsWritten => {
                let Some((other, act)) = once.lock().expect("lock").take() else {
                    return;
                };
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(act(other));
                });
            }
            _ => {}
        })));
        let outcome = sink
            .merge_batch("p", 3, vec![rows(&[2, 3, 9], 2)], spec, &[])
            .await
            .expect("merge");
        (outcome, planned.load(Ordering::SeqCst))
    }

    /// The copy-on-write spec of these tests: `spec`, rewriting files.
    fn rewrite_spec(delete_when: Option<&str>) -> MergeSpec {
        MergeSpec {
            strategy: crate::MergeStrategy::CopyOnWrite,
            ..spec(delete_when)
        }
    }

    /// A batch of `(id, seq, v)` rows; `None` ids are null keys.
    fn changes(rows: &[(Option<i64>, i64, &str)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("seq", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("batch")
    }

    /// The table's data files, as (smallest id, path), by smallest id.
    fn data_files(sink: &DeltaSink) -> Vec<(i64, String)> {
        let table = sink.loaded().expect("loaded");
        let snapshot = table.snapshot().expect("snapshot");
        let mut files: Vec<(i64, String)> = snapshot
            .log_data()
            .iter()
            .map(|f| {
                let stats: serde_json::Value =
                    serde_json::from_str(f.stats().as_deref().unwrap_or("{}")).expect("stats");
                let min = stats["minValues"]["id"].as_i64().unwrap_or(i64::MIN);
                (min, f.object_store_path().to_string())
            })
            .collect();
        files.sort();
        files
    }

    /// Differential: the scanned copy-on-write MERGE leaves the rows delta-rs's MERGE leaves,
    /// with the same counts, over newer, equal and older sequences, deletes, inserts that
    /// delete (nothing), null keys, and a file no key reaches (which it leaves in place).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_scanned_copy_on_write_merge_leaves_what_delta_rs_merge_leaves() {
        let files = [(1..=5).collect(), (6..=10).collect(), (100..=104).collect()];
        let batches = [
            changes(&[
                (Some(2), 3, "2@3"),
                (Some(3), 0, "3@0"),
                (Some(4), 1, "4@1"),
                (Some(7), 5, "delete"),
                (Some(8), 0, "delete"),
                (Some(200), 1, "200@1"),
                (Some(201), 1, "delete"),
                (None, 1, "null@1"),
            ]),
            changes(&[
                (Some(2), 2, "2@2"),
                (Some(9), 4, "9@4"),
                (Some(200), 2, "delete"),
                (None, 2, "null@2"),
            ]),
        ];
        let spec = rewrite_spec(Some("v = 'delete'"));
        let mut results = Vec::new();
        for via_delta_rs in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut sink = table_with(dir.path(), &files, false).await;
            assert!(!sink.deletion_vectors_enabled());
            let before = data_files(&sink);
            let mut outcomes = Vec::new();
            for (b, batch) in batches.iter().enumerate() {
                let batch_id = b as i64 + 10;
                let outcome = if via_delta_rs {
                    sink.merge_with_delta_rs("p", batch_id, vec![batch.clone()], &spec, &[])
                        .await
                } else {
                    sink.merge_batch("p", batch_id, vec![batch.clone()], &spec, &[])
                        .await
                }
                .expect("merge");
                outcomes.push((outcome.updated, outcome.inserted, outcome.deleted));
            }
            if !via_delta_rs {
                let after = data_files(&sink);
                assert_eq!(before[2].0, 100);
                assert!(
                    after.contains(&before[2]),
                    "the file of ids 100..=104 is left in place: {before:?} -> {after:?}"
                );
                assert!(!after.contains(&before[0]) && !after.contains(&before[1]));
                let vectors = sink.deleted_rows(0.0).expect("deleted rows");
                assert_eq!(vectors.files_with_vectors, 0, "no deletion vector written");
            }
            results.push((table_rows(&sink).await, outcomes));
        }
        let want = expected(&[
            (-1, "null@1"),
            (-1, "null@2"),
            (1, "1@1"),
            (2, "2@3"),
            (3, "3@1"),
            (4, "4@1"),
            (5, "5@1"),
            (6, "6@1"),
            (8, "8@1"),
            (9, "9@4"),
            (10, "10@1"),
            (100, "100@1"),
            (101, "101@1"),
            (102, "102@1"),
            (103, "103@1"),
            (104, "104@1"),
        ]);
        assert_eq!(results[0].0, want, "the scanned MERGE");
        assert_eq!(results[1].0, want, "delta-rs's MERGE");
        assert_eq!(results[0].1, results[1].1, "the same counts");
        // A null key matches nothing, not even the table's null-key row: inserted again.
        assert_eq!(results[0].1, vec![(2, 2, 1), (1, 1, 1)]);
    }

    /// A compaction that lands between the MERGE's scan and its commit removes the files
    /// the MERGE marks or rewrites (with `dataChange = false`): the commit must not re-add
    /// them, and the MERGE plans again against the compacted table. Both removals.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_compaction_during_the_merge_makes_it_plan_again() {
        for vectors in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut sink = table_with(dir.path(), &[vec![1, 2], vec![3, 4]], vectors).await;
            assert_eq!(sink.deletion_vectors_enabled(), vectors);
            let spec = if vectors {
                spec(None)
            } else {
                rewrite_spec(None)
            };
            let (outcome, planned) = merge_beside_with(&mut sink, &spec, |mut other| async move {
                let options = crate::maintenance::CompactOptions {
                    target_size: 64 << 20,
                    partitions: None,
                    zorder_by: Vec::new(),
                    max_concurrent: 1,
                    purge_deleted_fraction: None,
                };
                let done = other.compact(&options, None).await.expect("compact");
                assert_eq!(done.files_removed, 2);
            })
            .await;
            assert_eq!(
                planned, 2,
                "vectors {vectors}: planned again after the compaction"
            );
            assert_eq!((outcome.updated, outcome.inserted), (2, 1));
            let want = expected(&[(1, "1@1"), (2, "2@2"), (3, "3@2"), (4, "4@1"), (9, "9@2")]);
            assert_eq!(table_rows(&sink).await, want, "vectors {vectors}");
        }
    }

    /// Another pipeline's append that lands between the MERGE's scan and its commit changes
    /// none of the files the MERGE marks: the plan commits on top of it, without a new scan.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_during_the_merge_is_committed_past_without_planning_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sink = table_of_files(dir.path(), &[vec![1, 2], vec![3, 4]]).await;
        let (outcome, planned) = merge_beside(&mut sink, |mut other| async move {
            let mut w = other.writer(1 << 20).expect("writer");
            w.write(rows(&[50, 51], 1)).await.expect("write");
            let staged = w.finish().await.expect("finish");
            other
                .commit_batch("another-pipeline", 1, staged, None, &[])
                .await
                .expect("append");
        })
        .await;
        assert_eq!(planned, 1, "no second scan");
        assert_eq!((outcome.updated, outcome.inserted), (2, 1));
        let want = expected(&[
            (1, "1@1"),
            (2, "2@2"),
            (3, "3@2"),
            (4, "4@1"),
            (9, "9@2"),
            (50, "50@1"),
            (51, "51@1"),
        ]);
        assert_eq!(table_rows(&sink).await, want);
    }

    /// A file whose vector hides past the fraction is rewritten without the hidden rows;
    /// one below it keeps its vector.
    #[tokio::test]
    async fn a_purge_rewrites_only_files_whose_vectors_hide_enough() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = [(0..10).collect(), (100..110).collect()];
        let mut sink = table_of_files(dir.path(), &files).await;
        let spec = spec(Some("seq = 2"));
        // Deletes 5 of the first file's rows and 1 of the second's.
        sink.merge_batch("p", 3, vec![rows(&[0, 1, 2, 3, 4, 100], 2)], &spec, &[])
            .await
            .expect("merge");
        let before = sink.deleted_rows(0.3).expect("deleted");
        assert_eq!(
            (
                before.files_with_vectors,
                before.deleted_rows,
                before.files_over
            ),
            (2, 6, 1)
        );
        let rows_before = table_rows(&sink).await;
        let purged = sink
            .purge_deletion_vectors(0.3, 1 << 20)
            .await
            .expect("purge");
        assert_eq!((purged.files_rewritten, purged.rows_dropped), (1, 5));
        let after = sink.deleted_rows(0.3).expect("deleted");
        assert_eq!((after.files_with_vectors, after.deleted_rows), (1, 1));
        assert_eq!(after.physical_rows, 15);
        assert_eq!(table_rows(&sink).await, rows_before);
        assert_eq!(rows_before.len(), 14);
    }

    #[test]
    fn loose_bounds_marks_statistics_wide() {
        let s = loose_bounds(r#"{"numRecords":3}"#);
        let v: serde_json::Value = serde_json::from_str(&s).expect("json");
        assert_eq!(v["tightBounds"], false);
        assert_eq!(v["numRecords"], 3);
    }
}
