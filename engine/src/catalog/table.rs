//! A query result in memory: column names and rows of JSON values.
//!
//! Every stage that reads the dataset back (statistics, behaviour findings, reports, alerts) turns
//! DuckDB's Arrow batches into this one shape, so the conversion rules live once, next to the
//! queries: numbers stay numbers, timestamps become ISO 8601 strings, SQL NULL is `null`.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value};

use super::QueryResult;
use crate::error::{Error, Result};

fn cell_json(col: &ArrayRef, row: usize, fmt: &ArrayFormatter<'_>) -> Value {
    if col.is_null(row) {
        return Value::Null;
    }
    macro_rules! num {
        ($t:ty) => {
            Value::from(col.as_primitive::<$t>().value(row))
        };
    }
    match col.data_type() {
        DataType::Boolean => Value::Bool(col.as_boolean().value(row)),
        DataType::Int8 => num!(Int8Type),
        DataType::Int16 => num!(Int16Type),
        DataType::Int32 => num!(Int32Type),
        DataType::Int64 => num!(Int64Type),
        DataType::UInt8 => num!(UInt8Type),
        DataType::UInt16 => num!(UInt16Type),
        DataType::UInt32 => num!(UInt32Type),
        DataType::UInt64 => num!(UInt64Type),
        DataType::Float32 => {
            serde_json::Number::from_f64(col.as_primitive::<Float32Type>().value(row) as f64)
                .map_or(Value::Null, Value::Number)
        }
        DataType::Float64 => {
            serde_json::Number::from_f64(col.as_primitive::<Float64Type>().value(row))
                .map_or(Value::Null, Value::Number)
        }
        DataType::Decimal128(_, scale) => {
            let v = col.as_primitive::<Decimal128Type>().value(row);
            if *scale == 0 {
                i64::try_from(v)
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(v.to_string()))
            } else {
                let f = v as f64 / 10f64.powi(*scale as i32);
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
        }
        DataType::List(_) => {
            let items = col.as_list::<i32>().value(row);
            list_json(&items)
        }
        _ => Value::String(fmt.value(row).to_string()),
    }
}

fn list_json(items: &ArrayRef) -> Value {
    let opts = FormatOptions::default().with_null("");
    match ArrayFormatter::try_new(items.as_ref(), &opts) {
        Ok(fmt) => Value::Array(
            (0..items.len())
                .map(|i| cell_json(items, i, &fmt))
                .collect(),
        ),
        Err(_) => Value::Null,
    }
}

/// `batch` with its time-zoned timestamps (DuckDB's `TIMESTAMPTZ`, labelled with the session's
/// zone name, which is always UTC: the ICU extension is not compiled in) labelled `+00:00`, which
/// Arrow can print without a time-zone database. The instants are unchanged.
fn in_utc(batch: &RecordBatch) -> Result<RecordBatch> {
    fn utc(t: &DataType) -> Option<DataType> {
        match t {
            DataType::Timestamp(unit, Some(tz)) if &**tz != UTC => {
                Some(DataType::Timestamp(*unit, Some(UTC.into())))
            }
            DataType::List(item) => utc(item.data_type()).map(|t| {
                DataType::List(std::sync::Arc::new(item.as_ref().clone().with_data_type(t)))
            }),
            _ => None,
        }
    }
    const UTC: &str = "+00:00";
    if !batch.columns().iter().any(|c| utc(c.data_type()).is_some()) {
        return Ok(batch.clone());
    }
    let arrow = |source| Error::Arrow {
        format: "query result".into(),
        source,
    };
    let columns = batch
        .columns()
        .iter()
        .map(|c| match utc(c.data_type()) {
            Some(t) => arrow::compute::cast(c, &t).map_err(arrow),
            None => Ok(c.clone()),
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new_with_options(
        std::sync::Arc::new(arrow::datatypes::Schema::new(
            batch
                .schema()
                .fields()
                .iter()
                .zip(&columns)
                .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
                .collect::<Vec<_>>(),
        )),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(arrow)
}

fn formatters<'a>(
    batch: &'a RecordBatch,
    opts: &'a FormatOptions<'a>,
) -> Result<Vec<ArrayFormatter<'a>>> {
    batch
        .columns()
        .iter()
        .map(|c| {
            ArrayFormatter::try_new(c.as_ref(), opts).map_err(|source| Error::Arrow {
                format: "query result".into(),
                source,
            })
        })
        .collect()
}

/// A result in memory: column names and rows of JSON values.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, one value per column.
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// Converts a query result (numbers stay numbers, timestamps become ISO 8601 strings).
    pub fn from_result(result: &QueryResult) -> Result<Table> {
        let opts = FormatOptions::default().with_null("");
        let columns: Vec<String> = result
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut rows = Vec::with_capacity(result.num_rows());
        for batch in &result.batches {
            let batch = in_utc(batch)?;
            let fmts = formatters(&batch, &opts)?;
            for r in 0..batch.num_rows() {
                rows.push(
                    (0..columns.len())
                        .map(|i| cell_json(batch.column(i), r, &fmts[i]))
                        .collect(),
                );
            }
        }
        Ok(Table { columns, rows })
    }

    /// The rows as JSON objects keyed by column name.
    pub fn to_objects(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|row| {
                Value::Object(
                    self.columns
                        .iter()
                        .cloned()
                        .zip(row.iter().cloned())
                        .collect::<Map<_, _>>(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn zoned_timestamps_print_in_utc() {
        // DuckDB labels TIMESTAMPTZ with the zone's name (`now()`, `to_timestamp`, `AT TIME ZONE`).
        let ts =
            TimestampMicrosecondArray::from(vec![Some(86_400_000_000), None]).with_timezone("UTC");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "t",
            ts.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(ts)]).unwrap();
        let table = Table::from_result(&QueryResult {
            schema,
            batches: vec![batch],
        })
        .unwrap();
        assert_eq!(
            table.rows,
            vec![vec![Value::from("1970-01-02T00:00:00Z")], vec![Value::Null]]
        );
    }
}
