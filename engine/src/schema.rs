//! The canonical data model: one row per request, the same columns for every log format.
//!
//! Formats map their fields onto these columns (`-` becomes null); fields a format has beyond them
//! become extra `Utf8` columns after the canonical ones. Every Parquet file of the dataset carries
//! all canonical columns, so queries never depend on which format a file came from.
//! Integer columns are signed: Delta Lake, Iceberg and Spark have no unsigned integers, and
//! files written before that rule held unsigned ones ([`signed`] says what they become).
//! The schema of the per-minute `stats` table is here too: the statistics stage writes it and the
//! catalog reads it, and neither should need the other for its shape.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The string-valued canonical columns, in schema order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrCol {
    /// `client_ip`: the remote address (first public entry when the field lists proxies).
    ClientIp,
    /// `ident` (RFC 1413, almost always null).
    Ident,
    /// `user`: authenticated user.
    User,
    /// `method`: request method.
    Method,
    /// `path`: request target without the query string.
    Path,
    /// `query`: raw query string.
    Query,
    /// `protocol`: `HTTP/1.1` etc.
    Protocol,
    /// `referer`
    Referer,
    /// `user_agent`
    UserAgent,
    /// `vhost`: virtual host / server name.
    Vhost,
    /// `x_forwarded_for`: the proxy chain as logged.
    XForwardedFor,
}

impl StrCol {
    /// All string columns in schema order.
    pub const ALL: [StrCol; 11] = [
        StrCol::ClientIp,
        StrCol::Ident,
        StrCol::User,
        StrCol::Method,
        StrCol::Path,
        StrCol::Query,
        StrCol::Protocol,
        StrCol::Referer,
        StrCol::UserAgent,
        StrCol::Vhost,
        StrCol::XForwardedFor,
    ];

    /// The column's name.
    pub fn name(self) -> &'static str {
        match self {
            StrCol::ClientIp => "client_ip",
            StrCol::Ident => "ident",
            StrCol::User => "user",
            StrCol::Method => "method",
            StrCol::Path => "path",
            StrCol::Query => "query",
            StrCol::Protocol => "protocol",
            StrCol::Referer => "referer",
            StrCol::UserAgent => "user_agent",
            StrCol::Vhost => "vhost",
            StrCol::XForwardedFor => "x_forwarded_for",
        }
    }

    /// The column called `name`, if it is a canonical string column.
    pub fn from_name(name: &str) -> Option<StrCol> {
        StrCol::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Names that formats may not use for extra columns.
pub const RESERVED: [&str; 10] = [
    "ts",
    "route",
    "status",
    "bytes",
    "response_time_us",
    "upstream_response_time_us",
    "threats",
    "source",
    "offset",
    "date",
];

/// Columns of the `errors` table after `ts`, in order (all text); `source` and `offset` follow.
pub const ERROR_COLUMNS: [&str; 6] = ["level", "module", "pid", "tid", "client", "message"];

/// The Arrow schema of error-log rows: `ts`, [`ERROR_COLUMNS`], `source`, `offset`.
pub fn error_schema() -> SchemaRef {
    let mut fields = vec![Field::new(
        "ts",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )];
    fields.extend(
        ERROR_COLUMNS
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true)),
    );
    fields.push(Field::new(
        "source",
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        false,
    ));
    fields.push(Field::new("offset", DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// The Arrow schema of a format's rows: canonical columns, then `extras` as nullable `Utf8`.
pub fn arrow_schema(extras: &[String]) -> SchemaRef {
    let utf8 = |name: &str| Field::new(name, DataType::Utf8, true);
    let mut fields = vec![Field::new(
        "ts",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )];
    fields.extend(StrCol::ALL[..7].iter().map(|c| utf8(c.name())));
    fields.push(utf8("route"));
    fields.push(Field::new("status", DataType::Int16, true));
    fields.push(Field::new("bytes", DataType::Int64, true));
    fields.extend(StrCol::ALL[7..].iter().map(|c| utf8(c.name())));
    fields.push(Field::new("response_time_us", DataType::Int64, true));
    fields.push(Field::new(
        "upstream_response_time_us",
        DataType::Int64,
        true,
    ));
    fields.push(Field::new("threats", DataType::Int32, false));
    fields.push(Field::new(
        "source",
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        false,
    ));
    fields.push(Field::new("offset", DataType::Int64, false));
    fields.extend(extras.iter().map(|e| utf8(e)));
    Arc::new(Schema::new(fields))
}

/// Directory (and table) of the per-minute statistics inside the dataset.
pub const STATS_TABLE: &str = "stats";

/// The Arrow schema of the `stats` files: one row per (minute, route) with counters, quantiles and
/// the serialised latency histogram.
pub fn stats_schema() -> SchemaRef {
    let u = |n: &str| Field::new(n, DataType::Int64, false);
    let q = |n: &str| Field::new(n, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        Field::new(
            "minute",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("route", DataType::Utf8, false),
        u("requests"),
        u("c2xx"),
        u("c3xx"),
        u("c4xx"),
        u("c5xx"),
        u("timed"),
        u("sum_us"),
        q("p50_us"),
        q("p90_us"),
        q("p95_us"),
        q("p99_us"),
        q("max_us"),
        Field::new("hist", DataType::Binary, false),
    ]))
}

/// `schema` with unsigned integer columns (from files written before the columns became signed)
/// as the signed type of the same width.
pub fn signed(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                DataType::UInt8 => DataType::Int8,
                DataType::UInt16 => DataType::Int16,
                DataType::UInt32 => DataType::Int32,
                DataType::UInt64 => DataType::Int64,
                t => t.clone(),
            };
            f.as_ref().clone().with_data_type(t)
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_lists_canonical_columns_then_extras() {
        let s = arrow_schema(&["request_length".to_string()]);
        let names: Vec<_> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names[0], "ts");
        assert_eq!(names.last(), Some(&"request_length"));
        for c in StrCol::ALL {
            assert!(names.contains(&c.name()));
        }
        for r in RESERVED.iter().filter(|r| **r != "date") {
            assert!(names.contains(r), "{r}");
        }
    }
}
