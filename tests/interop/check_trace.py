"""Reads a trace file with Polars, DuckDB and PyArrow and checks it.

Usage: check_trace.py TRACE.parquet EXPECTED_JSON

EXPECTED_JSON is a JSON object (the text itself, not a file name):

    {
      "rows": 1000,                                  # required
      "distinct": {"session_id": 500},               # optional, per column
      "nulls": {"hash_ids": 1000},                   # optional, per column
      "metadata": {"trace.block_size": "512"},       # optional, exact values
      "cells": [                                     # optional
        {"row": 0, "path": ["request_id"], "equals": "identity_0#0"},
        {"row": 2, "path": ["messages", 0, "content"], "equals": "..."}
      ]
    }

Whatever EXPECTED_JSON says, the script also checks the parts of the format
that every trace shares: the exact column names and types as each library
sees them, `trace.schema_version` = "1", unique request ids, and turns that
number each session 0, 1, 2, ... Every failed check is listed; the exit
status is 1 if any failed, 2 on bad usage.
"""

import json
import sys

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

MESSAGE_FIELDS = ["role", "content", "tool_calls", "tool_call_id"]

# (column, Polars type, DuckDB type, PyArrow type, nullable)
MESSAGE_PL = pl.List(pl.Struct({f: pl.String for f in MESSAGE_FIELDS}))
MESSAGE_DUCK = 'STRUCT("role" VARCHAR, "content" VARCHAR, tool_calls VARCHAR, tool_call_id VARCHAR)[]'
MESSAGE_PA = pa.list_(
    pa.field(
        "item",
        pa.struct(
            [
                pa.field("role", pa.string(), nullable=False),
                pa.field("content", pa.string(), nullable=False),
                pa.field("tool_calls", pa.string()),
                pa.field("tool_call_id", pa.string()),
            ]
        ),
        nullable=False,
    )
)
HASH_PA = pa.list_(pa.field("item", pa.uint64(), nullable=False))

COLUMNS = [
    ("request_id", pl.String, "VARCHAR", pa.string(), False),
    ("session_id", pl.String, "VARCHAR", pa.string(), False),
    ("turn", pl.UInt32, "UINTEGER", pa.uint32(), False),
    ("arrival_ms", pl.Float64, "DOUBLE", pa.float64(), True),
    ("think_ms", pl.Float64, "DOUBLE", pa.float64(), True),
    ("messages", MESSAGE_PL, MESSAGE_DUCK, MESSAGE_PA, False),
    ("reset_context", pl.Boolean, "BOOLEAN", pa.bool_(), False),
    ("reference_output", pl.String, "VARCHAR", pa.string(), True),
    ("reference_tool_calls", pl.String, "VARCHAR", pa.string(), True),
    ("input_tokens", pl.UInt32, "UINTEGER", pa.uint32(), True),
    ("hash_ids", pl.List(pl.UInt64), "UBIGINT[]", HASH_PA, True),
    ("output_tokens", pl.UInt32, "UINTEGER", pa.uint32(), True),
    ("overflow", pl.Boolean, "BOOLEAN", pa.bool_(), False),
    ("source", pl.String, "VARCHAR", pa.string(), False),
    ("new_tokens", pl.UInt32, "UINTEGER", pa.uint32(), True),
    ("prompt_tokens", pl.UInt32, "UINTEGER", pa.uint32(), True),
    ("reference_output_tokens", pl.UInt32, "UINTEGER", pa.uint32(), True),
]
NAMES = [c[0] for c in COLUMNS]


class Checks:
    """Collects failures instead of stopping at the first one."""

    def __init__(self):
        self.failures = []
        self.passed = 0

    def equal(self, what, got, want):
        if got == want:
            self.passed += 1
        else:
            self.failures.append(f"{what}: got {got!r}, want {want!r}")


def sql_string(text):
    return "'" + text.replace("'", "''") + "'"


def dig(value, path):
    """Follows `path` (column name, then list indexes / struct keys) into a row dict."""
    for step in path:
        value = value[step]
    return value


