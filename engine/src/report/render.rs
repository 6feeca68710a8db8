//! Renders query results and reports as tables, JSON, CSV, Markdown or HTML.
//!
//! Every command that prints data goes through here, so all of them offer the same formats with
//! the same conventions: tables for people (comfy-table), JSON for programs (numbers stay numbers,
//! timestamps are ISO 8601 strings, SQL NULL is `null`), CSV with a header row, Markdown tables
//! for reports that end up in documents.

use std::io::Write;

use serde_json::Value;

use crate::catalog::{QueryResult, Table};
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
    /// One self-contained HTML page (reports: with charts; `-o FILE` to write it to a file).
    Html,
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
        OutputFormat::Html => super::html::write_table_page(table, out)?,
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
