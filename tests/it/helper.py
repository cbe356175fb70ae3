"""Test helper, run by the Rust tests with the test virtualenv's Python: an independent
reader of Delta tables (deltalake, polars) and a small S3 client for moto (boto3).

  helper.py read-delta URL [OPTIONS_JSON]      -> {"version": V, "rows": [...]}, the rows as
                                                deltalake reads them, failing (exit 3) when
                                                DuckDB's Delta extension reads other rows
  helper.py polars-count URL [OPTIONS_JSON]     -> row count through polars
  helper.py polars-null-count URL OPTIONS_JSON COLUMN -> nulls in COLUMN through polars
  helper.py parquet-layout FILE                 -> {"row_groups": [rows...], "dictionary":
                                                {column: whether any chunk has a dictionary}}
  helper.py checkpoint-and-clean URL KEEP       a Delta checkpoint, then all JSON commits but
                                                the newest KEEP removed (log clean-up)
  helper.py write-parquet FILE ROWS_JSON          (pyarrow, types inferred from the rows)
  helper.py write-avro FILE CODEC SCHEMA_JSON ROWS_JSON
                                                (fastavro; decimals given as strings)
  helper.py compress CODEC IN OUT               (zstd through pyarrow, bzip2 through bz2)
  helper.py append-delta URL FIRST_ID COUNT     another writer: COUNT one-row appends
  helper.py optimize-delta URL COUNT            another writer: COUNT compactions
  helper.py s3 ENDPOINT mkbucket BUCKET
  helper.py s3 ENDPOINT put BUCKET KEY FILE
  helper.py s3 ENDPOINT delete BUCKET KEY
  helper.py s3 ENDPOINT dump BUCKET PREFIX      -> {key: text} of every object under PREFIX
  helper.py s3 ENDPOINT put-text BUCKET KEY TEXT
  helper.py s3 ENDPOINT steady BUCKET PREFIX N PER_SECOND ROWS
                                                -> N files of ROWS rows ({"id", "file"}), paced
  helper.py sqs ENDPOINT mkqueue NAME VISIBILITY_SECONDS      -> queue URL
  helper.py sqs ENDPOINT notify BUCKET QUEUE_URL KEY_PREFIX   (S3 -> SQS for ObjectCreated)
  helper.py sqs ENDPOINT send QUEUE_URL BODY
  helper.py sqs ENDPOINT purge QUEUE_URL
  helper.py sqs ENDPOINT count QUEUE_URL        -> messages visible + in flight
"""
import json
import os
import sys


def read_delta(url, options):
    """The table's rows through Python deltalake, checked against DuckDB's Delta extension:
    a table one independent reader reads differently from the other fails the test."""
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder

    dt = DeltaTable(url, storage_options=options or None)
    # delta-rs's own reader: pyarrow's S3 filesystem aborts at exit against moto.
    reader = QueryBuilder().register("t", dt).execute("SELECT * FROM t")
    rows = pa.table(reader.read_all()).to_pylist()
    duck = duckdb_rows(url, options, dt.version())
    if canonical(rows) != canonical(duck):
        only_deltalake = canonical(rows) - canonical(duck)
        only_duckdb = canonical(duck) - canonical(rows)
        sys.stderr.write(
            f"readers disagree on {url} (version {dt.version()}): {len(rows)} rows by deltalake, "
            f"{len(duck)} by DuckDB\nonly deltalake: {list(only_deltalake.elements())[:5]}\n"
            f"only DuckDB: {list(only_duckdb.elements())[:5]}\n"
        )
        raise SystemExit(3)
    print(json.dumps({"version": dt.version(), "rows": rows}, default=str))


def read_version(url, version):
    """The rows of a local table at `version` (time travel) through Python deltalake,
    checked against DuckDB at the same version."""
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder

    dt = DeltaTable(url, version=version)
    rows = pa.table(QueryBuilder().register("t", dt).execute("SELECT * FROM t").read_all()).to_pylist()
    if canonical(rows) != canonical(duckdb_rows(url, None, version)):
        sys.stderr.write(f"readers disagree on {url} at version {version}\n")
        raise SystemExit(3)
    print(json.dumps({"version": version, "rows": rows}, default=str))


