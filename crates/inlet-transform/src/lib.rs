//! The transform stage: a batch as the DataFusion table `source` (with a `_metadata` struct
//! per row, as in Databricks), the pipeline's SQL over it, and latest-row-per-key for MERGE.

use std::sync::Arc;

use std::collections::HashMap;

use arrow::array::{
    ArrayRef, BooleanArray, StringArray, StructArray, TimestampMicrosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::row::{Row, RowConverter, SortField};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::prelude::{lit, SessionContext};

/// The default transform: every column of the batch as is.
pub const IDENTITY_SQL: &str = "SELECT * FROM source";
/// Name of the per-row file metadata column.
pub const METADATA_COLUMN: &str = "_metadata";
const DELETE_FLAG: &str = "__inlet_delete";

#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("transform.sql does not plan: {detail}; `source` has columns: {columns}")]
    Plan { detail: String, columns: String },

    #[error("transform.sql failed on batch: {0}")]
    Execute(String),

    #[error("sink.{key} names column '{column}', which the transform's output does not have (columns: {columns})")]
    MissingColumn {
        key: &'static str,
        column: String,
        columns: String,
    },

    #[error("sink.delete_when '{predicate}' is not a valid predicate over the transform's output: {detail}")]
    DeletePredicate { predicate: String, detail: String },
}

/// The SQL of a pipeline, planned against each batch.
#[derive(Debug, Clone)]
pub struct Transform {
    sql: String,
}

impl Transform {
    /// `sql` is any SELECT over `source`; `None` or blank is [`IDENTITY_SQL`].
    pub fn new(sql: Option<&str>) -> Self {
        let sql = sql
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(IDENTITY_SQL);
        Self {
            sql: sql.trim_end_matches(';').to_string(),
        }
    }

    /// True for the default SQL: batches can stream to the table without DataFusion.
    pub fn is_identity(&self) -> bool {
        self.sql.eq_ignore_ascii_case(IDENTITY_SQL)
    }

    /// Checks the SQL parses, before any schema is known (a new pipeline): what `run` would
    /// refuse for its syntax, `inlet validate` and the start of a run refuse first.
    pub fn check_syntax(&self) -> Result<(), TransformError> {
        let ctx = SessionContext::new();
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        state
            .sql_to_statement(&self.sql, &dialect)
            .map(|_| ())
            .map_err(|e| TransformError::Plan {
                detail: first_line(&e.to_string()),
                columns: "(not known before the first batch)".into(),
            })
    }

    /// Whether the SQL reads `_metadata` (only then is the column built: like Databricks,
    /// it is hidden from `SELECT *` unless asked for).
    pub fn uses_metadata(&self) -> bool {
        self.sql.contains(METADATA_COLUMN)
    }

    /// The schema the SQL produces from input `schema` (every field nullable, as Delta
    /// columns are), or a plan error listing the columns the SQL can use.
    pub async fn output_schema(&self, schema: &Schema) -> Result<Schema, TransformError> {
        let input = self.with_metadata_field(schema);
        let ctx = SessionContext::new();
        let table = MemTable::try_new(Arc::new(input.clone()), vec![vec![]])
            .map_err(|e| self.plan_err(&input, e))?;
        ctx.register_table("source", Arc::new(table))
            .map_err(|e| self.plan_err(&input, e))?;
        let df = self
            .plan(&ctx)
            .await
            .map_err(|e| self.plan_err(&input, e))?;
        let fields: Vec<Field> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        Ok(Schema::new(fields))
    }

