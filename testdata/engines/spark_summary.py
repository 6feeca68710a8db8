"""Reads a logcrunch dataset's `logs` table with PySpark in local mode, as any Spark job would (Hive
partitioning by `date=`), and prints the figures `logcrunch report` gives, as one JSON object:
requests, the sum of the status codes, bytes, the exact p95 response time in ms (linear
interpolation, as DuckDB's quantile_cont), requests per status and the days.

Usage: spark_summary.py DATASET_DIR
"""
import json
import sys

from pyspark.sql import SparkSession

logs = sys.argv[1] + "/logs"
spark = (
    SparkSession.builder.master("local[1]")
    .appName("logcrunch-dataset")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.session.timeZone", "UTC")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
spark.read.option("basePath", logs).parquet(logs).createOrReplaceTempView("logs")
overall = spark.sql(
    """SELECT count(*) AS requests, sum(status) AS status_sum, sum(bytes) AS bytes,
              percentile(response_time_us, 0.95) AS p95_us
       FROM logs"""
).collect()[0]
status = spark.sql("SELECT status, count(*) AS n FROM logs GROUP BY status").collect()
days = spark.sql("SELECT DISTINCT CAST(date AS STRING) AS d FROM logs ORDER BY d").collect()
print(json.dumps({
    "requests": overall["requests"],
    "status_sum": int(overall["status_sum"]),
    "bytes": int(overall["bytes"]),
    "p95_ms": round(float(overall["p95_us"]) / 1000, 3),
    "status": {str(r["status"]): r["n"] for r in status},
    "days": [r["d"] for r in days],
}))
spark.stop()
