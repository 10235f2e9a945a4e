"""Reads a Spanlake data directory with DuckDB and pyarrow, as a user with plain Parquet tools
would, and prints the span counts as JSON."""

import json
import sys
from pathlib import Path

import duckdb
import pyarrow.dataset as ds

data = Path(sys.argv[1])
files = sorted(str(p) for p in data.rglob("*.parquet"))
glob = str(data / "**" / "*.parquet")
con = duckdb.connect()
duck = con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0]
duck_distinct = con.execute(
    f"SELECT count(DISTINCT span_id) FROM read_parquet('{glob}')"
).fetchone()[0]
# A map column must come back as a map keyed by attribute name.
duck_attr = con.execute(
    f"SELECT count(*) FROM read_parquet('{glob}') WHERE attributes['n'] IS NOT NULL"
).fetchone()[0]
table = ds.dataset(files, format="parquet").to_table(columns=["trace_id", "span_id"])
print(
    json.dumps(
        {
            "files": len(files),
            "duckdb": duck,
            "duckdb_distinct_span_ids": duck_distinct,
            "duckdb_with_attribute_n": duck_attr,
            "pyarrow": table.num_rows,
        }
    )
)
