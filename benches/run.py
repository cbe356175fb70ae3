"""Benchmarks inlet side by side with its peers on the same input, in one run, as ratios.

Each workload builds its input deterministically (cached under --workdir), runs every
contender in its own process on an identical copy of the starting state, checks that each
produced the expected table, and reports wall time and peak RSS (from wait4) with the ratio
inlet : peer. `--record` writes the table into benches/README.md between the workload's
markers, with the command that produced it. See benches/README.md.
usage: python benches/run.py bulk|small|checkpoint|merge|latency|shapes|multiline|health|scale|cost [--repeat 3] [--skip spark] [--record]
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

from scale import free_port, metric, scrape

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants now (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_measured(argv: list[str], env: dict | None = None, cpus: str | None = None) -> tuple[float, int, str]:
    """Runs argv to completion, pinned to `cpus` (a `taskset -c` list) if given; returns
    (seconds, peak RSS in bytes, stdout). Peak RSS is the
    larger of the process's own high-water mark and the sum over its process tree sampled
    every 50 ms (Spark's work happens in a JVM child of the Python driver).

    The high-water mark comes from GNU time, which forks the contender from its own small
    process: Linux keeps a process's RSS high-water mark across exec, so `wait4` on a child
    forked from this (large, after the row checks) Python process reports this process's
    RSS, not the contender's."""
    import threading

    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    start = time.perf_counter()
    out_path = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"inlet-bench-{os.getpid()}.out"
    hwm_path = pathlib.Path(str(out_path) + ".rss")
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    command = [gnu_time, "-f", "%M", "-o", str(hwm_path), *argv] if gnu_time else argv
    peak = [0]
    with open(out_path, "wb") as out, open(str(out_path) + ".err", "wb") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                peak[0] = max(peak[0], tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace")
    stderr = pathlib.Path(str(out_path) + ".err").read_text(errors="replace")
    run_measured.stderr = stderr
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr[-4000:]}")
    if gnu_time:
        own = int(hwm_path.read_text().split()[-1]) * 1024
    else:
        own = usage.ru_maxrss * 1024  # may include this process's RSS (see above)
    return elapsed, max(own, peak[0]), stdout


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
    from deltalake import DeltaTable, QueryBuilder

    # delta-rs's own reader: `to_pyarrow_table` refuses tables with deletion vectors.
    import pyarrow as pa

    q = QueryBuilder().register("t", DeltaTable(str(path))).execute("SELECT count(*) AS n, sum(seq) AS s FROM t")
    row = pa.table(q.read_all()).to_pylist()[0]
    got = {"rows": row["n"], "seq_sum": row["s"]}
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
            run, table = fresh_run(work / "merge-run", basedir / "table")
            if who == "inlet":
                secs, rss, stats = inlet_merge(inlet, run, basedir / "landing", table, None)
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


# ---------------------------------------------------------------------------------------
# W4 at scale: the same batch into tables of growing size, merge-on-read against
# copy-on-write; then the read cost of a table after many merge-on-read MERGEs.

MERGE_CONTENDERS = ("inlet deletion vectors", "inlet copy-on-write", "python deltalake merge()")


def fresh_dir(path: pathlib.Path) -> pathlib.Path:
    """`path` as an empty directory, whatever was there."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir()
    return path


def fresh_run(run: pathlib.Path, base_table: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """An empty run directory holding a fresh copy of `base_table`."""
    return fresh_dir(run), fresh_copy(base_table, run / "table")


def inlet_merge(inlet: str, run: pathlib.Path, landing: pathlib.Path, table: pathlib.Path, strategy: str | None, pid: str = "bench_merge", compact: bool = True) -> tuple[float, int, dict]:
    """One `inlet run --available-now` MERGE of `landing` into `table` (`strategy` None: the
    default; `compact` False: no auto-compaction after it); its time, peak RSS and JSON
    summary."""
    cfg = run / f"{pid}.toml"
    chosen = f'merge_strategy = "{strategy}"\n' if strategy else ""
    if not compact:
        chosen += "[maintenance]\nauto_compact = false\n"
    cfg.write_text(
        f'pipeline_id = "{pid}"\n'
        f'[source]\nurl = "{landing}"\nformat = "json"\n'
        f'[sink]\ntable = "{table}"\nmode = "merge"\nkeys = ["tenant", "id"]\nsequence_by = "seq"\n'
        f'{chosen}'
        f'[checkpoint]\nlocation = "{run / ("checkpoint-" + pid)}"\n'
    )
    secs, rss, out = run_measured([inlet, "run", "--config", str(cfg), "--available-now", "--json"])
    return secs, rss, json.loads(out.strip().splitlines()[-1])


def bench_merge_scale(args) -> list[dict]:
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    inlet = inlet_binary(args)
    rows_out = []
    for size in args.sizes:
        t0 = time.perf_counter()
        base = merge_base(work, size, args.batch, 0.2)
        print(f"{size:,}-row input ready in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        basedir = pathlib.Path(base["dir"])
        runs = {who: [] for who in MERGE_CONTENDERS}
        for round_ in range(args.repeat):
            for who in MERGE_CONTENDERS:
                run, table = fresh_run(work / "merge-scale-run", basedir / "table")
                if who.startswith("inlet"):
                    strategy = "deletion_vectors" if "deletion" in who else "copy_on_write"
                    # The base table's files are all under half the target size: at 50M rows
                    # there are enough of them for auto-compaction to rewrite the whole table
                    # after the MERGE, which the peer does not do. Timed here: the MERGE.
                    secs, rss, stats = inlet_merge(inlet, run, basedir / "landing", table, strategy, compact=False)
                    if stats.get("updated") != base["updates_applied"] or stats.get("inserted") != base["inserts"]:
                        sys.exit(f"inlet's merge counts {stats} do not match the input {base}")
                else:
                    secs, rss, _ = run_measured([sys.executable, str(HERE / "peers" / "py_merge.py"), str(basedir / "landing"), str(table), "tenant,id", "seq"])
                check_table(table, base, who)
                runs[who].append((secs, rss))
                print(f"{size:,} rows, round {round_ + 1}: {who}: {secs:.2f}s, {rss / 2**20:.0f} MiB", file=sys.stderr)
        for who, r in runs.items():
            rows_out.append({"who": who, "size": size, "secs": statistics.median(s for s, _ in r), "rss": max(x for _, x in r)})
    if args.read_merges:
        rows_out += merge_read_cost(args, inlet, work)
    return rows_out


def merge_read_cost(args, inlet: str, work: pathlib.Path) -> list[dict]:
    """`read_merges` batches of 50k updates of random keys (all newer) MERGEd one by one into
    the smallest table by each inlet strategy; then a full scan of each by Python deltalake
    and polars (median of 3)."""
    import numpy as np

    size = min(args.sizes)
    base = merge_base(work, size, args.batch, 0.2)
    basedir = pathlib.Path(base["dir"])
    rng = np.random.default_rng(7)
    landing = work / f"merge-read-{size}-{args.read_merges}"
    if not landing.exists():
        landing.mkdir()
        for b in range(args.read_merges):
            keys = rng.choice(size, args.batch, replace=False)
            with open(landing / f"b{b:03d}.json", "w") as f:
                for k in keys:
                    f.write(json.dumps({"tenant": f"t{k % TENANTS:02d}", "id": int(k // TENANTS), "seq": 2_000_000 + b,
                                        "status": "paid", "amount": 1.5, "qty": 2, "note": f"update {b}"}) + "\n")
    out = []
    for strategy in ("deletion_vectors", "copy_on_write"):
        run, table = fresh_run(work / f"merge-read-run-{strategy}", basedir / "table")
        total = 0.0
        one = run / "one"
        for b in sorted(landing.iterdir()):
            fresh_dir(one)
            shutil.copy(b, one / b.name)
            secs, _, _ = inlet_merge(inlet, run, one, table, strategy, pid=f"read_{b.stem}")
            total += secs
        dl, pl_ = read_times(table, query=True)
        out.append({"who": f"read after {args.read_merges} MERGEs: {strategy}", "size": size, "secs": total, "read_dl": dl, "read_pl": pl_,
                    "shape": table_shape(table)})
    return out


# ---------------------------------------------------------------------------------------
# Appends: W1 bulk (48 files x 40k rows) and W2 small files (3,000 files x 10 rows) of
# DynamoDB-stream-shaped JSON lines, taken by inlet and by each peer into a fresh table.

EVENTS = ["INSERT", "MODIFY", "MODIFY", "MODIFY", "REMOVE"]
STATUSES = ["new", "paid", "shipped", "returned", "cancelled"]


def stream_lines(rng, first: int, n: int) -> str:
    """n change records as a Lambda that flattens DynamoDB stream records writes them."""
    out = []
    cust = rng.integers(1, 200_000, n)
    kind = rng.integers(0, len(EVENTS), n)
    status = rng.integers(0, len(STATUSES), n)
    amount = rng.random(n) * 1000
    items = rng.integers(1, 20, n)
    secs = rng.integers(0, 86_400, n)
    for j in range(n):
        i = first + j
        t = int(secs[j])
        at = f"2026-11-25T{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}.{i % 1000:03d}Z"
        out.append(
            f'{{"n":{i},"event_id":"{i * 2654435761 % 2**32:08x}","event_name":"{EVENTS[kind[j]]}",'
            f'"event_time":"{at}","seq":"{i:021d}","pk":"CUSTOMER#{cust[j]}","sk":"ORDER#{i}",'
            f'"new_image":{{"customer_id":{cust[j]},"status":"{STATUSES[status[j]]}","amount":{amount[j]:.2f},'
            f'"items":{items[j]},"tags":["web","eu"]}}}}\n'
        )
    return "".join(out)


def append_input(workdir: pathlib.Path, name: str, files: int, rows: int) -> pathlib.Path:
    """Builds (once) a landing directory of `files` files of `rows` rows; `n` runs 0..files*rows."""
    import numpy as np

    base = workdir / f"{name}-{files}x{rows}"
    done = base / "ready"
    if done.exists():
        return base
    if base.exists():
        shutil.rmtree(base)
    (base / "landing").mkdir(parents=True)
    rng = np.random.default_rng(20261126)
    for f in range(files):
        sub = base / "landing" / f"dt=2026-11-25" / f"h{f % 24:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"events-{f:05d}.json").write_text(stream_lines(rng, f * rows, rows))
    done.write_text("")
    return base


def check_rows(path: pathlib.Path, total: int, who: str, parquet: bool = False, seed: int = 0) -> None:
    """The output holds each n in 0..total exactly once (and `seed` rows with n = -1)."""
    import pyarrow.compute as pc

    if parquet:
        import pyarrow.dataset as ds

        t = ds.dataset(str(path), format="parquet", exclude_invalid_files=True).to_table(columns=["n"])
    else:
        from deltalake import DeltaTable

        t = DeltaTable(str(path)).to_pyarrow_table(columns=["n"])
    got = (t.num_rows, pc.sum(t["n"]).as_py(), pc.count_distinct(t["n"]).as_py())
    want = (total + seed, total * (total - 1) // 2 - seed, total + min(seed, 1))
    if got != want:
        sys.exit(f"{who} produced a wrong output: (rows, sum, distinct) = {got}, expected {want}")


APPEND_PEERS = ["inlet", "inlet, table exists", "python pyarrow + write_deltalake", "polars scan_ndjson + write_delta", "spark structured streaming (parquet)"]


def inlet_append_config(run: pathlib.Path, landing: pathlib.Path, inlet: str, steady: bool) -> pathlib.Path:
    """A fresh run directory's config appending `landing` to `run/table`; with `steady`, the
    table exists first (made by another pipeline from one row of the same shape), so no
    schema is inferred."""
    out = fresh_dir(run) / "table"
    if steady:
        first = next(landing.rglob("*.json")).open().readline()
        (run / "seed").mkdir()
        (run / "seed" / "seed.json").write_text(json.dumps(dict(json.loads(first), n=-1)) + "\n")
        (run / "seed.toml").write_text(
            f'pipeline_id = "bench_seed"\n[source]\nurl = "{run / "seed"}"\n[sink]\ntable = "{out}"\n'
            f'[checkpoint]\nlocation = "{run / "seed-checkpoint"}"\n'
        )
        subprocess.run([inlet, "run", "--config", str(run / "seed.toml"), "--available-now"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cfg = run / "inlet.toml"
    cfg.write_text(
        'pipeline_id = "bench_append"\n'
        f'[source]\nurl = "{landing}"\nformat = "json"\n'
        f'[sink]\ntable = "{out}"\n'
        f'[checkpoint]\nlocation = "{run / "checkpoint"}"\n'
    )
    return cfg


def bench_append(args, files: int, rows: int, name: str, cpus: tuple = (None,), pair: bool = False) -> list[dict]:
    """Each contender once per round, in turn; with several `cpus` (taskset lists), each
    contender runs pinned to each in turn within the round (in reverse order every other
    round), so settings compared with each other run seconds apart and share the VM's slow
    and fast spells. With `pair`, each round also times [`append_pair`]."""
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = append_input(work, name, files, rows)
    landing = base / "landing"
    size = sum(p.stat().st_size for p in landing.rglob("*.json"))
    print(f"input ready in {time.perf_counter() - t0:.1f}s: {files} files, {size / 1e6:.0f} MB", file=sys.stderr)
    args.input_bytes = size
    inlet = inlet_binary(args)
    python = sys.executable
    peers = [p for p in APPEND_PEERS if not args.skip or not any(s in p for s in args.skip.split(","))]
    results = {(who, c): [] for who in peers for c in cpus}
    for round_ in range(args.repeat):
        for who in peers:
            for c in (cpus if round_ % 2 == 0 else cpus[::-1]):
                run = work / f"{name}-run"
                out = run / "table"
                if who.startswith("inlet"):
                    seed = 0 if who == "inlet" else 1
                    cfg = inlet_append_config(run, landing, inlet, steady=seed == 1)
                    secs, rss, _ = run_measured([inlet, "run", "--config", str(cfg), "--available-now", "--json"], cpus=c)
                    check_rows(out, files * rows, who, seed=seed)
                else:
                    fresh_dir(run)
                    if who.startswith("python"):
                        secs, rss, _ = run_measured([python, str(HERE / "peers" / "py_append.py"), str(landing), str(out)], cpus=c)
                        check_rows(out, files * rows, who)
                    elif who.startswith("polars"):
                        secs, rss, _ = run_measured([python, str(HERE / "peers" / "polars_append.py"), str(landing), str(out)], cpus=c)
                        check_rows(out, files * rows, who)
                    else:
                        secs, rss, _ = run_measured([python, str(HERE / "peers" / "spark_append.py"), str(landing), str(out), str(run / "spark-checkpoint")], cpus=c)
                        check_rows(out, files * rows, who, parquet=True)
                results[(who, c)].append((secs, rss))
                pinned = f" on cpus {c}" if c else ""
                print(f"round {round_ + 1}: {who}{pinned}: {secs:.2f}s, {rss / 2**20:.0f} MiB", file=sys.stderr)
        if pair:
            secs = append_pair(work, landing, inlet, files * rows)
            results.setdefault(("two runs at once, one per core", "pair"), []).append((secs, 0))
            print(f"round {round_ + 1}: two steady-state runs at once, one per core: {secs:.2f}s", file=sys.stderr)
    return [{"who": who, "cpus": c, "secs": statistics.median(s for s, _ in runs), "rss": max(r for _, r in runs),
             "rounds": [s for s, _ in runs]}
            for (who, c), runs in results.items()]


def append_pair(work: pathlib.Path, landing: pathlib.Path, inlet: str, total: int) -> float:
    """Two steady-state inlet runs at once, one pinned to each of cores 0 and 1, into tables
    of their own; the seconds until both are done. What two busy cores of this machine give
    for this work when nothing is shared between them: the ceiling of a 1 → 2 core speed-up."""
    cfgs = [inlet_append_config(work / f"pair-run-{i}", landing, inlet, steady=True) for i in (0, 1)]
    # stderr to files: a pipe read only after the other run ends could fill and stall a run.
    errs = [open(cfg.parent / "stderr.txt", "wb") for cfg in cfgs]
    start = time.perf_counter()
    procs = [subprocess.Popen(["taskset", "-c", str(i), inlet, "run", "--config", str(cfg), "--available-now"],
                              stdout=subprocess.DEVNULL, stderr=err) for i, (cfg, err) in enumerate(zip(cfgs, errs))]
    codes = [p.wait() for p in procs]
    secs = time.perf_counter() - start
    for err in errs:
        err.close()
    for cfg, code in zip(cfgs, codes):
        if code != 0:
            text = (cfg.parent / "stderr.txt").read_text(errors="replace")
            sys.exit(f"a paired inlet run failed ({code}):\n{text[-4000:]}")
    for cfg in cfgs:
        check_rows(cfg.parent / "table", total, "inlet, paired", seed=1)
    return secs


# ---------------------------------------------------------------------------------------
# W3: a checkpoint holding 10M seen files; a listing of 100k candidates deduped against it.


def checkpoint_input(workdir: pathlib.Path, inlet: str, seen: int, candidates: int) -> pathlib.Path:
    """Builds (once): a landing of `candidates` tiny files, a checkpoint that has seen `seen`
    files including all of them (inserted with sqlite3 in inlet's layout, after inlet created
    it), and the table."""
    import sqlite3

    base = workdir / f"checkpoint-{seen}-{candidates}"
    if (base / "ready").exists():
        return base
    if base.exists():
        shutil.rmtree(base)
    landing = base / "landing"
    dirs = 1000
    for d in range(dirs):
        (landing / f"d{d:03d}").mkdir(parents=True)
    for i in range(candidates):
        (landing / f"d{i % dirs:03d}" / f"f{i:08d}.json").write_text(f'{{"n":{i}}}\n')
    (base / "empty").mkdir()
    cfg = base / "inlet.toml"
    cfg.write_text(
        'pipeline_id = "bench_checkpoint"\n'
        f'[source]\nurl = "{landing}"\nmax_files_per_batch = {candidates}\n'
        f'[sink]\ntable = "{base / "table"}"\n'
        f'[checkpoint]\nlocation = "{base / "checkpoint"}"\n'
    )
    # inlet takes the candidates itself (so their ETags are the real ones), then the other
    # files are added to its checkpoint directly.
    subprocess.run([inlet, "run", "--config", str(cfg), "--available-now"], check=True, stdout=subprocess.DEVNULL)
    db = sqlite3.connect(base / "checkpoint" / "inlet.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = int(time.time() * 1000)
    prefix = f"file://{landing}"

    def rows():
        for d in range(dirs):
            for i in range(d + (candidates // dirs) * dirs, seen, dirs):
                yield (f"{prefix}/d{d:03d}/f{i:08d}.json", f"{i:x}-{now:x}-7", 7, now, now, 1, now, "committed", 1)

    db.executemany(
        "INSERT INTO files(path, etag, size, last_modified_ms, discovered_at_ms, batch_id, committed_at_ms, state, rows)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows(),
    )
    db.commit()
    (count,) = db.execute("SELECT count(*) FROM files").fetchone()
    db.close()
    if count != seen:
        sys.exit(f"checkpoint holds {count} files, expected {seen}")
    (base / "ready").write_text("")
    return base


def bench_checkpoint(args) -> list[dict]:
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    inlet = inlet_binary(args)
    t0 = time.perf_counter()
    base = checkpoint_input(work, inlet, args.seen, args.candidates)
    db = base / "checkpoint" / "inlet.db"
    print(f"input ready in {time.perf_counter() - t0:.1f}s: checkpoint {db.stat().st_size / 2**20:.0f} MiB", file=sys.stderr)
    results = {"start-up (empty listing)": [], f"list + dedupe {args.candidates:,} candidates": []}
    dedupe_ms = []
    for round_ in range(args.repeat):
        for who in results:
            cfg = base / "run.toml"
            url = base / "empty" if who.startswith("start") else base / "landing"
            cfg.write_text((base / "inlet.toml").read_text().replace(f'url = "{base / "landing"}"', f'url = "{url}"'))
            env = dict(os.environ, INLET_LOG="debug")
            secs, rss, out = run_measured([inlet, "run", "--config", str(cfg), "--available-now", "--json", "--log-format", "json"], env)
            stats = json.loads(out.strip().splitlines()[-1])
            if stats["files"] != 0:
                sys.exit(f"every candidate is in the checkpoint, yet inlet took {stats['files']} files")
            if not who.startswith("start"):
                for line in run_measured.stderr.splitlines():
                    if '"dedupe_ms"' in line:
                        fields = json.loads(line).get("fields", {})
                        dedupe_ms.append(float(fields["dedupe_ms"]))
            results[who].append((secs, rss))
            print(f"round {round_ + 1}: {who}: {secs:.2f}s, {rss / 2**20:.0f} MiB", file=sys.stderr)
    args.dedupe_ms = statistics.median(dedupe_ms) if dedupe_ms else None
    return [{"who": who, "secs": statistics.median(s for s, _ in runs), "rss": max(r for _, r in runs)} for who, runs in results.items()]


# ---------------------------------------------------------------------------------------
# W5: landing-to-commit latency in continuous SQS mode, against moto_server on loopback.


def quantile(text: str, name: str, q: float) -> float | None:
    """q-quantile of a Prometheus histogram, interpolated within its bucket."""
    buckets = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    if not buckets or buckets[-1][1] == 0:
        return None
    target = q * buckets[-1][1]
    prev = (0.0, 0.0)
    for le, count in buckets:
        if count >= target:
            if le == float("inf"):
                return prev[0]
            share = (target - prev[1]) / (count - prev[1]) if count > prev[1] else 0
            return prev[0] + (le - prev[0]) * share
        prev = (le, count)
    return None


def bench_latency(args) -> list[dict]:
    import signal

    import boto3

    inlet = inlet_binary(args)
    work = pathlib.Path(args.workdir) / "latency-run"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    import scale

    moto, endpoint = scale.start_moto(free_port())
    creds = dict(region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")
    results = []
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, **creds)
        sqs = boto3.client("sqs", endpoint_url=endpoint, **creds)
        s3.create_bucket(Bucket="landing")
        queue = sqs.create_queue(QueueName="landing-events", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(Bucket="landing", NotificationConfiguration={"QueueConfigurations": [
            {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
        cfg = work / "inlet.toml"
        cfg.write_text(
            'pipeline_id = "bench_latency"\n[source]\nurl = "s3://landing/in/"\ndiscovery = "notifications"\n'
            f'queue_url = "{queue}"\nqueue_wait = "1s"\nmax_batch_wait = "{args.max_batch_wait}"\ninclude_existing_files = false\n'
            f'storage_options = {{ aws_endpoint = "{endpoint}", aws_allow_http = "true", aws_region = "us-east-1" }}\n'
            f'[sink]\ntable = "{work / "table"}"\n[checkpoint]\nlocation = "{work / "checkpoint"}"\n'
        )
        mport = free_port()
        env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
        proc = subprocess.Popen([inlet, "run", "--config", str(cfg), "--metrics-addr", f"127.0.0.1:{mport}"], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(work / "inlet.log", "wb"))

        deadline = time.time() + 60
        while not scrape(mport) and time.time() < deadline:
            time.sleep(0.1)
        start = time.monotonic()
        for i in range(args.files):
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = "".join(json.dumps({"id": i * 2 + j, "file": i}) + "\n" for j in range(2))
            s3.put_object(Bucket="landing", Key=f"in/f-{i:05d}.json", Body=body.encode())
        deadline = time.time() + 120
        text = scrape(mport)
        while (metric(text, "inlet_files_committed_total") or 0) < args.files and time.time() < deadline:
            time.sleep(0.2)
            text = scrape(mport)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        committed = metric(text, "inlet_files_committed_total") or 0
        if committed != args.files:
            sys.exit(f"only {committed} of {args.files} files committed; see {work / 'inlet.log'}")
        from deltalake import DeltaTable

        rows = DeltaTable(str(work / "table")).to_pyarrow_table(columns=["id"]).num_rows
        if rows != 2 * args.files:
            sys.exit(f"table holds {rows} rows, expected {2 * args.files}")
        name = "inlet_landing_to_commit_seconds"
        results.append({"p50": quantile(text, name, 0.5), "p90": quantile(text, name, 0.9), "p99": quantile(text, name, 0.99),
                        "batches": metric(text, "inlet_batches_committed_total")})
    finally:
        moto.terminate()
        moto.wait()
    return results


# ---------------------------------------------------------------------------------------
# Shapes: the same changes as DynamoDB writes them through each path (issue 19), taken by
# inlet alone; and multi-line JSON arrays, beside polars read_json.


def ddb_value(v):
    """A Python value as a DynamoDB attribute value."""
    if isinstance(v, bool):
        return {"BOOL": v}
    if isinstance(v, (int, float)):
        return {"N": str(v)}
    if isinstance(v, list):
        return {"L": [ddb_value(x) for x in v]}
    if isinstance(v, dict):
        return {"M": {k: ddb_value(x) for k, x in v.items()}}
    return {"S": str(v)}


def shape_input(workdir: pathlib.Path, files: int, rows: int) -> pathlib.Path:
    """Builds (once) the W1 changes three ways: flattened JSON lines (W1's own shape),
    DynamoDB stream records one per line, and Kinesis records concatenated as Firehose
    writes them (no newlines)."""
    import numpy as np

    base = workdir / f"shapes-{files}x{rows}"
    if (base / "ready").exists():
        return base
    if base.exists():
        shutil.rmtree(base)
    rng = np.random.default_rng(20261130)
    for shape in ("lines", "stream", "kinesis"):
        (base / shape).mkdir(parents=True)
    for f in range(files):
        lines = stream_lines(rng, f * rows, rows).splitlines()
        (base / "lines" / f"events-{f:05d}.json").write_text("\n".join(lines) + "\n")
        stream, kinesis = [], []
        for line in lines:
            r = json.loads(line)
            keys = {"pk": {"S": r["pk"]}, "sk": {"S": r["sk"]}}
            image = {k: ddb_value(v) for k, v in r["new_image"].items()} | keys | {"n": {"N": str(r["n"])}}
            ms = 1_764_000_000_000 + r["n"]
            ddb = {"ApproximateCreationDateTime": ms // 1000, "Keys": keys, "NewImage": image,
                   "SequenceNumber": r["seq"], "StreamViewType": "NEW_IMAGE"}
            op = "MODIFY" if r["event_name"] == "REMOVE" else r["event_name"]
            stream.append(json.dumps({"eventID": r["event_id"], "eventName": op, "eventSource": "aws:dynamodb", "dynamodb": ddb}))
            kddb = {"ApproximateCreationDateTime": ms, "Keys": keys, "NewImage": image, "SizeBytes": 200}
            kinesis.append(json.dumps({"awsRegion": "eu-west-1", "eventID": r["event_id"] + f"-{r['n']}", "eventName": op,
                                       "userIdentity": None, "recordFormat": "application/json", "tableName": "orders",
                                       "dynamodb": kddb, "eventSource": "aws:dynamodb"}))
        (base / "stream" / f"events-{f:05d}.json").write_text("\n".join(stream) + "\n")
        (base / "kinesis" / f"firehose-{f:05d}").write_text("".join(kinesis))
    (base / "ready").write_text("")
    return base


def bench_shapes(args) -> list[dict]:
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = shape_input(work, args.files, args.rows)
    print(f"input ready in {time.perf_counter() - t0:.1f}s: {base}", file=sys.stderr)
    inlet = inlet_binary(args)
    contenders = {
        "inlet, flattened JSON lines (W1's shape)": ("lines", "json"),
        "inlet, DynamoDB stream records (`dynamodb`)": ("stream", "dynamodb"),
        "inlet, Kinesis records concatenated by Firehose (`dynamodb`)": ("kinesis", "dynamodb"),
    }
    results = {who: [] for who in contenders}
    args.sizes = {}
    for round_ in range(args.repeat):
        for who, (shape, fmt) in contenders.items():
            landing = base / shape
            args.sizes[who] = sum(p.stat().st_size for p in landing.iterdir())
            run = work / "shapes-run"
            fresh_dir(run)
            out = run / "table"
            cfg = run / "inlet.toml"
            cfg.write_text(
                'pipeline_id = "bench_shapes"\n'
                f'[source]\nurl = "{landing}"\nformat = "{fmt}"\n'
                f'[sink]\ntable = "{out}"\n[checkpoint]\nlocation = "{run / "checkpoint"}"\n'
            )
            secs, rss, _ = run_measured([inlet, "run", "--config", str(cfg), "--available-now", "--json"])
            check_rows(out, args.files * args.rows, who)
            results[who].append((secs, rss))
            print(f"round {round_ + 1}: {who}: {secs:.2f}s, {rss / 2**20:.0f} MiB", file=sys.stderr)
    return [{"who": who, "secs": statistics.median(s for s, _ in runs), "rss": max(r for _, r in runs),
             "bytes": args.sizes[who]} for who, runs in results.items()]


def multiline_input(workdir: pathlib.Path, files: int, rows: int) -> pathlib.Path:
    """Builds (once) `files` files, each one JSON array of `rows` W1-shaped objects."""
    import numpy as np

    base = workdir / f"multiline-{files}x{rows}"
    if (base / "ready").exists():
        return base
    if base.exists():
        shutil.rmtree(base)
    (base / "landing").mkdir(parents=True)
    rng = np.random.default_rng(20261131)
    for f in range(files):
        objects = stream_lines(rng, f * rows, rows).splitlines()
        (base / "landing" / f"array-{f:05d}.json").write_text("[\n" + ",\n".join(objects) + "\n]\n")
    (base / "ready").write_text("")
    return base


def bench_multiline(args) -> list[dict]:
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    base = multiline_input(work, args.files, args.rows)
    landing = base / "landing"
    args.input_bytes = sum(p.stat().st_size for p in landing.iterdir())
    inlet = inlet_binary(args)
    results = {"inlet (multiline = true)": [], "polars read_json + write_delta": []}
    for round_ in range(args.repeat):
        for who in results:
            run = work / "multiline-run"
            fresh_dir(run)
            out = run / "table"
            if who.startswith("inlet"):
                cfg = run / "inlet.toml"
                cfg.write_text(
                    'pipeline_id = "bench_multiline"\n'
                    f'[source]\nurl = "{landing}"\nmultiline = true\n'
                    f'[sink]\ntable = "{out}"\n[checkpoint]\nlocation = "{run / "checkpoint"}"\n'
                )
                secs, rss, _ = run_measured([inlet, "run", "--config", str(cfg), "--available-now", "--json"])
            else:
                secs, rss, _ = run_measured([sys.executable, str(HERE / "peers" / "polars_read_json.py"), str(landing), str(out)])
            check_rows(out, args.files * args.rows, who)
            results[who].append((secs, rss))
            print(f"round {round_ + 1}: {who}: {secs:.2f}s, {rss / 2**20:.0f} MiB", file=sys.stderr)
    return [{"who": who, "secs": statistics.median(s for s, _ in runs), "rss": max(r for _, r in runs)} for who, runs in results.items()]


# ---------------------------------------------------------------------------------------
# W6 "a month in an hour": many small batches with table maintenance on and off.


def health_merge_input(workdir: pathlib.Path, rows: int, batches: int, per: int) -> pathlib.Path:
    """Builds (once) `batches` files of `per` updates of random existing keys of the W4 base
    table (sequence above any in the table, so every one applies)."""
    import numpy as np

    base = workdir / f"health-merge-{rows}-{batches}x{per}"
    done = base / "ready"
    if done.exists():
        return base
    if base.exists():
        shutil.rmtree(base)
    (base / "landing").mkdir(parents=True)
    rng = np.random.default_rng(20261130)
    seq = 2_000_000
    for b in range(batches):
        keys = rng.choice(rows, per, replace=False)
        with open(base / "landing" / f"changes-{b:05d}.json", "w") as out:
            for k in keys:
                seq += 1
                out.write(json.dumps({
                    "tenant": f"t{int(k) % TENANTS:02d}", "id": int(k) // TENANTS, "seq": seq,
                    "status": "changed", "amount": float(seq % 1000), "qty": int(seq % 50),
                    "note": f"change {seq}",
                }) + "\n")
    done.write_text("")
    return base


def read_times(path: pathlib.Path, query: bool = False) -> tuple[float, float]:
    """Median seconds (of 3) for Python deltalake and for polars to read the whole table;
    with `query`, deltalake reads through its QueryBuilder (delta-rs's DataFusion scan, which
    applies deletion vectors; `to_pyarrow_table` refuses them)."""
    import polars as pl
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder

    def timed(f) -> float:
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            f()
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs)

    def scan():
        if query:
            pa.table(QueryBuilder().register("t", DeltaTable(str(path))).execute("SELECT * FROM t").read_all())
        else:
            DeltaTable(str(path)).to_pyarrow_table()

    return (timed(scan), timed(lambda: pl.read_delta(str(path))))


def table_shape(path: pathlib.Path) -> dict:
    from deltalake import DeltaTable

    dt = DeltaTable(str(path))
    adds = dt.get_add_actions(flatten=True)
    sizes = adds.column("size_bytes").to_pylist()
    log = list((path / "_delta_log").iterdir())
    return {"files": len(sizes), "bytes": sum(sizes), "log_objects": len(log)}


def commit_gaps(stderr: str) -> tuple[list[float], float]:
    """From inlet's JSON log: seconds between consecutive batch commits, and the seconds
    compactions took."""
    from datetime import datetime

    commits, compaction = [], 0.0
    for line in stderr.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        msg = ev.get("fields", {}).get("message", "")
        if msg == "batch committed":
            commits.append(datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")).timestamp())
        elif msg == "small files compacted":
            compaction += float(ev["fields"].get("seconds", 0.0))
    return [b - a for a, b in zip(commits, commits[1:])], compaction


def bench_health(args) -> list[dict]:
    import numpy as np

    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    inlet = inlet_binary(args)
    appends = append_input(work, "health", args.files, 10)
    merge = merge_base(work, args.rows, 50_000, 0.2)
    changes = health_merge_input(work, args.rows, args.batches, 200)
    print(f"inputs ready: {args.files} small files; {args.batches} change files into {args.rows:,} rows", file=sys.stderr)
    out = []
    for kind in ("append", "merge"):
        for maintenance in (True, False):
            run = work / "health-run"
            fresh_dir(run)
            table = run / "table"
            if kind == "append":
                landing, sink = appends / "landing", ""
            else:
                landing = changes / "landing"
                fresh_copy(pathlib.Path(merge["dir"]) / "table", table)
                sink = 'mode = "merge"\nkeys = ["tenant", "id"]\nsequence_by = "seq"\n'
            cfg = run / "inlet.toml"
            cfg.write_text(
                f'pipeline_id = "bench_health"\n[source]\nurl = "{landing}"\nmax_files_per_batch = 1\n'
                f'[sink]\ntable = "{table}"\n{sink}[checkpoint]\nlocation = "{run / "checkpoint"}"\n'
                f'[maintenance]\nauto_compact = {"true" if maintenance else "false"}\nvacuum_interval = "off"\n'
            )
            secs, rss, _ = run_measured([inlet, "--log-format", "json", "run", "--config", str(cfg), "--available-now", "--json"],
                                        env=dict(os.environ, INLET_LOG="info"))
            gaps, compaction = commit_gaps(run_measured.stderr)
            shape = table_shape(table)
            dl, pl_ = read_times(table)
            optimized = fresh_copy(table, run / "optimized")
            from deltalake import DeltaTable

            DeltaTable(str(optimized)).optimize.compact()
            odl, opl = read_times(optimized)
            row = {
                "who": f"{kind}, maintenance {'on' if maintenance else 'off'}", "secs": secs, "rss": rss,
                "batches": len(gaps) + 1, "p50": float(np.percentile(gaps, 50)), "p99": float(np.percentile(gaps, 99)),
                "compaction": compaction, "read_dl": dl, "read_pl": pl_, "opt_dl": odl, "opt_pl": opl, **shape,
            }
            print(f"{row['who']}: {json.dumps({k: v for k, v in row.items() if k != 'who'})}", file=sys.stderr)
            out.append(row)
    return out


def report(workload: str, rows: list[dict], args, note: str) -> str:
    ours = rows[0]
    lines = [
        f"Command: `{args.command_line}`  ",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, {platform.python_version()} for the peers; "
        f"median of {args.repeat} runs, peak RSS the largest (process tree).  ",
        note,
        "",
    ]
    if workload == "latency":
        r = rows[0]
        lines += ["| landing-to-commit p50 (s) | p90 (s) | p99 (s) | batches |", "|---:|---:|---:|---:|",
                  f"| {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} | {r['batches']:.0f} |"]
        return "\n".join(lines)
    if workload == "shapes":
        lines += ["| input | MB | time (s) | peak RSS (MiB) | MB/s | rows/s | time vs W1's shape |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['who']} | {r['bytes'] / 1e6:.0f} | {r['secs']:.2f} | {r['rss'] / 2**20:.0f} | "
                         f"{r['bytes'] / 1e6 / r['secs']:.0f} | {args.files * args.rows / r['secs']:,.0f} | {r['secs'] / ours['secs']:.2f}× |")
        return "\n".join(lines)
    if workload == "health":
        lines += ["| run | batches | ingest (s) | commit gap p50 / p99 (s) | compaction (s) | data files | MB | `_delta_log` objects | read: deltalake / polars (s) | same data optimized (s) | read ratio |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['who']} | {r['batches']} | {r['secs']:.1f} | {r['p50']:.3f} / {r['p99']:.3f} | {r['compaction']:.1f} | "
                         f"{r['files']} | {r['bytes'] / 1e6:.1f} | {r['log_objects']} | {r['read_dl']:.3f} / {r['read_pl']:.3f} | "
                         f"{r['opt_dl']:.3f} / {r['opt_pl']:.3f} | {r['read_dl'] / r['opt_dl']:.2f}× / {r['read_pl'] / r['opt_pl']:.2f}× |")
        return "\n".join(lines)
    if workload == "merge-scale":
        sizes = sorted({r["size"] for r in rows if "read_dl" not in r})
        lines += ["| table rows | contender | time (s) | peak RSS (MiB) | vs Python `merge()` |", "|---:|---|---:|---:|---:|"]
        for size in sizes:
            at = [r for r in rows if r["size"] == size and "read_dl" not in r]
            py = next(r for r in at if r["who"].startswith("python"))
            for r in at:
                lines.append(f"| {size:,} | {r['who']} | {r['secs']:.2f} | {r['rss'] / 2**20:.0f} | {py['secs'] / r['secs']:.2f}× |")
        dv = {r["size"]: r for r in rows if r["who"] == MERGE_CONTENDERS[0]}
        if len(sizes) > 1:
            lines += ["", f"Deletion vectors, largest over smallest table: time {dv[sizes[-1]]['secs'] / dv[sizes[0]]['secs']:.2f}×, "
                          f"peak RSS {dv[sizes[-1]]['rss'] / dv[sizes[0]]['rss']:.2f}× for {sizes[-1] / sizes[0]:.0f}× the rows."]
        reads = [r for r in rows if "read_dl" in r]
        if reads:
            lines += ["", "| table | MERGEs (s, total) | data files | read: deltalake / polars (s) |", "|---|---:|---:|---:|"]
            for r in reads:
                lines.append(f"| {r['who']} | {r['secs']:.1f} | {r['shape']['files']} | {r['read_dl']:.3f} / {r['read_pl']:.3f} |")
        return "\n".join(lines)
    if workload == "checkpoint":
        lines += ["| run | time (s) | peak RSS (MiB) |", "|---|---:|---:|"]
        lines += [f"| {r['who']} | {r['secs']:.2f} | {r['rss'] / 2**20:.0f} |" for r in rows]
        return "\n".join(lines)
    per = getattr(args, "input_bytes", None)
    head = "| contender | time (s) | peak RSS (MiB) |" + (" MB/s | files/s |" if per else "") + " inlet speed-up | inlet RSS share |"
    lines += [head, "|---|---:|---:|" + ("---:|---:|" if per else "") + "---:|---:|"]
    for r in rows:
        rate = f" {per / 1e6 / r['secs']:.0f} | {args.files / r['secs']:.0f} |" if per else ""
        lines.append(
            f"| {r['who']} | {r['secs']:.2f} | {r['rss'] / 2**20:.0f} |{rate} "
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
    p.add_argument("workload", choices=["bulk", "small", "checkpoint", "merge", "merge-scale", "latency", "shapes", "multiline", "health", "scale", "cost", "cores"])
    p.add_argument("--sizes", default="5000000,20000000,50000000", help="merge-scale: table rows, comma-separated")
    p.add_argument("--read-merges", type=int, default=20, help="merge-scale: MERGEs before the read-cost scan (0: skip)")
    p.add_argument("--batches", type=int, default=300, help="health: MERGE micro-batches")
    p.add_argument("--rows", type=int, help="merge: table rows (5,000,000); bulk/small: rows per file (40,000 / 10)")
    p.add_argument("--files", type=int, help="bulk/small: files (48 / 3,000)")
    p.add_argument("--batch", type=int, default=50_000)
    p.add_argument("--seen", type=int, default=10_000_000, help="checkpoint: files the checkpoint has seen")
    p.add_argument("--candidates", type=int, default=100_000, help="checkpoint: files listed")
    p.add_argument("--rate", type=float, default=50.0, help="latency, cost: files landing per second")
    p.add_argument("--taken", type=int, default=100_000, help="cost: files under the prefix taken before")
    p.add_argument("--notify-rate", type=float, default=40.0, help="cost: files landing per second, notifications")
    p.add_argument("--only", help="cost: scenarios to run (listing-full,listing-incremental,notifications); the rest are kept")
    p.add_argument("--trigger", type=int, default=5, help="cost: inlet's trigger.interval_seconds")
    p.add_argument("--full-every", default="1h", help="cost: full_listing_interval of the incremental run")
    p.add_argument("--model-trigger", type=int, default=10, help="cost: seconds between listings in the monthly model")
    p.add_argument("--model-full-every", type=int, default=3600, help="cost: seconds between full listings (incremental) in the model")
    p.add_argument("--model-prefix-keys", type=int, default=1_000_000, help="cost: keys under the prefix in the model")
    p.add_argument("--max-batch-wait", default="500ms", help="latency: inlet's source.max_batch_wait")
    p.add_argument("--skip", help="comma-separated peers to leave out (e.g. spark)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir", default=os.path.expanduser("~/.cache/inlet/bench"))
    p.add_argument("--inlet", help="inlet binary (default: $CARGO_TARGET_DIR/release/inlet)")
    p.add_argument("--record", action="store_true", help="write the results into benches/README.md")
    args = p.parse_args()
    args.command_line = "python benches/run.py " + " ".join(sys.argv[1:])
    if args.workload == "cores":
        args.files, args.rows, args.skip = args.files or 48, args.rows or 40_000, "python,polars,spark"
        found = {(r["who"], r["cpus"]): r for r in bench_append(args, args.files, args.rows, "bulk", cpus=("0", "0,1"), pair=True)}
        pair = found.pop(("two runs at once, one per core", "pair"))
        lines = [f"Command: `{args.command_line}`  ",
                 f"Workload: W1's input ({args.files} files × {args.rows:,} rows, {args.input_bytes / 1e6:.0f} MB), inlet "
                 f"alone, pinned with `taskset -c` to one core and to two, alternated within each of {args.repeat} rounds; "
                 "medians. The ceiling: in the same rounds, two steady-state runs at once, one pinned to each core, "
                 "finish in the time shown; 2 × (one core) / that is the speed-up two cores of this machine give "
                 "work that shares nothing.", "",
                 "| contender | 1 core (s) | 2 cores (s) | speed-up | ceiling (steady state) | share of ceiling | peak RSS 1 / 2 cores (MiB) |",
                 "|---|---:|---:|---:|---:|---:|---:|"]
        steady_one = found[("inlet, table exists", "0")]["secs"]
        ceiling = 2 * steady_one / pair["secs"]
        for who in dict.fromkeys(w for w, _ in found):
            one, two = found[(who, "0")], found[(who, "0,1")]
            speedup = one["secs"] / two["secs"]
            lines.append(f"| {who} | {one['secs']:.2f} | {two['secs']:.2f} | {speedup:.2f}× | {ceiling:.2f}× | "
                         f"{speedup / ceiling:.2f} | {one['rss'] / 2**20:.0f} / {two['rss'] / 2**20:.0f} |")
        lines += ["", f"Two steady-state runs at once, one per core: {pair['secs']:.2f} s (rounds: "
                  + ", ".join(f"{s:.2f}" for s in pair["rounds"]) + ")."]
        text = "\n".join(lines)
        print(text)
        if args.record:
            record("cores", text)
        return
    if args.workload == "cost":
        import cost

        args.files = args.files or 10_000
        inlet = inlet_binary(args)
        cost.bench_cost(args, inlet)
        results = cost.recorded(args)
        text = "\n".join([
            f"Command: `{args.command_line}` (scenarios not run by it: kept from the last run that did, "
            f"`--only` names those run)  ",
            f"Workload: listing: {args.taken:,} files already under the prefix (taken before: older than the pipeline's "
            f"first start), then {args.files:,} new files of 10 rows landing under date paths "
            f"(`events/2026/11/30/HH/`) while `inlet run` runs continuously (`trigger.interval_seconds = {args.trigger}`); "
            f"notifications: the same new files, each notified to SQS by the bucket. The table is on the same S3. "
            f"Calls counted by a proxy between inlet and moto. Landing rates: "
            + ", ".join(f"{r['name']} {r.get('rate', args.rate):.0f}/s" for r in results) + ".",
            "",
            cost.report(results, args),
        ])
        print(text)
        if args.record:
            record("cost", text)
        return
    if args.workload == "scale":
        import scale

        args.seen = args.seen if "--seen" in sys.argv else 1_000_000
        inlet = inlet_binary(args)
        commits = scale.bench_commits(args, inlet, free_port())
        restore = scale.bench_restore(args, inlet, free_port(), run_measured)
        text = "\n".join([
            f"Command: `{args.command_line}`  ",
            f"Machine: {os.cpu_count()} cores, {platform.machine()}; restore: median of {args.repeat} runs.  ",
            "Workload: each writer is its own `inlet run --available-now` process with its own landing directory of "
            "one-row files and `max_files_per_batch = 1` (one commit per file), all appending into one existing table "
            "at once (auto-compaction off, so only batch commits and the Delta checkpoint every 10 versions count). Commits per second is "
            "the table's: all writers' commits over the wall time from the first start to the last exit.",
            "",
            scale.report(commits, restore, args),
        ])
        print(text)
        if args.record:
            record("scale", text)
        return
    if args.workload in ("bulk", "small"):
        files, rows = (48, 40_000) if args.workload == "bulk" else (3_000, 10)
        args.files, args.rows = args.files or files, args.rows or rows
        results = bench_append(args, args.files, args.rows, args.workload)
        note = (
            f"Workload: {args.files:,} files × {args.rows:,} rows of DynamoDB-stream-shaped JSON lines "
            f"({args.input_bytes / 1e6:.0f} MB; nested `new_image`, a list, ISO timestamps) appended into a new "
            f"table (Spark: a Parquet sink). Every output is checked to hold each row exactly once."
        )
    elif args.workload == "shapes":
        args.files, args.rows = args.files or 24, args.rows or 40_000
        results = bench_shapes(args)
        note = (
            f"Workload: the same {args.files * args.rows:,} changes (W1's generator) as flattened JSON lines, as "
            f"DynamoDB stream records (typed attribute values, one per line) and as Kinesis records concatenated "
            f"without newlines as Firehose writes them; inlet appends each into a new table (no peer reads "
            f"these shapes). Every output is checked to hold each change exactly once."
        )
    elif args.workload == "multiline":
        args.files, args.rows = args.files or 24, args.rows or 40_000
        results = bench_multiline(args)
        note = (
            f"Workload: {args.files} files, each one JSON array of {args.rows:,} W1-shaped objects "
            f"({args.input_bytes / 1e6:.0f} MB), appended into a new table. Every output is checked to hold each "
            f"row exactly once."
        )
    elif args.workload == "health":
        args.files, args.rows, args.repeat = args.files or 1000, args.rows or 1_000_000, 1
        results = bench_health(args)
        note = (
            f"Workload: {args.files:,} append batches of one small file each (W2's files) into a new table, and "
            f"{args.batches} MERGE batches of one file of 200 DynamoDB-shaped changes each into W4's base table of "
            f"{args.rows:,} rows; each with `[maintenance] auto_compact` on and off (`--available-now`, one file per "
            f"batch). Reads: the whole table through Python `deltalake` (`to_pyarrow_table`) and polars "
            f"(`read_delta`), median of 3, beside a copy of the same table compacted by `deltalake`'s "
            f"`optimize.compact()`. Commit gap: time between consecutive batch commits (what a batch waits behind "
            f"maintenance)."
        )
    elif args.workload == "latency":
        args.files = args.files or 500
        args.repeat = 1
        results = bench_latency(args)
        note = (
            f"Workload: {args.files} files of 2 rows landing at {args.rate:.0f}/s in moto's S3 on loopback, each "
            f"notified through SQS; inlet (release build) runs continuously with `max_batch_wait = "
            f"\"{args.max_batch_wait}\"`. Latency is from each file's S3 event time to the commit holding it "
            f"(inlet's `inlet_landing_to_commit_seconds` histogram, interpolated). No peer runs this one."
        )
    elif args.workload == "merge-scale":
        args.sizes = [int(x) for x in args.sizes.split(",")]
        args.repeat = min(args.repeat, 1) if max(args.sizes) > 5_000_000 else args.repeat
        results = bench_merge_scale(args)
        note = (
            f"Workload: W4's batch ({args.batch:,} rows in 5 JSON-lines files: 80% existing keys spread over the "
            f"whole key space, half of them older than the table's row and not applied; 20% new keys; no deletes) "
            f"MERGEd on (tenant, id) by `seq` into tables of {', '.join(f'{x:,}' for x in args.sizes)} rows "
            f"(written by Python `deltalake` in 500k-row commits, without deletion vectors: inlet's merge-on-read "
            f"run upgrades the table first, in the timed run). Every table is checked for the expected row count "
            f"and sequence sum. inlet runs with `auto_compact = false` (at 50M rows the base table's 100 "
            f"files are enough small files for a compaction after the MERGE, which rewrote the whole table). Read cost: {args.read_merges} MERGEs of 50,000 newer updates each into the "
            f"{min(args.sizes):,}-row table by each strategy (defaults otherwise), then a full scan by Python "
            f"`deltalake` (QueryBuilder) and polars, median of 3."
        )
    elif args.workload == "checkpoint":
        results = bench_checkpoint(args)
        dedupe = f"{args.dedupe_ms:.0f} ms" if args.dedupe_ms is not None else "not logged"
        note = (
            f"Workload: a checkpoint that has seen {args.seen:,} files; a listing of {args.candidates:,} local "
            f"files, all seen, deduped against it (no batch follows). Dedupe alone (inlet's log, "
            f"`dedupe_ms`, median): **{dedupe}**."
        )
    else:
        args.rows = args.rows or 5_000_000
        results = bench_merge(args)
        note = (
            f"Workload: a {args.batch:,}-row batch (5 JSON-lines files; 80% existing keys, half of them "
            f"with an older sequence that must not apply; 20% new keys) MERGEd on (tenant, id) by `seq` "
            f"into a {args.rows:,}-row table. Both tables are checked for the expected row count and "
            f"sequence sum."
        )
    text = report(args.workload, results, args, note)
    print(text)
    if args.record:
        record(args.workload, text)


if __name__ == "__main__":
    main()
