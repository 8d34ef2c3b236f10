"""Render bench/RESULTS.md from every bench/results/events_N.json (one section per size) and
events_N_TAG.json (a tagged run, `bench/run --tag TAG`: its own section after the size's main one)."""
import glob
import json
import os
import sys


def fmt_ms(v):
    if v is None:
        return "–"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.1f} ms"


def fmt_bytes(b):
    for unit in ("B", "kB", "MB", "GB"):
        if b < 1024 or unit == "GB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024


PEERS = [("PG plain SQL", "pg"), ("DuckDB", "duckdb"), ("chdb", "chdb")]


def ratio(peer_ms, ms):
    """peer median / pg_insights median, worded from pg_insights' side."""
    x = peer_ms / ms
    return f"{x:.1f}× faster" if x >= 1 else f"{1 / x:.1f}× slower"


def ratios(r):
    """pg_insights entries against each peer's best (fastest) variant of the same query."""
    rows = []
    for qname, q in r["queries"].items():
        oks = {label: x for label, x in q["variants"].items() if x.get("status") == "ok"}
        best = {}
        for label, x in oks.items():
            e = x["engine"]
            if e in dict(PEERS).values() and (e not in best or x["median_ms"] < best[e][1]):
                best[e] = (label, x["median_ms"])
        for label, x in oks.items():
            if not x["engine"].startswith("pgi:"):
                continue
            cells = [ratio(best[e][1], x["median_ms"]) + f" ({fmt_ms(best[e][1])})" if e in best else "–"
                     for _, e in PEERS]
            rows.append(f"| {qname} | {label} | {fmt_ms(x['median_ms'])} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return (["pg_insights against each peer (median / median; the peer's fastest variant, its median in "
             "brackets):", "",
             "| query | pg_insights entry | median | " + " | ".join(f"vs {p}" for p, _ in PEERS) + " |",
             "|---|---|---:|" + "---:|" * len(PEERS)] + rows + [""])


