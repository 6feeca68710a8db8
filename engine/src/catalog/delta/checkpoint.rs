//! Checkpoints of a Delta log: the table's whole state at one version as one Parquet file
//! (`NNNNNNNNNNNNNNNNNNNN.checkpoint.parquet`, one action per row in the column named after its
//! kind), and `_last_checkpoint` naming the latest, so a reader replays only the commits after it.
//! Actions go through Arrow's JSON reader and writer: a checkpoint holds exactly the JSON
//! actions of the commits, in the protocol's checkpoint schema. Removed files are not kept as
//! tombstones: logcrunch deletes a file when it stops listing it, so there is nothing left to
//! vacuum.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use serde_json::{Value, json};

use super::{LogStore, Snapshot};
use crate::error::{Error, Result};

/// The file naming the latest checkpoint.
const LAST: &str = "_last_checkpoint";

/// The checkpoint schema of the protocol, for the actions logcrunch writes.
fn schema() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let long = |n: &str| Field::new(n, DataType::Int64, true);
    let flag = |n: &str| Field::new(n, DataType::Boolean, true);
    let map = |n: &str| {
        Field::new_map(
            n,
            "key_value",
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
            false,
            true,
        )
    };
    let group = |n: &str, fields: Vec<Field>| Field::new_struct(n, Fields::from(fields), true);
    Arc::new(Schema::new(vec![
        group(
            "txn",
            vec![text("appId"), long("version"), long("lastUpdated")],
        ),
        group(
            "add",
            vec![
                text("path"),
                map("partitionValues"),
                long("size"),
                long("modificationTime"),
                flag("dataChange"),
                text("stats"),
                map("tags"),
            ],
        ),
        group(
            "remove",
            vec![text("path"), long("deletionTimestamp"), flag("dataChange")],
        ),
        group(
            "metaData",
            vec![
                text("id"),
                text("name"),
                text("description"),
                group("format", vec![text("provider"), map("options")]),
                text("schemaString"),
                Field::new_list(
                    "partitionColumns",
                    Field::new_list_field(DataType::Utf8, true),
                    true,
                ),
                long("createdTime"),
                map("configuration"),
            ],
        ),
        group(
            "protocol",
            vec![
                Field::new("minReaderVersion", DataType::Int32, true),
                Field::new("minWriterVersion", DataType::Int32, true),
            ],
        ),
    ]))
}

fn damaged(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Dataset {
        path: path.to_path_buf(),
        message: format!(
            "a Delta checkpoint cannot be read or written ({e}); delete it and _last_checkpoint (the commits it summarises stay)"
        ),
    }
}

/// The actions that make up `snap`, as a checkpoint holds them.
fn actions(snap: &Snapshot) -> Vec<Value> {
    let protocol = snap
        .protocol
        .clone()
        .unwrap_or_else(|| json!({"minReaderVersion": 1, "minWriterVersion": 2}));
    let mut out = vec![json!({ "protocol": protocol })];
    out.extend(snap.meta.iter().map(|m| json!({ "metaData": m })));
    out.extend(
        snap.txns
            .iter()
            .map(|(app, version)| json!({"txn": {"appId": app, "version": version}})),
    );
    out.extend(snap.files.values().map(|l| {
        let mut add = l.0.clone();
        if let Some(o) = add.as_object_mut() {
            o.insert("dataChange".into(), Value::Bool(false));
        }
        json!({ "add": add })
    }));
    out
}

/// Writes the checkpoint of `snap` at `version` into `store` and points `_last_checkpoint` at
/// it.
pub(super) fn write(store: &dyn LogStore, version: u64, snap: &Snapshot) -> Result<()> {
    let actions = actions(snap);
    let mut lines = Vec::new();
    for a in &actions {
        serde_json::to_writer(&mut lines, a).expect("actions serialise");
        lines.push(b'\n');
    }
    let name = format!("{version:020}.checkpoint.parquet");
    let here = || PathBuf::from(format!("{}/{name}", store.location()));
    let reader = arrow::json::ReaderBuilder::new(schema())
        .with_batch_size(actions.len().max(1))
        .build(std::io::Cursor::new(lines))
        .map_err(|e| damaged(&here(), e))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema(), None)
        .map_err(|e| damaged(&here(), e))?;
    for batch in reader {
        let batch = batch.map_err(|e| damaged(&here(), e))?;
        writer.write(&batch).map_err(|e| damaged(&here(), e))?;
    }
    let bytes = writer.into_inner().map_err(|e| damaged(&here(), e))?;
    store.replace(&name, &bytes)?;
    let last = json!({"version": version, "size": actions.len(), "sizeInBytes": bytes.len()});
    store.replace(LAST, last.to_string().as_bytes())
}

/// The state at the latest checkpoint in `store`, or `None` when it has none.
pub(super) fn latest(store: &dyn LogStore) -> Result<Option<Snapshot>> {
    let last_path = PathBuf::from(format!("{}/{LAST}", store.location()));
    let Some(text) = store.read(LAST)? else {
        return Ok(None);
    };
    let last: Value = serde_json::from_slice(&text).map_err(|e| damaged(&last_path, e))?;
    let version = last
        .get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| damaged(&last_path, "it names no version"))?;
    let parts = last.get("parts").and_then(Value::as_u64).unwrap_or(0);
    let names: Vec<String> = if parts == 0 {
        vec![format!("{version:020}.checkpoint.parquet")]
    } else {
        (1..=parts)
            .map(|i| format!("{version:020}.checkpoint.{i:010}.{parts:010}.parquet"))
            .collect()
    };
    let mut snap = Snapshot {
        version: Some(version),
        ..Snapshot::default()
    };
    for name in names {
        let path = PathBuf::from(format!("{}/{name}", store.location()));
        let bytes = store
            .read(&name)?
            .ok_or_else(|| damaged(&path, "_last_checkpoint names it, but it is missing"))?;
        read_into(&path, bytes, &mut snap)?;
    }
    Ok(Some(snap))
}

/// Applies every action of the checkpoint `bytes` (read from `path`) to `snap`.
fn read_into(path: &Path, bytes: Vec<u8>, snap: &mut Snapshot) -> Result<()> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .and_then(|b| b.build())
    .map_err(|e| damaged(path, e))?;
    for batch in reader {
        let batch = batch.map_err(|e| damaged(path, e))?;
        let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
        writer.write(&batch).map_err(|e| damaged(path, e))?;
        writer.finish().map_err(|e| damaged(path, e))?;
        for line in writer.into_inner().split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let action: Value = serde_json::from_slice(line).map_err(|e| damaged(path, e))?;
            snap.apply(&action);
        }
    }
    Ok(())
}
