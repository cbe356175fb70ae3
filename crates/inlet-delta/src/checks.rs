//! The rules a table sets on its rows beyond their types (CHECK constraints, column
//! invariants, generated columns), filled in and checked on every batch before it is written.

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::datafusion::common::DFSchema;
use deltalake::datafusion::logical_expr::{ExprSchemable, Operator};
use deltalake::datafusion::physical_expr::PhysicalExpr;
use deltalake::datafusion::prelude::{binary_expr, ident, SessionContext};
use deltalake::delta_datafusion::expr::parse_predicate_expression;

/// Prefix of the table properties that hold CHECK constraints (`delta.constraints.<name>`).
const CONSTRAINT_PREFIX: &str = "delta.constraints.";

/// One rule as the table states it.
#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Constraint {
        name: String,
        sql: String,
    },
    Invariant {
        column: String,
        sql: String,
    },
    Generated {
        column: String,
        sql: String,
        data_type: DataType,
    },
}

impl Rule {
    fn sql(&self) -> &str {
        match self {
            Self::Constraint { sql, .. }
            | Self::Invariant { sql, .. }
            | Self::Generated { sql, .. } => sql,
        }
    }

    /// The rule as a message names it.
    fn describe(&self) -> String {
        match self {
            Self::Constraint { name, sql } => format!("CHECK constraint {name} ({sql})"),
            Self::Invariant { column, sql } => format!("the invariant of column {column} ({sql})"),
            Self::Generated { column, sql, .. } => {
                format!("generated column {column} (GENERATED ALWAYS AS ({sql}))")
            }
        }
    }
}

/// Why a batch cannot be written under the table's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckError {
    /// `rows` of the `checked` rows do not satisfy the rule (false or null); `sample` shows
    /// the first.
    Broken {
        rule: String,
        rows: usize,
        checked: usize,
        sample: String,
    },
    /// The rule's SQL could not be planned or evaluated over the batch.
    Unusable { rule: String, detail: String },
}

/// The table's rules, compiled for the schema of the batches written.
pub(crate) struct TableChecks {
    rules: Vec<Rule>,
    ctx: SessionContext,
    /// The rules compiled for the last batch schema seen (a writer's batches share one).
    compiled: Mutex<Option<(SchemaRef, Arc<Compiled>)>>,
}

/// One batch schema's plan: the generated columns to fill, then the predicates.
struct Compiled {
    /// Per generated column: its rule, where it is in the batch (`None`: appended), and its
    /// value.
    fill: Vec<(usize, Option<usize>, Arc<dyn PhysicalExpr>)>,
    /// The batch's schema once the missing generated columns are appended.
    filled: SchemaRef,
    /// Per rule, over `filled`: true for rows that keep it; and the columns it reads.
    predicates: Vec<(usize, Arc<dyn PhysicalExpr>, Vec<String>)>,
}