    /// Runs the SQL over `batches` (all of `schema`, `_metadata` included when the SQL uses it).
    pub async fn run(
        &self,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>, TransformError> {
        let ctx = SessionContext::new();
        let table = MemTable::try_new(schema.clone(), vec![batches])
            .map_err(|e| self.plan_err(&schema, e))?;
        ctx.register_table("source", Arc::new(table))
            .map_err(|e| self.plan_err(&schema, e))?;
        let df = self
            .plan(&ctx)
            .await
            .map_err(|e| self.plan_err(&schema, e))?;
        df.collect()
            .await
            .map_err(|e| TransformError::Execute(e.to_string()))
    }

    /// Plans the SQL in `ctx` (where `source` is registered). When the SQL names `_metadata`,
    /// every `*` over `source` leaves it out, as Spark's file metadata column is hidden from
    /// `*` and appears only where it is named.
    async fn plan(
        &self,
        ctx: &SessionContext,
    ) -> Result<deltalake::datafusion::dataframe::DataFrame, DataFusionError> {
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state.sql_to_statement(&self.sql, &dialect)?;
        if self.uses_metadata() {
            if let deltalake::datafusion::sql::parser::Statement::Statement(inner) = &mut statement
            {
                hide_metadata::from_wildcards(inner);
            }
        }
        let plan = state.statement_to_plan(statement).await?;
        ctx.execute_logical_plan(plan).await
    }

    fn with_metadata_field(&self, schema: &Schema) -> Schema {
        if !self.uses_metadata() || schema.field_with_name(METADATA_COLUMN).is_ok() {
            return schema.clone();
        }
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(metadata_field());
        Schema::new_with_metadata(fields, schema.metadata().clone())
    }

    fn plan_err(&self, schema: &Schema, e: DataFusionError) -> TransformError {
        TransformError::Plan {
            detail: first_line(&e.to_string()),
            columns: inlet_schema::column_names(schema),
        }
    }
}

mod hide_metadata {
    //! `SELECT *` over `source` without `_metadata`: each wildcard whose relation is `source`
    //! gets `_metadata` added to its EXCLUDE list, in the parsed SQL before it is planned.

    use std::ops::ControlFlow;

    use deltalake::datafusion::sql::sqlparser::ast::{
        ExcludeSelectItem, Ident, ObjectName, ObjectNamePart, Query, SelectItem,
        SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, VisitMut, VisitorMut,
        WildcardAdditionalOptions,
    };

    use super::METADATA_COLUMN;

    /// Rewrites every SELECT of `statement` (subqueries and CTEs included).
    pub fn from_wildcards(statement: &mut Statement) {
        let _ = statement.visit(&mut Hide);
    }

    struct Hide;

    impl VisitorMut for Hide {
        type Break = ();

        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            hide_in(&mut query.body);
            ControlFlow::Continue(())
        }
    }

