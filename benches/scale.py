"""W8 (issue 23): commits per second into one table from 1, 2 and 4 concurrent appending
pipelines, on local storage and on moto's S3; and the start of a pipeline whose S3
checkpoint holds 1M files, from its local cache against a fresh start (snapshot +
fast-forward). Also the helpers the moto-backed benches share (W5, W7, W8): moto, a free
port, and inlet's metrics endpoint."""

import gzip
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import time
import socket
import urllib.request

CREDS = dict(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    """inlet's /metrics on `port`, or "" while it does not answer."""
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return ""


def metric(text: str, name: str) -> float | None:
    """The sum of metric `name` over its series (every series has a `pipeline` label),
    None when absent."""
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(name + " ") or line.startswith(name + "{")]
    return sum(values) if values else None


def start_moto(port: int) -> tuple[subprocess.Popen, str]:
    moto = subprocess.Popen([str(pathlib.Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return moto, endpoint


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench")


def options(endpoint: str) -> str:
    return f'storage_options = {{ aws_endpoint = "{endpoint}", aws_allow_http = "true", aws_region = "us-east-1" }}\n'


def writer_config(work: pathlib.Path, i: int, table: str, sink_options: str) -> pathlib.Path:
    cfg = work / f"w{i}.toml"
    cfg.write_text(
        f'pipeline_id = "writer{i}"\n[source]\nurl = "{work / f"landing{i}"}"\nmax_files_per_batch = 1\n'
        f'[sink]\ntable = "{table}"\n{sink_options}'
        f'[maintenance]\nauto_compact = false\n'
        f'[checkpoint]\nlocation = "{work / f"state{i}"}"\n'
    )
    return cfg


def commits_rate(inlet: str, work: pathlib.Path, writers: int, files: int, table: str, sink_options: str, env: dict) -> dict:
    """`writers` pipelines, each committing `files` one-file batches into `table` at once."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    # The table exists before the writers start (created by a seed pipeline).
    seed = work / "seed"
    seed.mkdir()
    (seed / "f.json").write_text('{"w":-1,"n":0}\n')
    seed_cfg = work / "seed.toml"
    seed_cfg.write_text(f'pipeline_id = "seed"\n[source]\nurl = "{seed}"\n[sink]\ntable = "{table}"\n{sink_options}'
                        f'[checkpoint]\nlocation = "{work / "seed-state"}"\n')
    subprocess.run([inlet, "run", "--config", str(seed_cfg), "--available-now"], check=True, env=env, stdout=subprocess.DEVNULL)
    cfgs = []
    for i in range(writers):
        land = work / f"landing{i}"
        land.mkdir()
        for f in range(files):
            (land / f"f{f:05d}.json").write_text(f'{{"w":{i},"n":{f}}}\n')
        cfgs.append(writer_config(work, i, table, sink_options))
    t0 = time.perf_counter()
    procs = [subprocess.Popen([inlet, "run", "--config", str(c), "--available-now", "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=open(work / f"w{i}.log", "wb")) for i, c in enumerate(cfgs)]
    stats = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(f"a writer failed ({p.returncode}); see {work}")
        stats.append(json.loads(out.decode().strip().splitlines()[-1]))
    secs = time.perf_counter() - t0
    commits = sum(s["batches"] for s in stats)
    if commits != writers * files:
        sys.exit(f"{commits} commits, expected {writers * files}")
    conflicts = sum(open(work / f"w{i}.log", encoding="utf-8", errors="replace").read().count("ommit conflict") for i in range(writers))
    return {"writers": writers, "secs": secs, "commits": commits, "retries": sum(s["batch_retries"] for s in stats),
            "conflicts": conflicts}


def bench_commits(args, inlet: str, port: int) -> list[dict]:
    work = pathlib.Path(args.workdir) / "scale-commits"
    moto, endpoint = start_moto(port)
    env = dict(os.environ, **CREDS)
    rows = []
    try:
        s3_client(endpoint).create_bucket(Bucket="bench")
        for where in ("local", "moto"):
            for writers in (1, 2, 4):
                # Inside the run's directory, which each run starts by removing: a table left
                # by an earlier bench run would hold batches the fresh checkpoints do not know.
                table = str(work / f"{where}-{writers}" / "table") if where == "local" else f"s3://bench/{where}-{writers}-{time.time_ns()}"
                sink = "" if where == "local" else options(endpoint)
                files = args.files or (100 if where == "local" else 40)
                r = commits_rate(inlet, work / f"{where}-{writers}", writers, files, table, sink, env)
                r["where"] = where
                print(f"{where} {writers} writer(s): {r['commits']} commits in {r['secs']:.1f}s "
                      f"({r['commits'] / r['secs']:.1f}/s)", file=sys.stderr)
                rows.append(r)
    finally:
        moto.terminate()
        moto.wait()
    return rows


def bench_restore(args, inlet: str, port: int, run_measured) -> list[dict]:
    """A pipeline whose S3 checkpoint has seen `args.seen` files starts with nothing new:
    from its local cache, and fresh (the cache deleted: snapshot download + fast-forward)."""
    work = pathlib.Path(args.workdir) / "scale-restore"
    if work.exists():
        shutil.rmtree(work)
    (work / "landing").mkdir(parents=True)
    for i in range(10):
        (work / "landing" / f"f{i}.json").write_text(f'{{"n":{i}}}\n')
    moto, endpoint = start_moto(port)
    env = dict(os.environ, **CREDS)
    rows = []
    try:
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket="chk")
        cfg = work / "inlet.toml"
        cfg.write_text(
            f'pipeline_id = "restore"\n[source]\nurl = "{work / "landing"}"\n[sink]\ntable = "{work / "table"}"\n'
            f'[checkpoint]\nlocation = "s3://chk/restore"\ncache_dir = "{work / "cache"}"\nlease_ttl = "5s"\n{options(endpoint)}'
        )
        subprocess.run([inlet, "run", "--config", str(cfg), "--available-now"], check=True, env=env, stdout=subprocess.DEVNULL)
        # The checkpoint grows to `seen` files (rows in inlet's layout), then becomes the snapshot.
        db_path = work / "cache" / "inlet.db"
        db = sqlite3.connect(db_path)
        now = int(time.time() * 1000)
        db.executemany(
            "INSERT INTO files(path, etag, size, last_modified_ms, discovered_at_ms, batch_id, committed_at_ms, state, rows)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((f"file://{work}/old/d{i % 1000:03d}/f{i:08d}.json", f"{i:x}-{now:x}-7", 7, now, now, 1, now, "committed", 1)
             for i in range(args.seen - 10)),
        )
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        batch, version = db.execute("SELECT MAX(batch_id), MAX(delta_version) FROM batches").fetchone()
        db.close()
        copy = work / "snapshot.db"
        db = sqlite3.connect(db_path)
        db.execute("VACUUM INTO ?", (str(copy),))
        db.close()
        gz = gzip.compress(copy.read_bytes(), compresslevel=1)
        key = f"snapshots/{batch:020d}-{now}.db.gz"
        s3.put_object(Bucket="chk", Key=f"restore/{key}", Body=gz)
        s3.put_object(Bucket="chk", Key="restore/snapshot.json", Body=json.dumps(
            {"key": key, "batch_id": batch, "delta_version": version, "taken_at_ms": now, "bytes": len(gz)}).encode())
        args.snapshot_mb = (copy.stat().st_size / 1e6, len(gz) / 1e6)
        argv = [inlet, "run", "--config", str(cfg), "--available-now", "--json"]
        results = {"start from the local cache": [], "fresh start: snapshot + fast-forward": []}
        for _ in range(args.repeat):
            for who in results:
                if who.startswith("fresh"):
                    shutil.rmtree(work / "cache", ignore_errors=True)
                secs, rss, out = run_measured(argv, env)
                if json.loads(out.strip().splitlines()[-1])["files"] != 0:
                    sys.exit("every file was taken already, yet inlet took some")
                results[who].append((secs, rss))
                print(f"{who}: {secs:.2f}s, {rss / 2**20:.0f} MiB", file=sys.stderr)
        import statistics
        rows = [{"who": who, "secs": statistics.median(s for s, _ in runs), "rss": max(r for _, r in runs)}
                for who, runs in results.items()]
    finally:
        moto.terminate()
        moto.wait()
    return rows


def report(commits: list[dict], restore: list[dict], args) -> str:
    lines = ["| storage | writers | commits | time (s) | commits/s (table) | per writer | batch retries |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in commits:
        rate = r["commits"] / r["secs"]
        lines.append(f"| {r['where']} | {r['writers']} | {r['commits']} | {r['secs']:.1f} | {rate:.1f} | "
                     f"{rate / r['writers']:.1f} | {r['retries']} |")
    raw, gz = args.snapshot_mb
    lines += ["", f"Restore: an S3 checkpoint of {args.seen:,} files (SQLite {raw:.0f} MB, snapshot {gz:.0f} MB gzipped), "
                  "a run with nothing new:", "",
              "| start | time (s) | peak RSS (MiB) |", "|---|---:|---:|"]
    lines += [f"| {r['who']} | {r['secs']:.2f} | {r['rss'] / 2**20:.0f} |" for r in restore]
    return "\n".join(lines)
