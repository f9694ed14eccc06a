"""Recompute `trace report --format json` figures with DuckDB and Polars.

Usage: check_report.py REPORT.json RUN_DIR [RUN_DIR...]

Every figure the report states for a level (counts, rates, throughput,
latency distributions, lateness, cached ratio, goodput, errors), and the
rounds, turns, sessions, timeline, users and --by sections, is computed here independently
from the same Parquet parts, once with DuckDB and once with Polars, and
must agree to 1e-9 (relative). Prints what it checked; exits 1 on the
first mismatches.
"""

import json
import math
import sys

import duckdb
import polars as pl

REL = 1e-9
PS = [0.5, 0.9, 0.95, 0.99]
failures = []
checked = 0


def close(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a):
        return b is None or math.isnan(b)
    return abs(a - b) <= REL * max(1.0, abs(a), abs(b))


def expect(what, got, want):
    global checked
    checked += 1
    if not close(got, want):
        failures.append(f"{what}: report {got!r} != {want!r}")


def level_key(d):
    return (d["run_id"], d["load_mode"], float(d["load_value"]), int(d["round"]))


def main():
    report = json.load(open(sys.argv[1]))
    runs = sys.argv[2:]
    globs = [f"{r}/requests/*.parquet" for r in runs]
    con = duckdb.connect()
    files = ", ".join("'" + g.replace("'", "''") + "'" for g in globs)
    con.execute(
        f"CREATE VIEW r AS SELECT * FROM read_parquet([{files}], union_by_name=true) WHERE NOT warmup"
    )
    slo = report["slo"]
    levels = {level_key(l): l for l in report["levels"]}
    check_levels_duckdb(con, levels, slo)
    check_levels_polars(globs, levels)
    check_errors(con, levels)
    check_finish_reasons(con, levels)
    check_rounds(con, report["rounds"])
    check_groups(con, report["turns"], "turn")
    check_users(con, report["users"])
    check_user_spans(con, report["user_spans"])
    check_session_spans(con, report["session_spans"])
    check_timeline(con, report["timeline"])
    if report.get("by"):
        check_by(con, report["by"])
    print(f"checked {checked} figures against DuckDB and Polars")
    if failures:
        print("\n".join(failures[:40]))
        sys.exit(1)


DIST = ["mean", "std", "min", "p50", "p90", "p95", "p99", "max", "count"]


def dist_sql(col, where="status = 'ok'"):
    x = f"{col}::DOUBLE"
    f = f"FILTER (WHERE {where} AND {col} IS NOT NULL)"
    parts = [
        f"avg({x}) {f}",
        f"stddev_samp({x}) {f}",
        f"min({x}) {f}",
    ]
    parts += [f"quantile_cont({x}, {p}) {f}" for p in PS]
    parts += [f"max({x}) {f}", f"count({x}) {f}"]
    return ", ".join(parts)


def check_dist(what, got, row):
    for name, want in zip(DIST, row):
        expect(f"{what}.{name}", got[name], want)


