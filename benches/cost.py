"""W7 (issue 24): AWS requests per ingested file. 10,000 new files land in moto's S3 while
inlet runs continuously, found by a full listing and by an incremental listing (each over a
prefix already holding 100,000 files taken before) and by S3 event notifications through
SQS. Every request inlet makes (source, Delta table, SQS) passes a counting proxy
(tests/it/faultproxy.py with COUNT_CALLS=1); setting up the buckets does not."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import scale

HERE = pathlib.Path(__file__).resolve().parent
PROXY = HERE.parent / "tests" / "it" / "faultproxy.py"

# AWS list prices, us-east-1, S3 Standard and SQS standard queues (per request).
PRICE = {
    "LIST": 0.005 / 1000, "PUT": 0.005 / 1000, "COPY": 0.005 / 1000, "POST": 0.005 / 1000,
    "GET": 0.0004 / 1000, "HEAD": 0.0004 / 1000, "DELETE": 0.0, "sqs": 0.40 / 1_000_000,
}
FILES_PER_DAY = 1_000_000
DAYS = 30


def start_proxy(target_port: int, stats: pathlib.Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(PROXY), str(target_port), str(stats), "0", "1", "0"],
                            stdout=subprocess.PIPE, env=dict(os.environ, COUNT_CALLS="1"))
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}"


def put_many(s3, bucket: str, keys: list[str], body: bytes, threads: int = 16) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=body), keys))


def ready(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200
    except OSError:
        return False


def scenario(args, inlet: str, moto_endpoint: str, name: str, source: str, extra: str, new_keys: list[str],
             s3, rate: float) -> dict:
    """One continuous run taking `new_keys` as they land `rate` per second; returns the
    proxy's counts (also kept as result.json beside the run)."""
    work = pathlib.Path(args.workdir) / "cost" / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    moto_port = int(moto_endpoint.rsplit(":", 1)[1])
    stats = work / "calls.json"
    proxy, endpoint = start_proxy(moto_port, stats)
    opts = f'storage_options = {{ aws_endpoint = "{endpoint}", aws_allow_http = "true", aws_region = "us-east-1" }}\n'
    extra = extra.replace("PROXY", endpoint)
    cfg = work / "inlet.toml"
    cfg.write_text(
        f'pipeline_id = "cost_{name}"\n[source]\nurl = "{source}"\ninclude_existing_files = false\n{extra}{opts}'
        f'[sink]\ntable = "s3://lake/{name}"\n{opts}[checkpoint]\nlocation = "{work / "checkpoint"}"\n'
        f'[trigger]\ninterval_seconds = {args.trigger}\n'
    )
    mport = scale.free_port()
    env = dict(os.environ, **scale.CREDS)
    proc = subprocess.Popen([inlet, "run", "--config", str(cfg), "--metrics-addr", f"127.0.0.1:{mport}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(work / "inlet.log", "wb"))
    try:
        # Files land once the pipeline is up (and, listing, has drawn its first-start line:
        # files older than that are taken as existing and left out).
        deadline = time.time() + 120
        log_path = work / "inlet.log"
        while not (ready(mport) and ("notifications" in name or "discovered files" in log_path.read_text())):
            if time.time() > deadline or proc.poll() is not None:
                sys.exit(f"{name}: inlet did not start; see {log_path}")
            time.sleep(0.2)
        # The files land in rounds, `args.rate` per second, as a landing zone fills.
        bucket = source.split("/")[2]
        start = time.monotonic()
        per_round = max(1, int(rate))
        for i in range(0, len(new_keys), per_round):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = "".join(json.dumps({"id": i + j, "v": "x" * 40}) + "\n" for j in range(10)).encode()
            put_many(s3, bucket, new_keys[i:i + per_round], body)
        deadline = time.time() + 600
        while (scale.metric(scale.scrape(mport), "inlet_files_committed_total") or 0) < len(new_keys):
            if time.time() > deadline or proc.poll() is not None:
                sys.exit(f"{name}: not every file committed; see {work / 'inlet.log'}")
            time.sleep(0.5)
        text = scale.scrape(mport)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        proxy.terminate()
        proxy.wait()
    counts = json.loads(stats.read_text())["calls"]
    log = (work / "inlet.log").read_text()
    result = {
        "name": name,
        "files": len(new_keys),
        "rate": rate,
        "calls": counts,
        "batches": scale.metric(text, "inlet_batches_committed_total") or 0,
        "listings": log.count("discovered files"),
    }
    (work / "result.json").write_text(json.dumps(result))
    return result


def bench_cost(args, inlet: str) -> list[dict]:
    import boto3

    moto, endpoint = scale.start_moto(scale.free_port())
    creds = dict(region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")
    s3 = boto3.client("s3", endpoint_url=endpoint, **creds,
                      config=__import__("botocore.config").config.Config(max_pool_connections=32))
    sqs = boto3.client("sqs", endpoint_url=endpoint, **creds)
    results = []
    try:
        s3.create_bucket(Bucket="lake")
        taken = [f"events/2026/11/29/{h:02d}/old-{n:06d}.json"
                 for h in range(24) for n in range(args.taken // 24 + (h < args.taken % 24))]
        new = [f"events/2026/11/30/{(n * 24) // args.files:02d}/new-{n:06d}.json" for n in range(args.files)]
        for mode in ("full", "incremental"):
            if args.only and f"listing-{mode}" not in args.only:
                continue
            bucket = f"landing-{mode}"
            s3.create_bucket(Bucket=bucket)
            t0 = time.time()
            put_many(s3, bucket, taken, b'{"id": -1}\n')
            print(f"{mode}: {len(taken):,} files taken before put in {time.time() - t0:.0f}s", file=sys.stderr)
            # Older than the pipeline's first start: listed every time, never taken.
            time.sleep(1.1)
            extra = f'listing = "{mode}"\n' + (f'full_listing_interval = "{args.full_every}"\n' if mode == "incremental" else "")
            results.append(scenario(args, inlet, endpoint, f"listing-{mode}", f"s3://{bucket}/events/", extra, new, s3,
                                    args.rate))
            print(json.dumps(results[-1]), file=sys.stderr)
        if args.only and "notifications" not in args.only:
            return results
        s3.create_bucket(Bucket="landing-notify")
        queue = sqs.create_queue(QueueName="landing-events", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(Bucket="landing-notify", NotificationConfiguration={"QueueConfigurations": [
            {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
        extra = f'discovery = "notifications"\nqueue_url = "{queue}"\n'
        results.append(scenario(args, inlet, endpoint, "notifications", "s3://landing-notify/events/",
                                extra + "queue_endpoint = \"PROXY\"\n", new, s3, args.notify_rate))
        print(json.dumps(results[-1]), file=sys.stderr)
    finally:
        moto.terminate()
        moto.wait()
    return results


def recorded(args) -> list[dict]:
    """Every scenario's latest result (those run now and those kept from earlier runs)."""
    out = []
    for name in ("listing-full", "listing-incremental", "notifications"):
        path = pathlib.Path(args.workdir) / "cost" / name / "result.json"
        if path.exists():
            out.append(json.loads(path.read_text()))
    return out


def totals(r: dict) -> dict:
    """Calls by (place, kind): place `source`, `table` (data files), `log` (_delta_log), `sqs`."""
    out: dict = {}
    for key, n in r["calls"].items():
        bucket, area, kind = key.split(" ", 2)
        place = "sqs" if bucket == "sqs" else "log" if area == "_delta_log" else "table" if bucket == "lake" else "source"
        out[(place, kind)] = out.get((place, kind), 0) + n
    return out


def price_of(place: str, kind: str) -> float:
    return PRICE["sqs"] if place == "sqs" else PRICE.get(kind.split("-")[0], PRICE["GET"])


def report(results: list[dict], args) -> str:
    lines = ["| discovery | files | listings | batches | source LIST (per listing) | source GET | source HEAD | SQS calls | "
             "log reads | log writes | log LIST from 0 | table PUT | all calls / file |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        t, f = totals(r), r["files"]
        get = lambda place, *kinds: sum(n for (p, k), n in t.items() if p == place and (not kinds or k in kinds))
        log_reads = get("log", "GET", "HEAD", "LIST", "LIST-from-0")
        log_writes = get("log", "PUT", "POST", "COPY", "DELETE")
        lines.append(
            f"| {r['name']} | {f:,} | {r['listings']} | {r['batches']:.0f} | {get('source', 'LIST')} "
            f"({get('source', 'LIST') / max(1, r['listings']):.1f}) | "
            f"{get('source', 'GET')} ({get('source', 'GET') / f:.2f}/file) | {get('source', 'HEAD')} | "
            f"{get('sqs')} ({get('sqs') / f:.3f}/file) | {log_reads} | {log_writes} | {get('log', 'LIST-from-0')} | "
            f"{get('table', 'PUT', 'POST')} | {sum(t.values()) / f:.2f} |")
    lines += ["", "SQS calls by action: " + "; ".join(
        f"{r['name']}: " + ", ".join(f"{k.split(' - ')[1]} {n}" for k, n in sorted(r["calls"].items()) if k.startswith("sqs"))
        for r in results if any(k.startswith("sqs") for k in r["calls"]))]
    # Monthly cost at 1M files a day: every call measured per file scales with files, except the
    # source listing, which scales with listings and the prefix's size.
    month = FILES_PER_DAY * DAYS
    listings_per_month = DAYS * 86400 / args.model_trigger
    keys = args.model_prefix_keys
    lines += ["", f"Monthly cost at AWS list prices for {FILES_PER_DAY:,} files a day ({month:,} a month), a listing "
              f"every {args.model_trigger}s ({listings_per_month:,.0f} a month) over a prefix holding {keys:,} keys "
              f"(a day of files, kept by a lifecycle rule or `clean_source`); every other call as measured per file:", "",
              "| discovery | source LIST / month | LIST $ | GET+HEAD $ | Delta log + data $ | SQS $ | total $ / month |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        t, f = totals(r), r["files"]
        per_file = lambda places, kinds=None: sum(n * price_of(p, k) for (p, k), n in t.items()
                                                  if p in places and (kinds is None or k in kinds)) / f * month
        mode = r["name"]
        if mode == "listing-full":
            lists = listings_per_month * -(-keys // 1000)
        elif mode == "listing-incremental":
            new_per_listing = FILES_PER_DAY * args.model_trigger / 86400
            full = DAYS * 86400 / args.model_full_every
            lists = listings_per_month * max(1, -(-int(new_per_listing) // 1000)) + full * -(-keys // 1000)
        else:
            lists = 0
        list_cost = lists * PRICE["LIST"]
        gets = per_file({"source"}, {"GET", "HEAD"})
        delta = per_file({"log", "table"})
        sqs = per_file({"sqs"})
        lines.append(f"| {mode} | {lists:,.0f} | {list_cost:,.2f} | {gets:,.2f} | {delta:,.2f} | {sqs:,.2f} | "
                     f"{list_cost + gets + delta + sqs:,.2f} |")
    return "\n".join(lines)
