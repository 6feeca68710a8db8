//! logcrunch: a parallel analytics engine for web-server logs.
//!
//! The library is the pipeline, one module per stage, data flowing one way:
//! [`scan`] cuts inputs into line-aligned chunks, [`parse`] turns chunks into typed rows,
//! [`batch`] builds Arrow record batches (with the [`route`] of each request and its [`security`]
//! threat tags), [`sink`] writes them as Hive-partitioned Parquet, [`catalog`] keeps the manifest
//! and answers SQL through embedded DuckDB, [`stats`] keeps per-minute latency histograms,
//! [`detect`] finds anomalies in them, [`report`] renders results, [`alert`] tells people, and
//! [`archive`] compresses what was processed, compacts and retires old partitions. [`config`]
//! gathers the stages' own configuration types into the file's sections; [`ingest`] drives the
//! stages; [`generate`] writes synthetic logs for tests and benchmarks. The `logcrunch` binary is
//! a thin command-line layer over these.
//!
//! A module uses only the modules before it in this order: error, schema, parse, scan, route,
//! sink, catalog, stats, security, batch, detect, report, alert, archive, config, ingest, generate
//! (`tests/layers.rs` checks it), so there is no import cycle.
//!
//! Everything that runs SQL needs the `duckdb` feature (on by default). Without it the parsing
//! core (scan, parse, batch, sink, security signatures, configuration, manifest, series) still
//! builds, without DuckDB's C++: the fuzz targets are built that way.
#![cfg_attr(not(feature = "duckdb"), allow(dead_code, unused_imports))]

pub mod alert;
pub mod archive;
pub mod batch;
pub mod catalog;
pub mod config;
pub mod detect;
pub mod error;
pub mod generate;
#[cfg(feature = "duckdb")]
pub mod ingest;
pub mod parse;
pub mod report;
pub mod route;
pub mod scan;
pub mod schema;
pub mod security;
pub mod sink;
pub mod stats;

pub use error::{Error, Result};
