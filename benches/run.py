"""Benchmarks inlet side by side with its peers on the same input, in one run, as ratios.

Each workload builds its input deterministically (cached under --workdir), runs every
contender in its own process on an identical copy of the starting state, checks that each
produced the expected table, and reports wall time and peak RSS (from wait4) with the ratio
inlet : peer. `--record` writes the table into benches/README.md between the workload's
markers, with the command that produced it. See benches/README.md.
usage: python benches/run.py merge [--rows 5000000] [--batch 50000] [--repeat 3] [--record]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def run_measured(argv: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Runs argv to completion; returns (seconds, its own peak RSS in bytes from wait4, stdout)."""
    start = time.perf_counter()
    out_path = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"inlet-bench-{os.getpid()}.out"
    with open(out_path, "wb") as out, open(str(out_path) + ".err", "wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace")
    stderr = pathlib.Path(str(out_path) + ".err").read_text(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr[-4000:]}")
    return elapsed, usage.ru_maxrss * 1024, stdout


def inlet_binary(args) -> str:
    if args.inlet:
        return args.inlet
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    path = pathlib.Path(target) / "release" / "inlet"
    if not path.exists():
        sys.exit(f"no release build at {path}: run `cargo build --release` first or pass --inlet")
    return str(path)


def fresh_copy(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------------------------------
# MERGE: a batch of updates and new keys into a large keyed table.

TENANTS = 50


def merge_base(workdir: pathlib.Path, rows: int, batch: int, new_share: float) -> dict:
    """Builds (once) the base table and the landing zone of the update batch."""
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    base = workdir / f"merge-base-{rows}-{batch}"
    meta_path = base / "expected.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text()) | {"dir": str(base)}
    if base.exists():
        shutil.rmtree(base)
    (base / "landing").mkdir(parents=True)
    rng = np.random.default_rng(20261125)
    tenant = np.arange(rows) % TENANTS
    ident = np.arange(rows) // TENANTS
    seq = rng.integers(1, 1_000_000, rows)
    statuses = np.array(["new", "paid", "shipped", "returned", "cancelled"])

    def table_of(t, i, s, r):
        n = len(t)
        return pa.table({
            "tenant": pa.array([f"t{x:02d}" for x in t]),
            "id": pa.array(i, pa.int64()),
            "seq": pa.array(s, pa.int64()),
            "status": pa.array(statuses[r.integers(0, len(statuses), n)]),
            "amount": pa.array(np.round(r.random(n) * 1000, 2)),
            "qty": pa.array(r.integers(1, 50, n), pa.int64()),
            "note": pa.array([f"order {x} of tenant {y}" for x, y in zip(i, t)]),
        })

    # Written in key order, 500k rows per commit, as a table built up over time would be.
    chunk = 500_000
    for start in range(0, rows, chunk):
        end = min(rows, start + chunk)
        write_deltalake(str(base / "table"), table_of(tenant[start:end], ident[start:end], seq[start:end], rng), mode="append")

    n_new = int(batch * new_share)
    n_upd = batch - n_new
    upd = rng.choice(rows, n_upd, replace=False)
    # Half the updates carry an older sequence than the table's row: they must not apply.
    older = rng.random(n_upd) < 0.5
    upd_seq = np.where(older, seq[upd] - 1, seq[upd] + 1_000_000)
    new_t = rng.integers(0, TENANTS, n_new)
    new_i = rows // TENANTS + 1 + np.arange(n_new)
    b_t = np.concatenate([tenant[upd], new_t])
    b_i = np.concatenate([ident[upd], new_i])
    b_s = np.concatenate([upd_seq, rng.integers(1, 1_000_000, n_new)])
    source = table_of(b_t, b_i, b_s, rng)
    order = rng.permutation(batch)
    rows_out = source.take(pa.array(order)).to_pylist()
    files = 5
    per = (batch + files - 1) // files
    for f in range(files):
        with open(base / "landing" / f"part-{f:03d}.json", "w") as out:
            for row in rows_out[f * per:(f + 1) * per]:
                out.write(json.dumps(row) + "\n")
    applied = ~older
    expected = {
        "rows": rows + n_new,
        "seq_sum": int(seq.sum() - seq[upd][applied].sum() + upd_seq[applied].sum() + b_s[n_upd:].sum()),
        "updates_applied": int(applied.sum()),
        "updates_older": int(older.sum()),
        "inserts": n_new,
    }
    meta_path.write_text(json.dumps(expected))
    return expected | {"dir": str(base)}


def check_table(path: pathlib.Path, expected: dict, who: str) -> None:
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    t = DeltaTable(str(path)).to_pyarrow_table(columns=["seq"])
    got = {"rows": t.num_rows, "seq_sum": pc.sum(t["seq"]).as_py()}
    want = {k: expected[k] for k in got}
    if got != want:
        sys.exit(f"{who} produced a wrong table: {got}, expected {want}")


def bench_merge(args) -> list[dict]:
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = merge_base(work, args.rows, args.batch, 0.2)
    print(f"input ready in {time.perf_counter() - t0:.1f}s: {base}", file=sys.stderr)
    basedir = pathlib.Path(base["dir"])
    inlet = inlet_binary(args)
    python = sys.executable
    results = {"inlet": [], "python deltalake merge()": []}
    for round_ in range(args.repeat):
        for who in results:
            run = work / "merge-run"
            if run.exists():
                shutil.rmtree(run)
            run.mkdir()
            table = fresh_copy(basedir / "table", run / "table")
            if who == "inlet":
                cfg = run / "inlet.toml"
                cfg.write_text(
                    'pipeline_id = "bench_merge"\n'
                    f'[source]\nurl = "{basedir / "landing"}"\nformat = "json"\n'
                    f'[sink]\ntable = "{table}"\nmode = "merge"\nkeys = ["tenant", "id"]\nsequence_by = "seq"\n'
                    f'[checkpoint]\nlocation = "{run / "checkpoint"}"\n'
                )
                secs, rss, out = run_measured([inlet, "run", "--config", str(cfg), "--available-now", "--json"])
                stats = json.loads(out.strip().splitlines()[-1])
                if stats.get("updated") != base["updates_applied"] or stats.get("inserted") != base["inserts"]:
                    sys.exit(f"inlet's merge counts {stats} do not match the input {base}")
            else:
                secs, rss, _ = run_measured([python, str(HERE / "peers" / "py_merge.py"), str(basedir / "landing"), str(table), "tenant,id", "seq"])
            check_table(table, base, who)
            results[who].append((secs, rss))
            print(f"round {round_ + 1}: {who}: {secs:.2f}s, {rss / 2**20:.0f} MiB", file=sys.stderr)
    rows = []
    for who, runs in results.items():
        rows.append({"who": who, "secs": statistics.median(s for s, _ in runs), "rss": max(r for _, r in runs)})
    return rows


def report(workload: str, rows: list[dict], args, note: str) -> str:
    ours = rows[0]
    lines = [
        f"Command: `{args.command_line}`  ",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, {platform.python_version()} for the peers; "
        f"median of {args.repeat} runs, peak RSS the largest.  ",
        note,
        "",
        "| contender | time (s) | peak RSS (MiB) | inlet speed-up | inlet RSS share |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['who']} | {r['secs']:.2f} | {r['rss'] / 2**20:.0f} | "
            f"{r['secs'] / ours['secs']:.2f}× | {ours['rss'] / r['rss']:.2f} |"
        )
    return "\n".join(lines)


def record(workload: str, text: str) -> None:
    readme = HERE / "README.md"
    body = readme.read_text()
    begin, end = f"<!-- bench:{workload}:begin -->", f"<!-- bench:{workload}:end -->"
    if begin not in body:
        sys.exit(f"benches/README.md has no {begin} marker")
    head, rest = body.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=["merge"])
    p.add_argument("--rows", type=int, default=5_000_000)
    p.add_argument("--batch", type=int, default=50_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir", default=os.path.expanduser("~/.cache/inlet/bench"))
    p.add_argument("--inlet", help="inlet binary (default: $CARGO_TARGET_DIR/release/inlet)")
    p.add_argument("--record", action="store_true", help="write the results into benches/README.md")
    args = p.parse_args()
    args.command_line = "python benches/run.py " + " ".join(sys.argv[1:])
    rows = bench_merge(args)
    note = (
        f"Workload: a {args.batch:,}-row batch (5 JSON-lines files; 80% existing keys, half of them "
        f"with an older sequence that must not apply; 20% new keys) MERGEd on (tenant, id) by `seq` "
        f"into a {args.rows:,}-row table. Both tables are checked for the expected row count and "
        f"sequence sum."
    )
    text = report(args.workload, rows, args, note)
    print(text)
    if args.record:
        record(args.workload, text)


if __name__ == "__main__":
    main()