def read_others(url, columns):
    """The `columns` of every row of a local table as three more readers no one on this
    project wrote see them: polars, ClickHouse (chdb's deltaLakeLocal) and daft. A reader
    that refuses the table says why instead of giving rows."""
    import polars as pl

    path = url[len("file://"):] if url.startswith("file://") else url
    out = {}
    out["polars"] = pl.read_delta(path).select(columns).to_dicts()
    try:
        import chdb

        cols = ", ".join(f"`{c}`" for c in columns)
        # ClickHouse reads local files only under its user_files path, the working directory.
        table = os.path.abspath(path.rstrip("/"))
        here = os.getcwd()
        os.chdir(os.path.dirname(table))
        try:
            text = chdb.query(f"SELECT {cols} FROM deltaLakeLocal('{table}')", "JSONEachRow").bytes()
        finally:
            os.chdir(here)
        out["chdb"] = [json.loads(line) for line in text.decode().splitlines() if line]
    except Exception as e:  # noqa: BLE001 - reported, and the test decides
        out["chdb"] = {"refused": repr(e)}
    try:
        import daft

        out["daft"] = daft.read_deltalake(path).select(*columns).to_pylist()
    except Exception as e:  # noqa: BLE001
        out["daft"] = {"refused": repr(e)}
    print(json.dumps(out, default=str))


def read_cdf(url, options, start):
    """The table's change feed from version `start` through Python deltalake's load_cdf."""
    import pyarrow as pa
    from deltalake import DeltaTable

    dt = DeltaTable(url, storage_options=options or None)
    rows = pa.table(dt.load_cdf(starting_version=start).read_all()).to_pylist()
    print(json.dumps(rows, default=str))


def canonical(rows):
    """Rows as a multiset of canonical JSON texts: column order and row order aside, values
    compared as Python sees them (timestamps in UTC)."""
    from collections import Counter

    return Counter(json.dumps(r, sort_keys=True, default=str) for r in rows)


def duckdb_rows(url, options, version):
    """The table at `version` through DuckDB's Delta extension (the delta-kernel-rs reader in
    C++ DuckDB, shipped by the duckdb-extension-delta package, so nothing is downloaded). An
    S3 table is copied from moto to a local directory first: DuckDB's S3 client needs its
    httpfs extension and secrets, and the check is about how the table reads, not the
    transport."""
    import tempfile

    import duckdb
    import duckdb_extension_delta

    ext = os.path.join(
        os.path.dirname(duckdb_extension_delta.__file__),
        "extensions",
        f"v{duckdb.__version__}",
        "delta.duckdb_extension",
    )
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute(f"LOAD '{ext}'")
    con.execute("SET TimeZone = 'UTC'")
    with tempfile.TemporaryDirectory() as tmp:
        path = url
        if url.startswith("s3://"):
            path = copy_s3_table(url, options, tmp)
        elif url.startswith("file://"):
            path = url[len("file://"):]
        # The same version deltalake read: a concurrent writer may have committed since.
        table = con.execute(
            "SELECT * FROM delta_scan(?, version => ?)", [path, version]
        ).to_arrow_table()
    return table.to_pylist()


