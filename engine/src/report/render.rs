//! Renders query results and reports as tables, JSON, CSV or Markdown.
//!
//! Every command that prints data goes through here, so all of them offer the same formats with
//! the same conventions: tables for people (comfy-table), JSON for programs (numbers stay numbers,
//! timestamps are ISO 8601 strings, SQL NULL is `null`), CSV with a header row, Markdown tables
//! for reports that end up in documents.

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
    /// Markdown tables.
    Markdown,
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
            let fmts = formatters(batch, &opts)?;
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

/// The rows as JSON objects keyed by column name.
pub fn to_json_rows(result: &QueryResult) -> Result<Vec<Value>> {
    Ok(Table::from_result(result)?.to_objects())
}

/// A value as text: strings as they are, numbers with at most 3 decimals, null as `null_text`.
pub fn display(v: &Value, null_text: &str) -> String {
    match v {
        Value::Null => null_text.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| display(v, null_text))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            let s = format!("{f:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        other => other.to_string(),
    }
}

/// Writes `table` in `format` (JSON: an array of objects).
pub fn write_table(table: &Table, format: OutputFormat, out: &mut dyn Write) -> Result<()> {
    let io = |e: std::io::Error| Error::io("cannot write", "<output>", e);
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &table.to_objects())
                .map_err(|e| io(e.into()))?;
            writeln!(out).map_err(io)?;
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(&table.columns).map_err(|e| io(e.into()))?;
            for row in &table.rows {
                w.write_record(row.iter().map(|v| display(v, "")))
                    .map_err(|e| io(e.into()))?;
            }
            w.flush().map_err(io)?;
        }
        OutputFormat::Markdown => {
            let esc = |s: String| s.replace('|', "\\|").replace('\n', " ");
            writeln!(out, "| {} |", table.columns.join(" | ")).map_err(io)?;
            let align: Vec<&str> = (0..table.columns.len())
                .map(|i| {
                    if table.rows.iter().any(|r| r[i].is_number()) {
                        "---:"
                    } else {
                        "---"
                    }
                })
                .collect();
            writeln!(out, "|{}|", align.join("|")).map_err(io)?;
            for row in &table.rows {
                let cells: Vec<String> = row.iter().map(|v| esc(display(v, ""))).collect();
                writeln!(out, "| {} |", cells.join(" | ")).map_err(io)?;
            }
        }
        OutputFormat::Table => {
            let mut t = comfy_table::Table::new();
            t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
            t.set_header(&table.columns);
            for row in &table.rows {
                t.add_row(row.iter().map(|v| display(v, "NULL")));
            }
            for i in 0..table.columns.len() {
                if table.rows.iter().any(|r| r[i].is_number())
                    && let Some(c) = t.column_mut(i)
                {
                    c.set_cell_alignment(comfy_table::CellAlignment::Right);
                }
            }
            writeln!(out, "{t}").map_err(io)?;
            let n = table.rows.len();
            writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" }).map_err(io)?;
        }
    }
    Ok(())
}

/// Writes a query result in `format`.
pub fn write_result(result: &QueryResult, format: OutputFormat, out: &mut dyn Write) -> Result<()> {
    write_table(&Table::from_result(result)?, format, out)
}
