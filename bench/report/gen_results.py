"""Write a large synthetic `requests` results set for benchmarking `trace report`.

Usage: gen_results.py SCHEMA_PART OUT_RUN_DIR ROWS [PART_ROWS]

The schema (column types and the results.schema_version key) is copied
from SCHEMA_PART, a part written by a real `trace replay`, so the files are
exactly what the replayer writes. Values are random but plausible: 4 load
levels x 2 rounds, multi-turn sessions of 8 turns, 1-32 output tokens per
request with one inter-token gap per token after the first, 1% errors.
"""

import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def main():
    schema_part, out_dir, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    part_rows = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
    schema = pq.read_schema(schema_part)
    file_meta = pq.read_metadata(schema_part).metadata or {}
    meta = {k: v for k, v in file_meta.items() if k == b"results.schema_version"}
    if not meta:
        sys.exit(f"{schema_part}: no results.schema_version key")
    schema = schema.with_metadata(meta)
    run_id = out_dir.rstrip("/").split("/")[-1]
    rng = np.random.default_rng(1)
    import os

    os.makedirs(f"{out_dir}/requests", exist_ok=True)
    t0 = time.time()
    chunk = 1_000_000
    part = 0
    total_itl = 0
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        idx = np.arange(start, start + n)
        level = idx * 8 // rows  # 8 (level, round) blocks in order
        load_value = np.array([1.0, 2.0, 4.0, 8.0])[level // 2]
        rnd = (level % 2 + 1).astype(np.uint32)
        turn = (idx % 8).astype(np.uint32)
        session = idx // 8
        status_ok = rng.random(n) > 0.01
        sched = idx.astype(np.float64) * 0.1
        late = rng.exponential(0.05, n)
        sent = sched + late
        ttft = rng.lognormal(3.5, 0.5, n)
        out_tok = rng.integers(1, 33, n).astype(np.uint32)
        itl_len = out_tok - 1
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(itl_len, out=offsets[1:])
        itl_vals = rng.gamma(4.0, 5.0, int(offsets[-1])).astype(np.float32)
        total_itl += len(itl_vals)
        csum = np.concatenate([[0.0], np.cumsum(itl_vals.astype(np.float64))])
        itl_sum = csum[offsets[1:]] - csum[offsets[:-1]]
        e2e = ttft + itl_sum
        first = sent + ttft
        end = sent + e2e
        tpot = np.where(out_tok >= 2, (e2e - ttft) / np.maximum(out_tok - 1, 1), np.nan)
        prompt = (200 + turn * 150 + rng.integers(0, 50, n)).astype(np.uint32)
        cached = np.minimum(prompt, (turn * 150)).astype(np.uint32)
        status = np.where(status_ok, "ok", "http_error")
        cols = {
            "run_id": pa.array([run_id] * n),
            "load_mode": pa.array(["qps"] * n),
            "load_value": load_value,
            "round": rnd,
            "warmup": np.zeros(n, dtype=bool),
            "request_id": pa.array([f"s{s}-t{t}" for s, t in zip(session % 1_250_000, turn)]),
            "session_id": pa.array([f"s{s}" for s in session % 1_250_000]),
            "turn": turn,
            "source": pa.array(np.where(session % 3 == 0, "sharegpt", "synth/agent")),
            "user_id": pa.nulls(n, pa.uint32()),
            "scheduled_ms": sched,
            "sent_ms": sent,
            "first_token_ms": pa.array(np.where(status_ok, first, np.nan), from_pandas=True),
            "first_reasoning_ms": pa.nulls(n, pa.float64()),
            "first_content_ms": pa.array(np.where(status_ok, first, np.nan), from_pandas=True),
            "end_ms": end,
            "ttft_ms": pa.array(np.where(status_ok, ttft, np.nan), from_pandas=True),
            "ttft_intended_ms": pa.array(np.where(status_ok, ttft + late, np.nan), from_pandas=True),
            "e2e_ms": e2e,
            "e2e_intended_ms": e2e + late,
            "tpot_ms": pa.array(np.where(status_ok, tpot, np.nan), from_pandas=True),
            "itl_ms": pa.ListArray.from_arrays(pa.array(offsets), pa.array(itl_vals)),
            "lateness_ms": late,
            "prompt_tokens": prompt,
            "completion_tokens": out_tok,
            "reasoning_tokens": pa.nulls(n, pa.uint32()),
            "cached_tokens": cached,
            "tokens_source": pa.array(["usage"] * n),
            "input_tokens_target": prompt,
            "max_tokens": out_tok,
            "output_chars": (out_tok * 4).astype(np.uint32),
            "status": pa.array(status),
            "http_status": pa.array(np.where(status_ok, 200, 503).astype(np.uint16)),
            "error": pa.nulls(n, pa.string()),
            "compaction": (turn == 7),
        }
        arrays = []
        for field in schema:
            if field.name not in cols:
                sys.exit(f"{schema_part}: unknown column {field.name}; update gen_results.py")
            a = cols[field.name]
            arrays.append(pa.array(a).cast(field.type) if not isinstance(a, pa.Array) else a.cast(field.type))
        table = pa.Table.from_arrays(arrays, schema=schema)
        string_columns = [f.name for f in schema if pa.types.is_string(f.type)]
        for off in range(0, n, part_rows):
            pq.write_table(
                table.slice(off, part_rows),
                f"{out_dir}/requests/part-{part:05d}.parquet",
                # as the replayer writes (traces::results::results_writer_properties)
                compression="snappy",
                use_dictionary=string_columns,
            )
            part += 1
    print(f"wrote {rows} rows ({total_itl} inter-token gaps) in {part} parts "
          f"in {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