def check_levels_duckdb(con, levels, slo):
    good = ["status = 'ok'"]
    if slo.get("ttft_ms") is not None:
        good.append(f"coalesce(ttft_ms <= {slo['ttft_ms']}, false)")
    if slo.get("tpot_ms") is not None:
        good.append(f"(tpot_ms IS NULL OR tpot_ms <= {slo['tpot_ms']})")
    if slo.get("e2e_ms") is not None:
        good.append(f"coalesce(e2e_ms <= {slo['e2e_ms']}, false)")
    # Ok requests whose output can be held against the max_tokens asked.
    asked = (
        "status = 'ok' AND tokens_source IN ('usage', 'tokenized') "
        "AND max_tokens IS NOT NULL AND completion_tokens IS NOT NULL"
    )
    q = f"""
    SELECT run_id, load_mode, load_value, round,
      count(*), count(*) FILTER (WHERE status = 'ok'),
      (max(end_ms) - min(scheduled_ms)) / 1000.0,
      coalesce(sum(prompt_tokens) FILTER (WHERE status = 'ok'), 0),
      coalesce(sum(completion_tokens) FILTER (WHERE status = 'ok'), 0),
      count(*) FILTER (WHERE {' AND '.join(good)}),
      quantile_cont(lateness_ms, 0.5), quantile_cont(lateness_ms, 0.99),
      sum(cached_tokens) FILTER (WHERE status = 'ok'),
      sum(prompt_tokens) FILTER (WHERE status = 'ok' AND cached_tokens IS NOT NULL),
      {dist_sql('ttft_ms')}, {dist_sql('tpot_ms')}, {dist_sql('e2e_ms')},
      count(*) FILTER (WHERE {asked} AND completion_tokens < max_tokens),
      sum(completion_tokens) FILTER (WHERE {asked}),
      sum(max_tokens) FILTER (WHERE {asked}),
      count(*) FILTER (WHERE status = 'ok' AND tokens_source = 'counted'),
      count(*) FILTER (WHERE status = 'ok' AND tokens_source = 'tokenized'),
      count(*) FILTER (WHERE status = 'ok' AND tokens_source IS NULL)
    FROM r GROUP BY ALL
    """
    rows = con.execute(q).fetchall()
    expect("number of levels", len(levels), len(rows))
    for row in rows:
        key = (row[0], row[1], float(row[2]), int(row[3]))
        l = levels.get(key)
        if l is None:
            failures.append(f"level {key} missing from the report")
            continue
        n, ok, dur, inp, out, good_n, l50, l99, cached, cbase = row[4:14]
        expect(f"{key}.requests", l["requests"], n)
        expect(f"{key}.ok", l["ok"], ok)
        expect(f"{key}.success_pct", l["success_pct"], 100.0 * ok / n)
        expect(f"{key}.duration_s", l["duration_s"], dur)
        expect(f"{key}.request_rate", l["request_rate"], n / dur)
        expect(f"{key}.input_tokens_per_s", l["input_tokens_per_s"], float(inp) / dur)
        expect(f"{key}.output_tokens_per_s", l["output_tokens_per_s"], float(out) / dur)
        expect(f"{key}.lateness_p50_ms", l["lateness_p50_ms"], l50)
        expect(f"{key}.lateness_p99_ms", l["lateness_p99_ms"], l99)
        ratio = float(cached) / float(cbase) if cbase else None
        expect(f"{key}.cached_token_ratio", l["cached_token_ratio"], ratio)
        if any(v is not None for v in slo.values()):
            expect(f"{key}.slo_attainment_pct", l["slo_attainment_pct"], 100.0 * good_n / n)
            expect(f"{key}.goodput", l["goodput"], good_n / dur)
        base = 14
        for m in ["ttft_ms", "tpot_ms", "e2e_ms"]:
            check_dist(f"{key}.{m}", l[m], row[base : base + 9])
            base += 9
        short, got, want, counted, tokenized, unknown = row[base : base + 6]
        expect(f"{key}.stopped_short", l["stopped_short"], short)
        expect(f"{key}.tokens_counted", l["tokens_counted"], counted)
        expect(f"{key}.tokens_tokenized", l["tokens_tokenized"], tokenized)
        expect(f"{key}.tokens_unknown", l["tokens_unknown"], unknown)
        fill = 100.0 * float(got) / float(want) if want else None
        expect(f"{key}.output_fill_pct", l["output_fill_pct"], fill)
    # Tokens per chunk: the server's token counts over the chunks timed.
    chunked = con.execute(
        """SELECT run_id, load_mode, load_value, round,
                  sum(completion_tokens::DOUBLE) / sum(len(itl_ms) + 1)
           FROM r WHERE status = 'ok' AND tokens_source IN ('usage', 'tokenized')
                AND completion_tokens IS NOT NULL AND ttft_ms IS NOT NULL
                AND itl_ms IS NOT NULL
           GROUP BY ALL"""
    ).fetchall()
    for run, mode, value, rnd, per_chunk in chunked:
        key = (run, mode, float(value), int(rnd))
        expect(f"{key}.tokens_per_chunk", levels[key]["tokens_per_chunk"], per_chunk)
    # The TTFT trend of open-loop levels: the least-squares slope over the
    # ok arrivals (first turns), times their span, from 10 arrivals on.
    trend = con.execute(
        """
        SELECT run_id, load_mode, load_value, round,
          regr_slope(ttft_ms, scheduled_ms) * (max(scheduled_ms) - min(scheduled_ms)),
          count(*), max(scheduled_ms) > min(scheduled_ms)
        FROM r WHERE status = 'ok' AND turn = 0 AND ttft_ms IS NOT NULL
        GROUP BY ALL"""
    ).fetchall()
    for row in trend:
        key = (row[0], row[1], float(row[2]), int(row[3]))
        if key not in levels:
            continue
        rise, n, spread = row[4:7]
        want = rise if row[1] in ("qps", "trace") and n >= 10 and spread else None
        got = levels[key]["ttft_rise_ms"]
        global checked
        checked += 1
        if (got is None) != (want is None) or (
            got is not None and abs(got - want) > 1e-6 * max(1.0, abs(want))
        ):
            failures.append(f"{key}.ttft_rise_ms: report {got!r} != {want!r}")
    itl = con.execute(
        f"""
        SELECT run_id, load_mode, load_value, round, {dist_sql('x', 'true')}
        FROM (SELECT run_id, load_mode, load_value, round, unnest(itl_ms) AS x
              FROM r WHERE status = 'ok')
        GROUP BY ALL"""
    ).fetchall()
    for row in itl:
        key = (row[0], row[1], float(row[2]), int(row[3]))
        if key in levels:
            check_dist(f"{key}.itl_ms", levels[key]["itl_ms"], row[4:13])