def check_polars(path, expected, checks):
    df = pl.read_parquet(path)
    checks.equal("polars column names", df.columns, NAMES)
    if df.columns != NAMES:
        return
    for name, pl_type, _, _, _ in COLUMNS:
        checks.equal(f"polars type of {name}", df.schema[name], pl_type)
    checks.equal("polars row count", df.height, expected["rows"])
    for column, count in expected.get("distinct", {}).items():
        checks.equal(f"polars distinct {column}", df[column].n_unique(), count)
    for column, count in expected.get("nulls", {}).items():
        checks.equal(f"polars nulls in {column}", df[column].null_count(), count)
    checks.equal("polars distinct request_id", df["request_id"].n_unique(), df.height)
    turns = df.group_by("session_id").agg(
        pl.len().alias("n"), (pl.col("turn").max() + 1).alias("span")
    )
    checks.equal(
        "polars sessions whose turns are not 0..n-1",
        turns.filter(pl.col("n") != pl.col("span")).height,
        0,
    )
    for cell in expected.get("cells", []):
        row = df.row(cell["row"], named=True)
        checks.equal(f"polars row {cell['row']} {cell['path']}", dig(row, cell["path"]), cell["equals"])


def check_duckdb(path, expected, checks):
    source = f"read_parquet({sql_string(path)}, file_row_number = true)"
    described = duckdb.sql(f"DESCRIBE SELECT * EXCLUDE (file_row_number) FROM {source}").fetchall()
    kv = {
        k.decode(): v.decode()
        for k, v in duckdb.sql(
            f"SELECT key, value FROM parquet_kv_metadata({sql_string(path)})"
        ).fetchall()
    }
    check_metadata("duckdb", kv, expected, checks)
    checks.equal("duckdb column names", [d[0] for d in described], NAMES)
    if [d[0] for d in described] != NAMES:
        return
    types = {d[0]: d[1] for d in described}
    for name, _, duck_type, _, _ in COLUMNS:
        checks.equal(f"duckdb type of {name}", types[name], duck_type)
    count = duckdb.sql(f"SELECT count(*) FROM {source}").fetchall()[0][0]
    checks.equal("duckdb row count", count, expected["rows"])
    for column, want in expected.get("distinct", {}).items():
        got = duckdb.sql(f'SELECT count(DISTINCT "{column}") FROM {source}').fetchall()[0][0]
        checks.equal(f"duckdb distinct {column}", got, want)
    for column, want in expected.get("nulls", {}).items():
        got = duckdb.sql(f'SELECT count(*) FROM {source} WHERE "{column}" IS NULL').fetchall()[0][0]
        checks.equal(f"duckdb nulls in {column}", got, want)
    got = duckdb.sql(f"SELECT count(DISTINCT request_id) FROM {source}").fetchall()[0][0]
    checks.equal("duckdb distinct request_id", got, count)
    bad_sessions = duckdb.sql(
        f"SELECT count(*) FROM (SELECT session_id FROM {source} GROUP BY session_id "
        "HAVING count(*) <> max(turn) + 1 OR min(turn) <> 0)"
    ).fetchall()[0][0]
    checks.equal("duckdb sessions whose turns are not 0..n-1", bad_sessions, 0)
    for cell in expected.get("cells", []):
        rel = duckdb.sql(
            f"SELECT * EXCLUDE (file_row_number) FROM {source} "
            f"ORDER BY file_row_number LIMIT 1 OFFSET {int(cell['row'])}"
        )
        row = dict(zip(rel.columns, rel.fetchall()[0]))
        checks.equal(f"duckdb row {cell['row']} {cell['path']}", dig(row, cell["path"]), cell["equals"])


def check_pyarrow(path, expected, checks):
    schema = pq.read_schema(path)
    kv = {k.decode(): v.decode() for k, v in (pq.read_metadata(path).metadata or {}).items()}
    check_metadata("pyarrow", kv, expected, checks)
    checks.equal("pyarrow column names", schema.names, NAMES)
    for name, _, _, pa_type, nullable in COLUMNS:
        if name in schema.names:
            field = schema.field(name)
            checks.equal(f"pyarrow type of {name}", field.type, pa_type)
            checks.equal(f"pyarrow nullability of {name}", field.nullable, nullable)


def check_metadata(reader, kv, expected, checks):
    checks.equal(f"{reader} trace.schema_version", kv.get("trace.schema_version"), "1")
    for key, want in expected.get("metadata", {}).items():
        checks.equal(f"{reader} metadata {key}", kv.get(key), want)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, expected = argv[1], json.loads(argv[2])
    if "rows" not in expected:
        print("check_trace.py: the expected JSON needs a \"rows\" count", file=sys.stderr)
        return 2
    checks = Checks()
    check_polars(path, expected, checks)
    check_duckdb(path, expected, checks)
    check_pyarrow(path, expected, checks)
    for failure in checks.failures:
        print(f"FAIL {failure}", file=sys.stderr)
    print(
        f"{path}: {checks.passed} checks passed, {len(checks.failures)} failed "
        f"(polars {pl.__version__}, duckdb {duckdb.__version__}, pyarrow {pa.__version__})"
    )
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
