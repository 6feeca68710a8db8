"""Reads a logcrunch dataset's `logs` table as a Delta table with the `deltalake` package (delta-rs,
no Spark and no logcrunch code), and prints the figures `logcrunch report` gives, as one JSON object:
requests, the sum of the status codes, bytes, the exact p95 response time in ms (linear
interpolation, as DuckDB's quantile_cont), requests per status, the days, the table's version and
the progress recorded for one source (its `txn` version).

Usage: delta_summary.py TABLE_URI [APP_ID]
"""
import json
import sys

import pyarrow.compute as pc
from deltalake import DeltaTable

table = DeltaTable(sys.argv[1])
logs = table.to_pyarrow_table(columns=["status", "bytes", "response_time_us", "date"])
p95 = pc.quantile(logs["response_time_us"], q=0.95, interpolation="linear")[0].as_py()
status = pc.value_counts(logs["status"])
print(json.dumps({
    "requests": logs.num_rows,
    "status_sum": pc.sum(logs["status"].cast("int64")).as_py(),
    "bytes": pc.sum(logs["bytes"]).as_py(),
    "p95_ms": round(p95 / 1000, 3),
    "status": {str(s["values"]): s["counts"] for s in status.to_pylist()},
    "days": sorted({str(d) for d in logs["date"].to_pylist()}),
    "version": table.version(),
    "txn": table.transaction_version(sys.argv[2]) if len(sys.argv) > 2 else None,
}))