    fn hide_in(body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                // The names `source` goes by in this SELECT's FROM (itself, or its alias).
                let mut names: Vec<String> = Vec::new();
                for from in &select.from {
                    for factor in std::iter::once(&from.relation)
                        .chain(from.joins.iter().map(|j| &j.relation))
                    {
                        if let TableFactor::Table { name, alias, .. } = factor {
                            if is_source(name) {
                                names.push(match alias {
                                    Some(a) => a.name.value.to_lowercase(),
                                    None => "source".to_string(),
                                });
                            }
                        }
                    }
                }
                // Two `source`s in one FROM make an unqualified `_metadata` ambiguous: only
                // qualified wildcards are rewritten then.
                let single = names.len() == 1;
                for item in &mut select.projection {
                    match item {
                        SelectItem::Wildcard(opts) if single => exclude(opts),
                        SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(q),
                            opts,
                        ) if single
                            && q.0
                                .last()
                                .and_then(ObjectNamePart::as_ident)
                                .is_some_and(|i| names.contains(&i.value.to_lowercase())) =>
                        {
                            exclude(opts)
                        }
                        _ => {}
                    }
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                hide_in(left);
                hide_in(right);
            }
            _ => {}
        }
    }

    fn is_source(name: &ObjectName) -> bool {
        name.0.len() == 1
            && name.0[0]
                .as_ident()
                .is_some_and(|i| i.value.eq_ignore_ascii_case("source"))
    }

    /// Adds `_metadata` to the wildcard's EXCLUDE list, unless the SQL excludes it already.
    fn exclude(opts: &mut WildcardAdditionalOptions) {
        let named = |n: &ObjectName| {
            n.0.last()
                .and_then(ObjectNamePart::as_ident)
                .is_some_and(|i| i.value.eq_ignore_ascii_case(METADATA_COLUMN))
        };
        let excepted = opts.opt_except.as_ref().is_some_and(|e| {
            std::iter::once(&e.first_element)
                .chain(&e.additional_elements)
                .any(|i| i.value.eq_ignore_ascii_case(METADATA_COLUMN))
        });
        let meta = ObjectName::from(vec![Ident::new(METADATA_COLUMN)]);
        opts.opt_exclude = match opts.opt_exclude.take() {
            None if excepted => None,
            None => Some(ExcludeSelectItem::Single(meta)),
            Some(ExcludeSelectItem::Single(n)) if named(&n) || excepted => {
                Some(ExcludeSelectItem::Single(n))
            }
            Some(ExcludeSelectItem::Single(n)) => Some(ExcludeSelectItem::Multiple(vec![n, meta])),
            Some(ExcludeSelectItem::Multiple(mut ns)) => {
                if !ns.iter().any(named) && !excepted {
                    ns.push(meta);
                }
                Some(ExcludeSelectItem::Multiple(ns))
            }
        };
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

fn metadata_fields() -> Fields {
    Fields::from(vec![
        Field::new("file_path", DataType::Utf8, true),
        Field::new("file_name", DataType::Utf8, true),
        Field::new("file_size", DataType::UInt64, true),
        Field::new(
            "file_modification_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ])
}

/// The `_metadata` field: `STRUCT<file_path, file_name, file_size, file_modification_time>`.
pub fn metadata_field() -> Field {
    Field::new(METADATA_COLUMN, DataType::Struct(metadata_fields()), true)
}

/// `batch` with a `_metadata` column describing the file it came from.
pub fn with_metadata(
    batch: &RecordBatch,
    file_path: &str,
    file_size: u64,
    modified_ms: i64,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = batch.num_rows();
    let name = file_path.rsplit('/').next().unwrap_or(file_path);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![file_path; n])),
        Arc::new(StringArray::from(vec![name; n])),
        Arc::new(UInt64Array::from(vec![file_size; n])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![modified_ms.saturating_mul(1000); n])
                .with_timezone("UTC"),
        ),
    ];
    let meta = StructArray::try_new(metadata_fields(), columns, None)?;
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(metadata_field());
    let mut arrays = batch.columns().to_vec();
    arrays.push(Arc::new(meta));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

/// Checks `sink.delete_when` before any batch: that it parses as a SQL expression, and, when
/// the transform's `output` schema is known, that it plans over those columns.
pub fn check_delete_when(predicate: &str, output: Option<&Schema>) -> Result<(), TransformError> {
    let pred_err = |e: DataFusionError| TransformError::DeletePredicate {
        predicate: predicate.to_string(),
        detail: first_line(&e.to_string()),
    };
    let ctx = SessionContext::new();
    match output {
        Some(schema) => {
            let df_schema = deltalake::datafusion::common::DFSchema::try_from(schema.clone())
                .map_err(pred_err)?;
            ctx.parse_sql_expr(predicate, &df_schema)
                .map(|_| ())
                .map_err(pred_err)
        }
        None => {
            use deltalake::datafusion::sql::sqlparser::{dialect::GenericDialect, parser::Parser};
            Parser::new(&GenericDialect {})
                .try_with_sql(predicate)
                .and_then(|mut p| p.parse_expr())
                .map(|_| ())
                .map_err(|e| pred_err(DataFusionError::SQL(Box::new(e), None)))
        }
    }
}

/// What MERGE needs from a batch: its latest row per key, and which of those are deletes.
#[derive(Debug)]
pub struct Latest {
    /// One row per key: the one with the highest sequence (ties: the later row), in the
    /// order the rows came.
    pub batches: Vec<RecordBatch>,
    /// Per batch, per row: whether `delete_when` holds.
    pub deletes: Vec<BooleanArray>,
}

/// Keeps the latest row per `keys` by `sequence_by` (nulls lowest, ties to the later row),
/// in one hashed pass with no sort, and evaluates `delete_when` on each kept row.
pub async fn latest_per_key(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    keys: &[String],
    sequence_by: &str,
    delete_when: Option<&str>,
) -> Result<Latest, TransformError> {
    for (key, column) in keys
        .iter()
        .map(|k| ("keys", k))
        .chain([("sequence_by", &sequence_by.to_string())])
    {
        if schema.field_with_name(column).is_err() {
            return Err(TransformError::MissingColumn {
                key,
                column: column.clone(),
                columns: inlet_schema::column_names(&schema),
            });
        }
    }
    let exec = |e: DataFusionError| TransformError::Execute(e.to_string());
    let arrow_err = |e: arrow::error::ArrowError| TransformError::Execute(e.to_string());
    // One pass over the batch: keys and sequences in arrow's row format (sequences compare
    // as bytes, nulls lowest), the winning row per key in a hash map, then one `take`.
    let batch = arrow::compute::concat_batches(&schema, &batches).map_err(arrow_err)?;
    let column = |name: &str| -> Result<ArrayRef, TransformError> {
        batch.column_by_name(name).cloned().ok_or_else(|| {
            TransformError::Execute(format!("column '{name}' is missing from the batch"))
        })
    };
    let key_columns = keys
        .iter()
        .map(|k| column(k))
        .collect::<Result<Vec<_>, _>>()?;
    let sort_field = |a: &ArrayRef| SortField::new(a.data_type().clone());
    let key_rows = RowConverter::new(key_columns.iter().map(sort_field).collect())
        .and_then(|c| c.convert_columns(&key_columns))
        .map_err(arrow_err)?;
    let sequence = column(sequence_by)?;
    let sequence_rows = RowConverter::new(vec![sort_field(&sequence)])
        .and_then(|c| c.convert_columns(&[sequence]))
        .map_err(arrow_err)?;
    let mut latest: HashMap<Row<'_>, usize> = HashMap::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        latest
            .entry(key_rows.row(i))
            .and_modify(|best| {
                // Ties go to the later row, in file order.
                if sequence_rows.row(i) >= sequence_rows.row(*best) {
                    *best = i;
                }
            })
            .or_insert(i);
    }
    let mut winners: Vec<u64> = latest.into_values().map(|i| i as u64).collect();
    winners.sort_unstable();
    let kept = arrow::compute::take_record_batch(&batch, &UInt64Array::from(winners))
        .map_err(arrow_err)?;
    let ctx = SessionContext::new();
    let df = ctx.read_batch(kept).map_err(exec)?;
    let df = match delete_when {
        Some(predicate) => {
            let pred_err = |e: DataFusionError| TransformError::DeletePredicate {
                predicate: predicate.to_string(),
                detail: first_line(&e.to_string()),
            };
            let expr = df.parse_sql_expr(predicate).map_err(pred_err)?;
            let flag = deltalake::datafusion::functions::expr_fn::coalesce(vec![expr, lit(false)]);
            df.with_column(DELETE_FLAG, flag).map_err(pred_err)?
        }
        None => df.with_column(DELETE_FLAG, lit(false)).map_err(exec)?,
    };
    let collected = df.collect().await.map_err(exec)?;
    let mut out = Latest {
        batches: Vec::with_capacity(collected.len()),
        deletes: Vec::with_capacity(collected.len()),
    };
    for batch in collected {
        if batch.num_rows() == 0 {
            continue;
        }
        let flag_at = batch.num_columns() - 1;
        let flags = batch
            .column(flag_at)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .cloned()
            .ok_or_else(|| {
                TransformError::Execute("delete_when did not evaluate to a boolean".into())
            })?;
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .take(flag_at)
            .map(|f| f.as_ref().clone())
            .collect();
        // The source's own field types (window/select keep them; nullability may differ).
        for (f, orig) in fields.iter_mut().zip(schema.fields()) {
            *f = f
                .clone()
                .with_nullable(orig.is_nullable() || f.is_nullable());
        }
        let columns = batch.columns()[..flag_at].to_vec();
        let kept = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| TransformError::Execute(e.to_string()))?;
        out.batches.push(kept);
        out.deletes.push(flags);
    }
    Ok(out)
}

