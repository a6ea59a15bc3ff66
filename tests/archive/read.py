"""Reads a Chanshare event archive with DuckDB and with pyarrow; prints what both saw as JSON."""
import json
import sys

import duckdb
import pyarrow.dataset as ds

root = sys.argv[1]
con = duckdb.connect()
rows = con.execute(f"select count(*) from read_parquet('{root}/**/*.parquet', hive_partitioning = true)").fetchone()[0]
max_version = dict(con.execute(
    f"select room_id, max(version) from read_parquet('{root}/**/*.parquet', hive_partitioning = true) group by room_id"
).fetchall())
types = dict(con.execute(
    f"select event_type, count(*) from read_parquet('{root}/**/*.parquet', hive_partitioning = true) group by event_type"
).fetchall())
table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
print(json.dumps({
    "duckdb_rows": rows,
    "pyarrow_rows": table.num_rows,
    "columns": table.column_names,
    "max_version": max_version,
    "event_types": types,
}))