def section(r):
    n = r["events"]
    tag = r.get("tag")
    out = [f"## {n:,} events ({r.get('persons', 0):,} persons)" + (f": run `{tag}`" if tag else ""), ""]
    cmds = sorted({q.get("command", r["command"]) for q in r["queries"].values()}
                  | ({r["ingest"].get("command") or r["command"]} if r.get("ingest") else set()))
    out += [f"- command{'s' if len(cmds) > 1 else ''}: " + ", ".join(f"`{c}`" for c in cmds) +
            f" (seed {r['seed']}, 1 warm-up + {r['runs']} timed runs per engine, one engine at a time)",
            f"- run: {r['started_at']} → {r.get('finished_at', '?')}; load average (1/5/15 min) at start "
            f"{' '.join(r['loadavg_start'])}, at end {' '.join(r.get('loadavg_end', ['?']))} "
            "(a shared 2-core machine: other engineers' builds may overlap)",
            f"- machine: {r['machine']['cpu']}; {r['machine']['os']}, kernel {r['machine']['kernel']}"]
    v = r.get("versions", {})
    out += [f"- versions: {v.get('postgres', '?')}; pg_insights {v.get('pg_insights', '?')} "
            f"(commit {v.get('pg_insights_commit', '?')[:12]}"
            + (f"; library {v['pg_insights_lib']}" if v.get("pg_insights_lib") else "")
            + f"); DuckDB {v.get('duckdb')}; chdb {v.get('chdb')}; "
            f"Python {v.get('python')}, pyarrow {v.get('pyarrow')}, numpy {v.get('numpy')}, "
            f"psycopg {v.get('psycopg')}"]
    s = r.get("pg_settings", {})
    out += ["- Postgres: " + ", ".join(f"{k}={val}" for k, val in s.items()) +
            "; DuckDB threads=2; chdb max_threads=2"]
    out += ["", "```", r["machine"]["free_g"], "```", ""]

    failed = r.get("failed") or []
    if failed:
        out += [f"**FAILED: {'; '.join(failed)}** (timings of failed entries are not reported)", ""]

    out += ["| query | engine | median | min | max | × fastest | vs PG plain SQL |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for qname, q in r["queries"].items():
        oks = [x for x in q["variants"].values() if x.get("status") == "ok"]
        best = min((x["median_ms"] for x in oks), default=None)
        pg_sql = next((x["median_ms"] for x in q["variants"].values()
                       if x["engine"] == "pg" and x.get("status") == "ok"), None)
        first = True
        for label, x in q["variants"].items():
            name = f"**{qname}**" if first else ""
            first = False
            if x.get("status") != "ok":
                out.append(f"| {name} | {label} | {x.get('status', '?')} | | | | |")
                continue
            fast = f"{x['median_ms'] / best:.1f}×" if best else ""
            vs = f"{pg_sql / x['median_ms']:.1f}× faster" if pg_sql and x["engine"] != "pg" else ""
            med = fmt_ms(x["median_ms"])
            if x["median_ms"] == best:
                med = f"**{med}**"
            out.append(f"| {name} | {label} | {med} | {fmt_ms(x['min_ms'])} | {fmt_ms(x['max_ms'])} | "
                       f"{fast} | {vs} |")
    out.append("")
    out += ratios(r)
    mem_rows = []
    for qname, q in r["queries"].items():
        for label, x in q["variants"].items():
            m = x.get("mem")
            if m and x.get("status") == "ok":
                mem_rows.append(f"| {qname} | {label} | {m['delta_kb'] / 1024:,.1f} MB | {m['peak_kb'] / 1024:,.1f} MB | "
                                f"{m['method']} |")
    if mem_rows:
        out += ["Peak memory of each query (sampled every 5 ms from `/proc/<pid>/status` during the warm-up "
                "run; RssAnon = private anonymous memory, so Postgres' shared buffers are not counted; "
                "'growth' is the peak minus the value just before the query; Postgres runs it in a fresh backend "
                "and adds its parallel workers; for DuckDB and chdb, which run inside the bench's Python "
                "process, growth is a lower bound because their allocators keep memory from earlier queries):", "",
                "| query | engine | growth | peak RssAnon | what is sampled |", "|---|---|---:|---:|---|"]
        out += mem_rows + [""]
    http = r.get("http")
    if http:
        out += [f"HTTP latency (`bench/http_latency.py`, {http['note']}):", "",
                "| endpoint | concurrency | duration | requests | errors | req/s | p50 | p95 | p99 | max | load avg |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for e in http["results"]:
            out.append(f"| {e['endpoint']} | {e['concurrency']} | {e['seconds']} s | {e['requests']} | "
                       f"{e['errors']} | {e['rps']:.1f} | {fmt_ms(e['p50_ms'])} | {fmt_ms(e['p95_ms'])} | "
                       f"{fmt_ms(e['p99_ms'])} | {fmt_ms(e['max_ms'])} | {' '.join(e.get('loadavg', []))} |")
        out.append("")
    out += ["Queries (identical results required from every engine before timings count):", ""]
    for qname, q in r["queries"].items():
        la = f"; load average {' '.join(q['loadavg'])} when it started" if q.get("loadavg") else ""
        out.append(f"- **{qname}**: {q['description']} — {q.get('rows_total', len(q.get('rows', [])))} result "
                   f"rows{la}")
    out.append("")

    ld = r.get("load", {})
    if ld:
        pg = ld.get("postgres", {})
        out += ["Load: Postgres ({}) COPY events {} s, persons + distinct ids {} s, indexes {} s, "
                "foreign keys {} s, VACUUM (FREEZE, ANALYZE) {} s (CSV export {} s); DuckDB {} s; chdb {} s "
                "(insert + OPTIMIZE FINAL).".format(
                    pg.get("mode"), pg.get("copy_events_s"), pg.get("copy_persons_s"),
                    pg.get("create_indexes_s"), pg.get("add_foreign_keys_s"), pg.get("vacuum_analyze_s"),
                    pg.get("csv_export_s"), ld.get("duckdb", {}).get("load_s"), ld.get("chdb", {}).get("load_s"))]
        sizes = r.get("sizes", {}).get("postgres", {})
        ch = ld.get("chdb", {})
        out += ["", "Sizes: " + ", ".join(f"{k} {fmt_bytes(b)}" for k, b in sizes.items()) +
                f"; chdb {fmt_bytes(ch.get('compressed_bytes', 0))} compressed "
                f"({fmt_bytes(ch.get('uncompressed_bytes', 0))} raw); DuckDB file "
                f"{fmt_bytes(ld.get('duckdb', {}).get('file_bytes', 0))}.", ""]
    ing = r.get("ingest")
    if ing:
        out += [f"Ingestion: `insights.capture_batch(project_id, events jsonb, NULL)`, {ing['events']:,} events "
                f"in {ing['batches']} batches of {ing['batch_size']}: **{ing['events_per_s']:,} events/s** "
                f"({ing['total_s']} s; per batch median {fmt_ms(ing['batch_ms_median'])}, p95 "
                f"{fmt_ms(ing['batch_ms_p95'])}, max {fmt_ms(ing['batch_ms_max'])}; "
                f"{ing['persons_created']:,} persons created). {ing['note']}.", ""]

    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                         f"notes_{n}{'_' + tag if tag else ''}.md")
    if os.path.exists(notes):  # hand-written analysis (plans of the nested statements, findings)
        out += [open(notes).read().rstrip(), ""]

    plans = [(q, label, x["explain"]) for q, qq in r["queries"].items()
             for label, x in qq["variants"].items() if x.get("explain")]
    if plans:
        out += ["### Postgres plans (EXPLAIN (ANALYZE, BUFFERS), run after the timed runs)", ""]
        for q, label, text in plans:
            out += [f"<details><summary>{q} — {label}</summary>", "", "```", text, "```", "", "</details>", ""]
    return out


def write(results_dir, path):
    def key(p):  # events_N.json, then its tagged runs events_N_TAG.json
        n, _, tag = os.path.basename(p)[7:-5].partition("_")
        return int(n), tag
    files = sorted(glob.glob(os.path.join(results_dir, "events_*.json")), key=key)
    lines = ["# pg_insights benchmark results", "",
             "Written by `bench/run` (see bench/README.md for the method and fairness rules); raw timings "
             "are in `bench/results/events_N.json`. Times are wall-clock, client side, warm cache.", ""]
    for f in files:
        lines += section(json.load(open(f)))
    # Hand-written sections no events_N.json carries (e.g. the HTTP load test), at the end.
    for f in sorted(glob.glob(os.path.join(results_dir, "appendix_*.md"))):
        lines += [open(f).read().rstrip(), ""]
    with open(path, "w") as fh:
        fh.write("\n".join(lines).rstrip() + "\n")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    write(os.path.join(here, "results"), sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "RESULTS.md"))