impl std::fmt::Debug for TableChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableChecks")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl TableChecks {
    /// The rules of a table with these properties and schema; `None` when it sets none.
    /// Each kind of rule counts only when the table's protocol has its feature
    /// (`checkConstraints`, `invariants`, `generatedColumns`), as delta-rs and Spark have it:
    /// `supports` says whether it does.
    pub(crate) fn of(
        properties: &std::collections::HashMap<String, String>,
        schema: &deltalake::kernel::StructType,
        supports: impl Fn(&str) -> bool,
    ) -> Result<Option<Self>, String> {
        use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
        use deltalake::kernel::StructTypeExt;
        let mut rules: Vec<Rule> = Vec::new();
        if supports("checkConstraints") {
            rules.extend(properties.iter().filter_map(|(k, v)| {
                k.strip_prefix(CONSTRAINT_PREFIX)
                    .map(|name| Rule::Constraint {
                        name: name.to_string(),
                        sql: v.clone(),
                    })
            }));
            rules.sort_by_key(Rule::describe);
        }
        if supports("invariants") {
            for inv in schema.get_invariants().map_err(|e| e.to_string())? {
                rules.push(Rule::Invariant {
                    column: inv.field_name,
                    sql: inv.invariant_sql,
                });
            }
        }
        if supports("generatedColumns") {
            for g in schema.get_generated_columns().map_err(|e| e.to_string())? {
                let data_type: DataType = (&g.data_type)
                    .try_into_arrow()
                    .map_err(|e: arrow::error::ArrowError| e.to_string())?;
                rules.push(Rule::Generated {
                    column: g.name.clone(),
                    sql: g.generation_expr.clone(),
                    data_type,
                });
            }
        }
        Ok((!rules.is_empty()).then(|| Self {
            rules,
            ctx: SessionContext::new(),
            compiled: Mutex::new(None),
        }))
    }

    /// `batch` with its generated columns filled where null (appended when missing), once
    /// every row keeps every rule; else the first rule broken, with its first offending row.
    pub(crate) fn apply(&self, batch: RecordBatch) -> Result<RecordBatch, CheckError> {
        let plan = self.compiled_for(&batch.schema())?;
        let rows = batch.num_rows();
        let mut columns = batch.columns().to_vec();
        for (index, at, expr) in &plan.fill {
            if at.is_some_and(|i| columns[i].null_count() == 0) {
                continue;
            }
            let rule = || self.rules[*index].describe();
            let value = evaluate(expr, &batch).map_err(|detail| CheckError::Unusable {
                rule: rule(),
                detail,
            })?;
            match at {
                Some(i) => {
                    let given = &columns[*i];
                    let missing =
                        arrow::compute::is_null(given).map_err(|e| CheckError::Unusable {
                            rule: rule(),
                            detail: e.to_string(),
                        })?;
                    columns[*i] = arrow::compute::kernels::zip::zip(&missing, &value, given)
                        .map_err(|e| CheckError::Unusable {
                            rule: rule(),
                            detail: e.to_string(),
                        })?;
                }
                None => columns.push(value),
            }
        }
        let filled = RecordBatch::try_new(plan.filled.clone(), columns).map_err(|e| {
            CheckError::Unusable {
                rule: "the table's generated columns".into(),
                detail: e.to_string(),
            }
        })?;
        for (index, expr, reads) in &plan.predicates {
            let rule = &self.rules[*index];
            let kept = evaluate(expr, &filled).map_err(|detail| CheckError::Unusable {
                rule: rule.describe(),
                detail,
            })?;
            let Some(kept) = kept.as_any().downcast_ref::<BooleanArray>() else {
                return Err(CheckError::Unusable {
                    rule: rule.describe(),
                    detail: format!("it is {}, not a boolean", kept.data_type()),
                });
            };
            // A null counts as broken, as delta-rs and Spark count it.
            let broken = rows - kept.true_count();
            if broken == 0 {
                continue;
            }
            let first = (0..rows)
                .find(|&r| !kept.is_valid(r) || !kept.value(r))
                .unwrap_or_default();
            return Err(CheckError::Broken {
                rule: rule.describe(),
                rows: broken,
                checked: rows,
                sample: sample(&filled, reads, first),
            });
        }
        Ok(filled)
    }

    /// The plan for batches of `schema`, compiled once per schema.
    fn compiled_for(&self, schema: &SchemaRef) -> Result<Arc<Compiled>, CheckError> {
        let mut cached = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((s, plan)) = cached.as_ref() {
            if s == schema {
                return Ok(plan.clone());
            }
        }
        let plan = Arc::new(self.compile(schema)?);
        *cached = Some((schema.clone(), plan.clone()));
        Ok(plan)
    }

    fn compile(&self, schema: &SchemaRef) -> Result<Compiled, CheckError> {
        let state = self.ctx.state();
        let unusable = |rule: &Rule, detail: String| CheckError::Unusable {
            rule: rule.describe(),
            detail,
        };
        let given =
            DFSchema::try_from(schema.as_ref().clone()).map_err(|e| CheckError::Unusable {
                rule: "the table's rules".into(),
                detail: e.to_string(),
            })?;
        let mut fill = Vec::new();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut predicates = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let Rule::Generated {
                column, data_type, ..
            } = rule
            else {
                continue;
            };
            let value = parse_predicate_expression(&given, rule.sql(), &state)
                .map_err(|e| unusable(rule, e.to_string()))?
                .cast_to(data_type, &given)
                .map_err(|e| unusable(rule, e.to_string()))?;
            let physical = self
                .ctx
                .create_physical_expr(value, &given)
                .map_err(|e| unusable(rule, e.to_string()))?;
            let at = schema.index_of(column).ok();
            if at.is_none() {
                fields.push(Field::new(column, data_type.clone(), true));
            }
            fill.push((index, at, physical));
        }
        let filled = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        let over =
            DFSchema::try_from(filled.as_ref().clone()).map_err(|e| CheckError::Unusable {
                rule: "the table's rules".into(),
                detail: e.to_string(),
            })?;
        for (index, rule) in self.rules.iter().enumerate() {
            // A generated column the batch lacked holds exactly the computed values.
            if matches!(rule, Rule::Generated { column, .. } if schema.index_of(column).is_err()) {
                continue;
            }
            let parsed = parse_predicate_expression(&over, rule.sql(), &state)
                .map_err(|e| unusable(rule, e.to_string()))?;
            let predicate = match rule {
                // A given value must equal the generated one (null only where it is null).
                Rule::Generated {
                    column, data_type, ..
                } => binary_expr(
                    ident(column),
                    Operator::IsNotDistinctFrom,
                    parsed
                        .cast_to(data_type, &over)
                        .map_err(|e| unusable(rule, e.to_string()))?,
                ),
                _ => parsed,
            };
            let mut reads: Vec<String> = predicate
                .column_refs()
                .into_iter()
                .map(|c| c.name.clone())
                .collect();
            reads.sort();
            reads.dedup();
            let physical = self
                .ctx
                .create_physical_expr(predicate, &over)
                .map_err(|e| unusable(rule, e.to_string()))?;
            predicates.push((index, physical, reads));
        }
        Ok(Compiled {
            fill,
            filled,
            predicates,
        })
    }
}