def copy_s3_table(url, options, into):
    bucket, _, prefix = url[len("s3://"):].partition("/")
    prefix = prefix.rstrip("/") + "/"
    c = client("s3", options["AWS_ENDPOINT_URL"])
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix):]
            dest = f"{into}/table/{rel}"
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as f:
                f.write(c.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    return f"{into}/table"


def polars_count(url, options):
    import polars as pl

    df = pl.read_delta(url, storage_options=options or None)
    print(df.height)


def polars_null_count(url, options, column):
    import polars as pl

    df = pl.read_delta(url, storage_options=options or None)
    print(df[column].null_count())


def parquet_layout(path):
    """How a data file is laid out, as pyarrow reads its footer."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    dictionary = {}
    for g in groups:
        for c in range(g.num_columns):
            col = g.column(c)
            name = col.path_in_schema
            dictionary[name] = dictionary.get(name, False) or col.has_dictionary_page
    print(json.dumps({"row_groups": [g.num_rows for g in groups], "dictionary": dictionary}))


def checkpoint_and_clean(url, keep):
    """A Delta checkpoint at the latest version, then every JSON commit but the newest `keep`
    removed, as Delta log clean-up does once commits pass delta.logRetentionDuration."""
    import glob
    from deltalake import DeltaTable

    dt = DeltaTable(url)
    dt.create_checkpoint()
    latest = dt.version()
    log = url[len("file://"):] + "/_delta_log"
    for path in glob.glob(f"{log}/*.json"):
        version = int(os.path.basename(path).split(".")[0])
        if version <= latest - keep:
            os.remove(path)


def write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


def write_avro(path, codec, schema, rows):
    """An Avro container file as fastavro (a writer inlet shares no code with) writes it.
    Top-level decimal fields are given as strings and passed as `Decimal`; timestamps and
    dates as their numbers."""
    import decimal

    import fastavro

    decimals = {
        f["name"]
        for f in schema["fields"]
        if isinstance(f["type"], dict) and f["type"].get("logicalType") == "decimal"
    }
    for row in rows:
        for name in decimals:
            if row.get(name) is not None:
                row[name] = decimal.Decimal(row[name])
    with open(path, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), rows, codec=codec)


def append_delta(url, first, count):
    """Another writer racing inlet: one-row appends ({id, name}; other columns null)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    for i in range(count):
        row = pa.table({"id": pa.array([first + i], pa.int64()), "name": pa.array(["other writer"])})
        for attempt in range(20):
            try:
                write_deltalake(url, row, mode="append", schema_mode="merge")
                break
            except Exception as e:  # lost a commit race with inlet: try again
                print(f"append {i} attempt {attempt}: {e}", file=sys.stderr)


def optimize_delta(url, count):
    """Another writer racing inlet: compactions (each removes and adds files)."""
    from deltalake import DeltaTable

    for i in range(count):
        try:
            DeltaTable(url).optimize.compact()
        except Exception as e:  # lost a commit race with inlet: the next one may win
            print(f"compaction {i}: {e}", file=sys.stderr)


def make_nested_table(url):
    """A table whose struct column `s` gained field `b` after its first file was written:
    ids 0..19 with s = {a: id} (written without `b`), then id 100 with s = {a: 100, b: "z"}."""
    import pyarrow as pa
    from deltalake import write_deltalake

    def rows(ids, s, fields):
        return pa.table({
            "id": pa.array(ids, pa.int64()),
            "seq": pa.array([1] * len(ids), pa.int64()),
            "s": pa.array(s, pa.struct(fields)),
        })

    write_deltalake(url, rows(list(range(20)), [{"a": i} for i in range(20)], [("a", pa.int64())]))
    wider = [("a", pa.int64()), ("b", pa.string())]
    write_deltalake(url, rows([100], [{"a": 100, "b": "z"}], wider), mode="append", schema_mode="merge")
    sys.stdout.flush()
    os._exit(0)


def make_ruled_table(url):
    """A table with rules inlet must keep: CHECK constraint `positive` (amount > 0) and
    `bucket` GENERATED ALWAYS AS (id % 10); one row (id 11, amount 5)."""
    import pyarrow as pa
    from deltalake import DeltaTable, Field, Schema, write_deltalake
    from deltalake.schema import PrimitiveType

    long = PrimitiveType("long")
    schema = Schema([
        Field("id", long, nullable=True),
        Field("amount", long, nullable=True),
        Field("bucket", long, nullable=True, metadata={"delta.generationExpression": "id % 10"}),
    ])
    DeltaTable.create(url, schema=schema).alter.add_constraint({"positive": "amount > 0"})
    write_deltalake(url, pa.table({"id": pa.array([11], pa.int64()), "amount": pa.array([5], pa.int64())}), mode="append")
    sys.stdout.flush()
    # deltalake's runtime aborts the interpreter at exit after these calls; the work is done.
    os._exit(0)


def compress(codec, src, dst):
    with open(src, "rb") as f:
        data = f.read()
    if codec == "bzip2":
        import bz2

        out = bz2.compress(data)
    elif codec == "zstd":
        import pyarrow as pa

        # Arrow's ZSTD codec writes a standard zstd frame.
        out = pa.compress(data, codec="zstd", asbytes=True)
    else:
        raise SystemExit(f"unknown codec {codec}")
    with open(dst, "wb") as f:
        f.write(out)


def client(service, endpoint):
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def s3(endpoint, op, args):
    import time

    c = client("s3", endpoint)
    if op == "mkbucket":
        c.create_bucket(Bucket=args[0])
    elif op == "put":
        with open(args[2], "rb") as f:
            c.put_object(Bucket=args[0], Key=args[1], Body=f.read())
    elif op == "dump":
        # Every object under a prefix: {key: text}.
        out = {}
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=args[0], Prefix=args[1]):
            for obj in page.get("Contents", []):
                body = c.get_object(Bucket=args[0], Key=obj["Key"])["Body"].read()
                out[obj["Key"]] = body.decode("utf-8", "replace")
        print(json.dumps(out))
    elif op == "delete":
        c.delete_object(Bucket=args[0], Key=args[1])
    elif op == "put-text":
        c.put_object(Bucket=args[0], Key=args[1], Body=args[2].encode())
    elif op == "steady":
        bucket, prefix, n, per_second, rows = args[0], args[1], int(args[2]), float(args[3]), int(args[4])
        start = time.monotonic()
        for i in range(n):
            # Paced against the clock, so a slow put does not slow the rate.
            delay = start + i / per_second - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = "".join(json.dumps({"id": i * rows + j, "file": i}) + "\n" for j in range(rows))
            c.put_object(Bucket=bucket, Key=f"{prefix}f-{i:05d}.json", Body=body.encode())
    else:
        raise SystemExit(f"unknown s3 op {op}")