def check_levels_polars(globs, levels):
    lf = pl.concat([pl.scan_parquet(g) for g in globs], how="diagonal_relaxed").filter(
        ~pl.col("warmup")
    )
    ok = pl.col("status") == "ok"

    def dist(col):
        x = pl.col(col).filter(ok).cast(pl.Float64)
        return [
            x.mean().alias(f"{col}.mean"),
            x.std(ddof=1).alias(f"{col}.std"),
            x.min().alias(f"{col}.min"),
            *[x.quantile(p, "linear").alias(f"{col}.p{int(p * 100)}") for p in PS],
            x.max().alias(f"{col}.max"),
            x.count().alias(f"{col}.count"),
        ]

    keys = ["run_id", "load_mode", "load_value", "round"]
    df = lf.group_by(keys).agg(dist("ttft_ms") + dist("tpot_ms") + dist("e2e_ms")).collect()
    itl = (
        lf.filter(ok)
        .select(keys + ["itl_ms"])
        .explode("itl_ms")
        .group_by(keys)
        .agg(
            pl.col("itl_ms").cast(pl.Float64).quantile(0.99, "linear").alias("p99"),
            pl.col("itl_ms").cast(pl.Float64).mean().alias("mean"),
        )
        .collect()
    )
    for row in df.iter_rows(named=True):
        key = (row["run_id"], row["load_mode"], float(row["load_value"]), int(row["round"]))
        l = levels.get(key)
        if l is None:
            failures.append(f"polars: level {key} missing from the report")
            continue
        for m in ["ttft_ms", "tpot_ms", "e2e_ms"]:
            for name in DIST:
                pname = {"p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99"}.get(name, name)
                expect(f"polars {key}.{m}.{name}", l[m][name], row[f"{m}.{pname}"])
    for row in itl.iter_rows(named=True):
        key = (row["run_id"], row["load_mode"], float(row["load_value"]), int(row["round"]))
        if key in levels:
            expect(f"polars {key}.itl_ms.p99", levels[key]["itl_ms"]["p99"], row["p99"])
            expect(f"polars {key}.itl_ms.mean", levels[key]["itl_ms"]["mean"], row["mean"])


