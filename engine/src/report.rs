//! Renders query results and summaries as tables, JSON or CSV.
//!
//! Every command that prints data goes through here, so all of them offer the same formats with
//! the same conventions: tables for people (comfy-table), JSON for programs (numbers stay numbers,
//! timestamps are ISO 8601 strings, SQL NULL is `null`), CSV with a header row.

use std::io::Write;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value};

use crate::catalog::QueryResult;
use crate::error::{Error, Result};

/// Output formats of data commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned table for a terminal.
    Table,
    /// A JSON array of objects.
    Json,
    /// CSV with a header row.
    Csv,
}

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
        _ => Value::String(fmt.value(row).to_string()),
    }
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

/// The rows as JSON objects keyed by column name.
pub fn to_json_rows(result: &QueryResult) -> Result<Vec<Value>> {
    let opts = FormatOptions::default().with_null("");
    let names: Vec<String> = result
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut rows = Vec::with_capacity(result.num_rows());
    for batch in &result.batches {
        let fmts = formatters(batch, &opts)?;
        for r in 0..batch.num_rows() {
            let mut obj = Map::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                obj.insert(name.clone(), cell_json(batch.column(i), r, &fmts[i]));
            }
            rows.push(Value::Object(obj));
        }
    }
    Ok(rows)
}

/// Writes `result` to `out` in `format`.
pub fn write_result(result: &QueryResult, format: OutputFormat, out: &mut dyn Write) -> Result<()> {
    let io = |e: std::io::Error| Error::io("cannot write", "<output>", e);
    let names: Vec<String> = result
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    match format {
        OutputFormat::Json => {
            let rows = to_json_rows(result)?;
            serde_json::to_writer_pretty(&mut *out, &rows).map_err(|e| io(e.into()))?;
            writeln!(out).map_err(io)?;
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(&names).map_err(|e| io(e.into()))?;
            let opts = FormatOptions::default().with_null("");
            for batch in &result.batches {
                let fmts = formatters(batch, &opts)?;
                for r in 0..batch.num_rows() {
                    w.write_record(fmts.iter().map(|f| f.value(r).to_string()))
                        .map_err(|e| io(e.into()))?;
                }
            }
            w.flush().map_err(io)?;
        }
        OutputFormat::Table => {
            let mut table = comfy_table::Table::new();
            table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header(&names);
            let opts = FormatOptions::default().with_null("NULL");
            for batch in &result.batches {
                let fmts = formatters(batch, &opts)?;
                for r in 0..batch.num_rows() {
                    table.add_row(fmts.iter().map(|f| f.value(r).to_string()));
                }
            }
            for (i, f) in result.schema.fields().iter().enumerate() {
                if f.data_type().is_numeric()
                    && let Some(c) = table.column_mut(i)
                {
                    c.set_cell_alignment(comfy_table::CellAlignment::Right);
                }
            }
            writeln!(out, "{table}").map_err(io)?;
            let n = result.num_rows();
            writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" }).map_err(io)?;
        }
    }
    Ok(())
}