def sqs(endpoint, op, args):
    if op == "mkqueue":
        url = client("sqs", endpoint).create_queue(
            QueueName=args[0], Attributes={"VisibilityTimeout": args[1]}
        )["QueueUrl"]
        print(url)
    elif op == "notify":
        bucket, queue_url, prefix = args[:3]
        entry_id = args[3] if len(args) > 3 else None
        arn = client("sqs", endpoint).get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        client("s3", endpoint).put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [{
                    **({"Id": entry_id} if entry_id else {}),
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                }]
            },
        )
    elif op == "queues":
        # Every queue: {name: {"url": url, "attributes": {...}}}.
        c = client("sqs", endpoint)
        out = {}
        for url in c.list_queues().get("QueueUrls", []):
            attrs = c.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            out[url.rsplit("/", 1)[-1]] = {"url": url, "attributes": attrs}
        print(json.dumps(out))
    elif op == "mktopic":
        print(client("sns", endpoint).create_topic(Name=args[0])["TopicArn"])
    elif op == "bucket-notifications":
        got = client("s3", endpoint).get_bucket_notification_configuration(Bucket=args[0])
        got.pop("ResponseMetadata", None)
        print(json.dumps(got))
    elif op == "send":
        client("sqs", endpoint).send_message(QueueUrl=args[0], MessageBody=args[1])
    elif op == "purge":
        client("sqs", endpoint).purge_queue(QueueUrl=args[0])
    elif op == "peek":
        c = client("sqs", endpoint)
        attrs = c.get_queue_attributes(QueueUrl=args[0], AttributeNames=["All"])["Attributes"]
        got = c.receive_message(QueueUrl=args[0], MaxNumberOfMessages=10, VisibilityTimeout=0,
                                AttributeNames=["All"])
        print(json.dumps({"attributes": attrs, "visible": [(m["Body"], m["Attributes"]) for m in got.get("Messages", [])]}))
    elif op == "count":
        attrs = client("sqs", endpoint).get_queue_attributes(
            QueueUrl=args[0],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        print(int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]))
    else:
        raise SystemExit(f"unknown sqs op {op}")


def main():
    cmd = sys.argv[1]
    if cmd == "read-delta":
        read_delta(sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)
    elif cmd == "read-cdf":
        read_cdf(sys.argv[2], json.loads(sys.argv[3]) or None, int(sys.argv[4]))
    elif cmd == "yaml-json":
        import yaml  # PyYAML, which moto[server] installs

        with open(sys.argv[2]) as f:
            print(json.dumps(list(yaml.safe_load_all(f))))
    elif cmd == "read-version":
        read_version(sys.argv[2], int(sys.argv[3]))
    elif cmd == "read-others":
        read_others(sys.argv[2], json.loads(sys.argv[3]))
    elif cmd == "polars-count":
        polars_count(sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)
    elif cmd == "polars-null-count":
        polars_null_count(sys.argv[2], json.loads(sys.argv[3]) or None, sys.argv[4])
    elif cmd == "parquet-layout":
        parquet_layout(sys.argv[2])
    elif cmd == "checkpoint-and-clean":
        checkpoint_and_clean(sys.argv[2], int(sys.argv[3]))
    elif cmd == "write-parquet":
        write_parquet(sys.argv[2], json.loads(sys.argv[3]))
    elif cmd == "write-avro":
        write_avro(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5]))
    elif cmd == "append-delta":
        append_delta(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "optimize-delta":
        optimize_delta(sys.argv[2], int(sys.argv[3]))
    elif cmd == "make-nested-table":
        make_nested_table(sys.argv[2])
    elif cmd == "make-ruled-table":
        make_ruled_table(sys.argv[2])
    elif cmd == "compress":
        compress(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "s3":
        s3(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif cmd == "sqs":
        sqs(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
