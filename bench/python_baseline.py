"""The plain-Python baseline of the conversion benchmark.

Usage: python_baseline.py IN.json OUT.parquet

What a short script would do to turn a ShareGPT JSON array into the same
trace rows as `trace convert sharegpt`: json.load the file, walk each
conversation pairing every human message with the gpt reply that follows,
build the columns as Python lists, and write them with
pyarrow.parquet.write_table (zstd level 3, the trace writer's setting).
Only the common clean shape is handled (no system prompts, tools or odd
roles), which makes the baseline faster than a complete converter would be.
"""

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq

MESSAGE = pa.struct(
    [
        pa.field("role", pa.string(), nullable=False),
        pa.field("content", pa.string(), nullable=False),
        pa.field("tool_calls", pa.string()),
        pa.field("tool_call_id", pa.string()),
    ]
)
SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("turn", pa.uint32(), nullable=False),
        pa.field("arrival_ms", pa.float64()),
        pa.field("think_ms", pa.float64()),
        pa.field("messages", pa.list_(pa.field("item", MESSAGE, nullable=False)), nullable=False),
        pa.field("reset_context", pa.bool_(), nullable=False),
        pa.field("reference_output", pa.string()),
        pa.field("reference_tool_calls", pa.string()),
        pa.field("input_tokens", pa.uint32()),
        pa.field("hash_ids", pa.list_(pa.field("item", pa.uint64(), nullable=False))),
        pa.field("output_tokens", pa.uint32()),
        pa.field("overflow", pa.bool_(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("new_tokens", pa.uint32()),
        pa.field("prompt_tokens", pa.uint32()),
        pa.field("reference_output_tokens", pa.uint32()),
    ],
    metadata={"trace.schema_version": "1"},
)


def rows_of(record):
    """(turn, user text, reply) for each human message of a record."""
    items = record.get("conversations") or []
    turn = 0
    for i, item in enumerate(items):
        if item.get("from") != "human":
            continue
        nxt = items[i + 1] if i + 1 < len(items) else None
        reply = nxt.get("value") if nxt and nxt.get("from") == "gpt" else None
        yield turn, item.get("value") or "", reply or None
        turn += 1


def main(argv):
    src, dst = argv[1], argv[2]
    with open(src, encoding="utf-8") as f:
        records = json.load(f)
    cols = {name: [] for name in ("request_id", "session_id", "turn", "messages", "reference_output")}
    for record in records:
        sid = str(record.get("id"))
        for turn, text, reply in rows_of(record):
            cols["request_id"].append(f"{sid}#{turn}")
            cols["session_id"].append(sid)
            cols["turn"].append(turn)
            cols["messages"].append([{"role": "user", "content": text}])
            cols["reference_output"].append(reply)
    n = len(cols["turn"])
    nulls = pa.nulls(n)
    falses = pa.array([False] * n)
    arrays = {
        "request_id": pa.array(cols["request_id"], pa.string()),
        "session_id": pa.array(cols["session_id"], pa.string()),
        "turn": pa.array(cols["turn"], pa.uint32()),
        "arrival_ms": nulls.cast(pa.float64()),
        "think_ms": nulls.cast(pa.float64()),
        "messages": pa.array(cols["messages"], SCHEMA.field("messages").type),
        "reset_context": falses,
        "reference_output": pa.array(cols["reference_output"], pa.string()),
        "reference_tool_calls": nulls.cast(pa.string()),
        "input_tokens": nulls.cast(pa.uint32()),
        "hash_ids": nulls.cast(SCHEMA.field("hash_ids").type),
        "output_tokens": nulls.cast(pa.uint32()),
        "overflow": falses,
        "source": pa.array(["sharegpt"] * n, pa.string()),
        "new_tokens": nulls.cast(pa.uint32()),
        "prompt_tokens": nulls.cast(pa.uint32()),
        "reference_output_tokens": nulls.cast(pa.uint32()),
    }
    table = pa.Table.from_arrays([arrays[f.name] for f in SCHEMA], schema=SCHEMA)
    pq.write_table(table, dst, compression="zstd", compression_level=3, row_group_size=32 * 1024)
    print(f"read {len(records)} records; wrote {n} rows to {dst}")


if __name__ == "__main__":
    main(sys.argv)