def check_errors(con, levels):
    rows = con.execute(
        """SELECT run_id, load_mode, load_value, round, status, count(*)
           FROM r WHERE status <> 'ok' GROUP BY ALL"""
    ).fetchall()
    seen = {}
    for run, mode, value, rnd, status, n in rows:
        seen.setdefault((run, mode, float(value), int(rnd)), {})[status] = n
    for key, l in levels.items():
        expect(f"{key}.errors", json.dumps(l["errors"], sort_keys=True),
               json.dumps(seen.get(key, {}), sort_keys=True))


def check_finish_reasons(con, levels):
    rows = con.execute(
        """SELECT run_id, load_mode, load_value, round,
                  coalesce(finish_reason, 'none'), count(*)
           FROM r WHERE status = 'ok' GROUP BY ALL"""
    ).fetchall()
    seen = {}
    for run, mode, value, rnd, reason, n in rows:
        seen.setdefault((run, mode, float(value), int(rnd)), {})[reason] = n
    for key, l in levels.items():
        expect(f"{key}.finish_reasons", json.dumps(l["finish_reasons"], sort_keys=True),
               json.dumps(seen.get(key, {}), sort_keys=True))


def check_rounds(con, rounds):
    rows = con.execute(
        """
        WITH a AS (SELECT * FROM r WHERE status = 'ok' AND round = 1),
             b AS (SELECT * FROM r WHERE status = 'ok' AND round > 1)
        SELECT b.run_id, b.load_mode, b.load_value, b.round, count(*),
               quantile_cont(b.ttft_ms - a.ttft_ms, 0.5), avg(b.ttft_ms - a.ttft_ms)
        FROM b JOIN a USING (run_id, load_mode, load_value, request_id)
        GROUP BY ALL"""
    ).fetchall()
    got = {(d["run_id"], d["load_mode"], float(d["load_value"]), d["round"]): d for d in rounds}
    expect("number of round comparisons", len(got), len(rows))
    for run, mode, value, rnd, pairs, p50, mean in rows:
        d = got.get((run, mode, float(value), int(rnd)))
        if d is None:
            failures.append(f"round {rnd} of {mode} {value} missing")
            continue
        expect(f"round {rnd} {mode} {value} pairs", d["pairs"], pairs)
        expect(f"round {rnd} {mode} {value} ttft_delta_p50_ms", d["ttft_delta_p50_ms"], p50)
        expect(f"round {rnd} {mode} {value} ttft_delta_mean_ms", d["ttft_delta_mean_ms"], mean)


def check_groups(con, groups, column):
    if not groups:
        return
    rows = con.execute(
        f"""SELECT run_id, load_mode, load_value, round, {column}, count(*),
               quantile_cont(ttft_ms, 0.5) FILTER (WHERE status = 'ok'),
               quantile_cont(e2e_ms, 0.99) FILTER (WHERE status = 'ok')
            FROM r GROUP BY ALL"""
    ).fetchall()
    got = {(g["run_id"], g["load_mode"], float(g["load_value"]), g["round"], g["group"]): g
           for g in groups}
    expect(f"number of {column} groups", len(got), len(rows))
    for run, mode, value, rnd, t, n, t50, e99 in rows:
        g = got.get((run, mode, float(value), int(rnd), f"turn {t}"))
        if g is None:
            failures.append(f"{column} {t} of {mode} {value} missing")
            continue
        expect(f"turn {t} requests", g["requests"], n)
        expect(f"turn {t} ttft p50", g["ttft_ms"]["p50"], t50)
        expect(f"turn {t} e2e p99", g["e2e_ms"]["p99"], e99)