/// Per row, the key as text (a JSON array of the key values as displayed), as the
/// checkpoint's tombstones store it.
pub fn row_keys(
    batch: &RecordBatch,
    keys: &[String],
) -> Result<Vec<String>, arrow::error::ArrowError> {
    let options = FormatOptions::default().with_null("null");
    let formatters = keys
        .iter()
        .map(|k| {
            let column = batch.column_by_name(k).ok_or_else(|| {
                arrow::error::ArrowError::SchemaError(format!("no key column {k}"))
            })?;
            ArrayFormatter::try_new(column.as_ref(), &options)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|i| {
            let parts: Vec<String> = formatters.iter().map(|f| f.value(i).to_string()).collect();
            serde_json::Value::from(parts).to_string()
        })
        .collect())
}

/// Per row, the sequence as text whose byte order is the column's order (integers and times
/// offset and zero-padded; strings as they are), `None` for null.
pub fn sortable_sequence(
    batch: &RecordBatch,
    column: &str,
) -> Result<Vec<Option<String>>, arrow::error::ArrowError> {
    let array = batch.column_by_name(column).ok_or_else(|| {
        arrow::error::ArrowError::SchemaError(format!("no sequence column {column}"))
    })?;
    let as_i64 = match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => None,
        t if t.is_integer() || matches!(t, DataType::Timestamp(_, _) | DataType::Date32) => {
            Some(arrow::compute::cast(array, &DataType::Int64)?)
        }
        other => {
            return Err(arrow::error::ArrowError::SchemaError(format!(
                "sequence_by column {column} is {other}; use an integer, timestamp, date or string column"
            )))
        }
    };
    if let Some(ints) = as_i64 {
        let ints = ints
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .ok_or_else(|| arrow::error::ArrowError::CastError("sequence to Int64".into()))?;
        return Ok(ints
            .iter()
            .map(|v| v.map(|v| format!("{:020}", (i128::from(v) - i128::from(i64::MIN)))))
            .collect());
    }
    let text = arrow::compute::cast(array, &DataType::Utf8)?;
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| arrow::error::ArrowError::CastError("sequence to Utf8".into()))?;
    Ok(text.iter().map(|v| v.map(str::to_string)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};

    fn input() -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("seq", DataType::Int64, true),
            Field::new("op", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 1, 2, 2, 3])),
                Arc::new(Int64Array::from(vec![5, 7, 2, 1, 1])),
                Arc::new(StringArray::from(vec![
                    Some("u"),
                    Some("d"),
                    Some("u"),
                    Some("u"),
                    None,
                ])),
            ],
        )
        .expect("batch");
        (schema, batch)
    }

    #[tokio::test]
    async fn keeps_the_latest_row_per_key_and_flags_deletes() {
        let (schema, batch) = input();
        let latest = latest_per_key(schema, vec![batch], &["id".into()], "seq", Some("op = 'd'"))
            .await
            .expect("latest");
        let mut rows: Vec<(i64, i64, bool)> = Vec::new();
        for (b, d) in latest.batches.iter().zip(&latest.deletes) {
            let id = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("id");
            let seq = b
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("seq");
            for i in 0..b.num_rows() {
                rows.push((id.value(i), seq.value(i), d.value(i)));
            }
            assert_eq!(b.num_columns(), 3);
        }
        rows.sort();
        assert_eq!(rows, vec![(1, 7, true), (2, 2, false), (3, 1, false)]);
    }

    #[tokio::test]
    async fn ties_go_to_the_later_row_and_null_sequences_lose_across_batches() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, true),
            Field::new("id", DataType::Int64, true),
            Field::new("seq", DataType::Int64, true),
            Field::new("op", DataType::Utf8, true),
        ]));
        let batch =
            |tenant: Vec<Option<&str>>, id: Vec<i64>, seq: Vec<Option<i64>>, op: Vec<&str>| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(tenant)),
                        Arc::new(Int64Array::from(id)),
                        Arc::new(Int64Array::from(seq)),
                        Arc::new(StringArray::from(op)),
                    ],
                )
                .expect("batch")
            };
        let first = batch(
            vec![Some("a"), Some("a"), Some("b"), None],
            vec![1, 2, 1, 1],
            vec![Some(3), None, Some(9), Some(1)],
            vec!["first", "first", "first", "first"],
        );
        let second = batch(
            vec![Some("a"), Some("a"), Some("b"), None],
            vec![1, 2, 1, 1],
            vec![Some(3), Some(1), Some(2), None],
            vec!["second", "second", "second", "second"],
        );
        let keys = ["tenant".to_string(), "id".to_string()];
        let latest = latest_per_key(schema.clone(), vec![first, second], &keys, "seq", None)
            .await
            .expect("latest");
        let mut rows = Vec::new();
        for b in &latest.batches {
            let col = |i: usize| b.column(i).clone();
            let (tenant, op) = (col(0), col(3));
            let tenant = tenant
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("tenant");
            let op = op.as_any().downcast_ref::<StringArray>().expect("op");
            for i in 0..b.num_rows() {
                let t = tenant.is_valid(i).then(|| tenant.value(i).to_string());
                rows.push((t, op.value(i).to_string()));
            }
        }
        rows.sort();
        let row = |t: Option<&str>, op: &str| (t.map(str::to_string), op.to_string());
        assert_eq!(
            rows,
            vec![
                // A null tenant is a key of its own; a null sequence loses to any other.
                row(None, "first"),
                // ("a", 1): the same sequence twice, the later row wins.
                row(Some("a"), "second"),
                // ("a", 2): null, then 1.
                row(Some("a"), "second"),
                // ("b", 1): 9, then 2.
                row(Some("b"), "first"),
            ]
        );
    }

    #[tokio::test]
    async fn sql_errors_name_the_columns() {
        let (schema, _) = input();
        let t = Transform::new(Some("SELECT idd FROM source"));
        let err = t.output_schema(&schema).await.expect_err("bad column");
        let text = err.to_string();
        assert!(text.starts_with("transform.sql does not plan:"), "{text}");
        assert!(
            text.ends_with("`source` has columns: id, seq, op"),
            "{text}"
        );
        let t = Transform::new(Some("SELECT id, _metadata.file_name AS f FROM source"));
        let out = t.output_schema(&schema).await.expect("plan");
        assert_eq!(out.field(1).name(), "f");
        let err = latest_per_key(schema, vec![], &["nope".into()], "seq", None)
            .await
            .expect_err("missing");
        assert!(
            err.to_string().contains("sink.keys names column 'nope'"),
            "{err}"
        );
    }

    /// Spark hides the file metadata column from `*`: it appears only where it is named.
    #[tokio::test]
    async fn a_wildcard_over_source_leaves_metadata_out_unless_named() {
        let (schema, batch) = input();
        let names =
            |s: &Schema| -> Vec<String> { s.fields().iter().map(|f| f.name().clone()).collect() };
        for (sql, expected) in [
            (
                "SELECT *, _metadata.file_name AS f FROM source",
                vec!["id", "seq", "op", "f"],
            ),
            (
                "SELECT s.*, _metadata.file_path AS p FROM source AS s",
                vec!["id", "seq", "op", "p"],
            ),
            (
                "SELECT * EXCLUDE (op), _metadata.file_size AS n FROM source",
                vec!["id", "seq", "n"],
            ),
            (
                "SELECT * FROM (SELECT *, _metadata.file_name AS f FROM source) t",
                vec!["id", "seq", "op", "f"],
            ),
            (
                "WITH x AS (SELECT *, _metadata.file_name AS f FROM source) SELECT * FROM x",
                vec!["id", "seq", "op", "f"],
            ),
            // Named, it is there.
            (
                "SELECT *, _metadata FROM source",
                vec!["id", "seq", "op", "_metadata"],
            ),
        ] {
            let t = Transform::new(Some(sql));
            let out = t.output_schema(&schema).await.expect(sql);
            assert_eq!(names(&out), expected, "{sql}");
            let with_meta =
                with_metadata(&batch, "s3://b/k/f.json", 10, 1_700_000_000_000).expect("meta");
            let rows = t.run(with_meta.schema(), vec![with_meta]).await.expect(sql);
            assert_eq!(names(rows[0].schema().as_ref()), expected, "{sql}");
        }
    }
}
