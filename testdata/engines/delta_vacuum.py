"""Vacuums a table of a logcrunch dataset with the `deltalake` package (delta-rs): a full vacuum
with no retention removes every file under the table that its Delta log does not list, such as the
uploads of an ingest killed before its commit. Prints the removed files as a JSON list.

Usage: delta_vacuum.py TABLE_URI
"""
import json
import sys

from deltalake import DeltaTable

table = DeltaTable(sys.argv[1])
removed = table.vacuum(retention_hours=0, enforce_retention_duration=False, full=True, dry_run=False)
print(json.dumps(sorted(removed)))