def check_timeline(con, slices):
    # Each level cut into min(10, n // 10) slices of equal scheduled time
    # (n measured requests), when that is at least 2.
    rows = con.execute(
        """WITH lv AS (
               SELECT run_id, load_mode, load_value, round, count(*) AS n,
                      min(scheduled_ms) AS lo, max(scheduled_ms) AS hi,
                      least(10, count(*) // 10) AS slices
               FROM r GROUP BY ALL),
           cut AS (
               SELECT r.*, lv.slices,
                      least(floor((scheduled_ms - lo) / ((hi - lo) / slices)),
                            slices - 1)::INT AS k
               FROM r JOIN lv USING (run_id, load_mode, load_value, round)
               WHERE slices >= 2 AND hi > lo)
           SELECT run_id, load_mode, load_value, round, k, count(*),
                  count(*) FILTER (WHERE status = 'ok'),
                  count(*) FILTER (WHERE compaction),
                  avg(prompt_tokens::DOUBLE) FILTER (WHERE status = 'ok'),
                  quantile_cont(ttft_ms, 0.5) FILTER (WHERE status = 'ok'),
                  quantile_cont(ttft_ms, 0.99) FILTER (WHERE status = 'ok'),
                  quantile_cont(e2e_ms, 0.5) FILTER (WHERE status = 'ok'),
                  max(slices)
           FROM cut GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    by_level = {}
    for g in slices:
        key = (g["run_id"], g["load_mode"], float(g["load_value"]), g["round"])
        by_level.setdefault(key, []).append(g)
    for v in by_level.values():
        v.sort(key=lambda g: g["order"])
    # A slice nothing was scheduled in is listed with 0 requests.
    expect("number of timeline slices with requests",
           sum(1 for g in slices if g["requests"] > 0), len(rows))
    for run, mode, value, rnd, k, n, ok, comp, prompt, t50, t99, e50, n_slices in rows:
        level = by_level.get((run, mode, float(value), int(rnd)), [])
        expect(f"{mode} {value} round {rnd} slices", len(level), n_slices)
        if k >= len(level):
            failures.append(f"slice {k} of {mode} {value} missing")
            continue
        g = level[k]
        what = f"{mode} {value} slice {g['group']}"
        expect(f"{what} requests", g["requests"], n)
        expect(f"{what} ok", g["ok"], ok)
        expect(f"{what} compactions", g["compactions"], comp)
        expect(f"{what} prompt tokens mean", g["prompt_tokens_mean"], prompt)
        expect(f"{what} ttft p50", g["ttft_ms"]["p50"], t50)
        expect(f"{what} ttft p99", g["ttft_ms"]["p99"], t99)
        expect(f"{what} e2e p50", g["e2e_ms"]["p50"], e50)


def check_users(con, users):
    if not users:
        return
    rows = con.execute(
        """SELECT run_id, load_mode, load_value, round, user_id, count(*),
               count(*) FILTER (WHERE status <> 'ok'),
               quantile_cont(ttft_ms, 0.99) FILTER (WHERE status = 'ok'),
               quantile_cont(tpot_ms, 0.5) FILTER (WHERE status = 'ok'),
               (max(end_ms) - min(sent_ms)) / 1000.0
           FROM r WHERE user_id IS NOT NULL GROUP BY ALL"""
    ).fetchall()
    got = {(u["run_id"], u["load_mode"], float(u["load_value"]), u["round"], u["user_id"]): u
           for u in users}
    expect("number of users", len(got), len(rows))
    for run, mode, value, rnd, uid, n, errs, t99, tp50, span in rows:
        u = got.get((run, mode, float(value), int(rnd), uid))
        if u is None:
            failures.append(f"user {uid} missing")
            continue
        expect(f"user {uid} requests", u["requests"], n)
        expect(f"user {uid} errors", u["errors"], errs)
        expect(f"user {uid} ttft p99", u["ttft_p99_ms"], t99)
        expect(f"user {uid} tpot p50", u["tpot_p50_ms"], tp50)
        expect(f"user {uid} span", u["span_s"], span)


def check_user_spans(con, spans):
    rows = con.execute(
        """WITH u AS (
               SELECT run_id, load_mode, load_value, round, user_id,
                      (max(end_ms) - min(sent_ms)) / 1000.0 AS span
               FROM r WHERE user_id IS NOT NULL GROUP BY ALL
               HAVING max(end_ms) > min(sent_ms))
           SELECT run_id, load_mode, load_value, round, count(*),
                  quantile_cont(span, 0.5), quantile_cont(span, 0.9), max(span)
           FROM u GROUP BY ALL"""
    ).fetchall()
    got = {level_key(s): s for s in spans}
    expect("levels with user spans", len(got), len(rows))
    for run, mode, value, rnd, n, p50, p90, mx in rows:
        s = got.get((run, mode, float(value), int(rnd)))
        if s is None:
            failures.append(f"user spans of {mode} {value} missing")
            continue
        expect(f"{mode} {value} users with a span", s["users"], n)
        expect(f"{mode} {value} user span p50", s["span_s"]["p50"], p50)
        expect(f"{mode} {value} user span p90", s["span_s"]["p90"], p90)
        expect(f"{mode} {value} user span max", s["span_s"]["max"], mx)


def check_session_spans(con, spans):
    rows = con.execute(
        """WITH s AS (
               SELECT run_id, load_mode, load_value, round, session_id, count(*) AS turns,
                      bool_or(status IS DISTINCT FROM 'ok') AS failed,
                      (max(end_ms) - min(sent_ms)) / 1000.0 AS span
               FROM r GROUP BY ALL)
           SELECT run_id, load_mode, load_value, round, count(*), sum(failed::INT),
                  quantile_cont(turns, 0.5), max(turns),
                  quantile_cont(span, 0.5), quantile_cont(span, 0.9), max(span)
           FROM s GROUP BY ALL HAVING max(turns) > 1"""
    ).fetchall()
    if not rows:
        failures.append("no multi-turn level to check the session spans against")
    got = {level_key(s): s for s in spans}
    expect("levels with session spans", len(got), len(rows))
    for run, mode, value, rnd, n, failed, t50, tmax, p50, p90, mx in rows:
        s = got.get((run, mode, float(value), int(rnd)))
        if s is None:
            failures.append(f"session spans of {mode} {value} missing")
            continue
        expect(f"{mode} {value} sessions", s["sessions"], n)
        expect(f"{mode} {value} sessions failed", s["failed"], failed)
        expect(f"{mode} {value} session turns p50", s["turns"]["p50"], t50)
        expect(f"{mode} {value} session turns max", s["turns"]["max"], tmax)
        expect(f"{mode} {value} session span p50", s["span_s"]["p50"], p50)
        expect(f"{mode} {value} session span p90", s["span_s"]["p90"], p90)
        expect(f"{mode} {value} session span max", s["span_s"]["max"], mx)


def check_by(con, by):
    cols = by["columns"]
    sel = ", ".join(f"{c}::VARCHAR" for c in cols)
    rows = con.execute(
        f"""SELECT run_id, load_mode, load_value, round, {sel}, count(*),
               quantile_cont(ttft_ms, 0.99) FILTER (WHERE status = 'ok')
            FROM r GROUP BY ALL"""
    ).fetchall()
    got = {(g["run_id"], g["load_mode"], float(g["load_value"]), g["round"], g["group"]): g
           for g in by["groups"]}
    expect("number of --by groups", len(got), len(rows))
    for row in rows:
        run, mode, value, rnd = row[:4]
        vals = row[4 : 4 + len(cols)]
        n, t99 = row[4 + len(cols) :]
        label = ",".join(f"{c}={'null' if v is None else v}" for c, v in zip(cols, vals))
        g = got.get((run, mode, float(value), int(rnd), label))
        if g is None:
            failures.append(f"--by group {label} missing")
            continue
        expect(f"--by {label} requests", g["requests"], n)
        expect(f"--by {label} ttft p99", g["ttft_ms"]["p99"], t99)


if __name__ == "__main__":
    main()