/// `expr` over `batch`, as one array of its rows.
fn evaluate(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef, String> {
    expr.evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(|e| e.to_string())
}

/// Row `row` of `batch`'s columns `names`, as `a = 1, b = NULL`.
fn sample(batch: &RecordBatch, names: &[String], row: usize) -> String {
    let options = FormatOptions::default().with_null("NULL");
    names
        .iter()
        .filter_map(|n| {
            let column = batch.column_by_name(n)?;
            let text = ArrayFormatter::try_new(column.as_ref(), &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_else(|_| "?".into());
            Some(format!("{n} = {text}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int64Type;
    use std::collections::HashMap;

    /// A table schema of `id`, `amount` and `bucket` (generated as `id % 10`), with
    /// `amount`'s invariant when `invariant` is given.
    fn table_schema(invariant: Option<&str>) -> deltalake::kernel::StructType {
        let amount_meta = invariant.map_or_else(
            || serde_json::json!({}),
            |sql| {
                serde_json::json!({"delta.invariants":
                    serde_json::json!({"expression": {"expression": sql}}).to_string()})
            },
        );
        serde_json::from_value(serde_json::json!({"type": "struct", "fields": [
            {"name": "id", "type": "long", "nullable": true, "metadata": {}},
            {"name": "amount", "type": "long", "nullable": true, "metadata": amount_meta},
            {"name": "bucket", "type": "long", "nullable": true,
             "metadata": {"delta.generationExpression": "id % 10"}},
        ]}))
        .expect("schema")
    }

    fn constraint(sql: &str) -> HashMap<String, String> {
        HashMap::from([("delta.constraints.positive".to_string(), sql.to_string())])
    }

    fn batch(columns: &[(&str, Vec<Option<i64>>)]) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, _)| Field::new(*n, DataType::Int64, true))
            .collect();
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|(_, v)| Arc::new(Int64Array::from(v.clone())) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("batch")
    }

    fn ints(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
        b.column_by_name(name)
            .expect("column")
            .as_primitive::<Int64Type>()
            .iter()
            .collect()
    }

    #[test]
    fn a_table_without_rules_has_no_checks() {
        let plain: deltalake::kernel::StructType = serde_json::from_value(serde_json::json!(
            {"type": "struct", "fields": [{"name": "id", "type": "long", "nullable": true, "metadata": {}}]}
        ))
        .expect("schema");
        let checks = TableChecks::of(&HashMap::new(), &plain, |_| true).expect("rules");
        assert!(checks.is_none());
    }

    #[test]
    fn a_batch_breaking_a_constraint_is_refused_with_its_first_offending_row() {
        let checks = TableChecks::of(&constraint("amount > 0"), &table_schema(None), |_| true)
            .expect("rules")
            .expect("some");
        let ok = checks
            .apply(batch(&[("id", vec![Some(1)]), ("amount", vec![Some(5)])]))
            .expect("kept");
        assert_eq!(ints(&ok, "amount"), vec![Some(5)]);
        let refused = checks
            .apply(batch(&[
                ("id", vec![Some(1), Some(2), Some(3), Some(4)]),
                ("amount", vec![Some(5), Some(-3), None, Some(0)]),
            ]))
            .expect_err("broken");
        assert_eq!(
            refused,
            CheckError::Broken {
                rule: "CHECK constraint positive (amount > 0)".into(),
                rows: 3,
                checked: 4,
                sample: "amount = -3".into(),
            }
        );
    }

    #[test]
    fn generated_columns_are_filled_where_missing_and_checked_where_given() {
        let checks = TableChecks::of(&HashMap::new(), &table_schema(None), |_| true)
            .expect("rules")
            .expect("some");
        // Missing from the batch: appended, computed.
        let filled = checks
            .apply(batch(&[("id", vec![Some(12), Some(7), None])]))
            .expect("filled");
        assert_eq!(ints(&filled, "bucket"), vec![Some(2), Some(7), None]);
        // Null where given: computed; a value equal to the expression's: kept.
        let filled = checks
            .apply(batch(&[
                ("id", vec![Some(12), Some(33)]),
                ("bucket", vec![None, Some(3)]),
            ]))
            .expect("filled");
        assert_eq!(ints(&filled, "bucket"), vec![Some(2), Some(3)]);
        // A value that differs: refused.
        let refused = checks
            .apply(batch(&[
                ("id", vec![Some(12), Some(33)]),
                ("bucket", vec![None, Some(4)]),
            ]))
            .expect_err("broken");
        let CheckError::Broken {
            rule, rows, sample, ..
        } = refused
        else {
            panic!("not a broken rule: {refused:?}");
        };
        assert_eq!(
            rule,
            "generated column bucket (GENERATED ALWAYS AS (id % 10))"
        );
        assert_eq!((rows, sample.as_str()), (1, "bucket = 4, id = 33"));
    }

    #[test]
    fn rules_count_only_under_their_table_feature() {
        let none = TableChecks::of(
            &constraint("amount > 0"),
            &table_schema(Some("amount < 9")),
            |_| false,
        )
        .expect("rules");
        assert!(none.is_none(), "no feature, no rule");
        let only = TableChecks::of(&constraint("amount > 0"), &table_schema(None), |f| {
            f == "checkConstraints"
        })
        .expect("rules")
        .expect("some");
        let kept = only
            .apply(batch(&[("id", vec![Some(12)]), ("amount", vec![Some(1)])]))
            .expect("kept");
        assert!(
            kept.column_by_name("bucket").is_none(),
            "generated columns left alone"
        );
    }

    #[test]
    fn a_column_invariant_is_kept() {
        let checks = TableChecks::of(&HashMap::new(), &table_schema(Some("amount < 100")), |_| {
            true
        })
        .expect("rules")
        .expect("some");
        let refused = checks
            .apply(batch(&[("id", vec![Some(1)]), ("amount", vec![Some(100)])]))
            .expect_err("broken");
        assert!(
            matches!(&refused, CheckError::Broken { rule, .. } if rule == "the invariant of column amount (amount < 100)"),
            "{refused:?}"
        );
    }

    #[test]
    fn a_rule_inlet_cannot_plan_is_named() {
        let checks = TableChecks::of(
            &constraint("no_such_fn(amount) > 0"),
            &table_schema(None),
            |_| true,
        )
        .expect("rules")
        .expect("some");
        let refused = checks
            .apply(batch(&[("id", vec![Some(1)]), ("amount", vec![Some(1)])]))
            .expect_err("unusable");
        assert!(
            matches!(&refused, CheckError::Unusable { rule, detail }
                if rule.starts_with("CHECK constraint positive") && detail.contains("no_such_fn")),
            "{refused:?}"
        );
    }
}
