"""Test helper, run by the Rust tests with the test virtualenv's Python: an independent
reader of Delta tables (deltalake, polars) and a small S3 client for moto (boto3).

  helper.py read-delta URL [OPTIONS_JSON]      -> {"version": V, "rows": [...]} sorted
  helper.py polars-count URL [OPTIONS_JSON]     -> row count through polars
  helper.py s3 ENDPOINT mkbucket BUCKET
  helper.py s3 ENDPOINT put BUCKET KEY FILE
  helper.py s3 ENDPOINT delete BUCKET KEY
  helper.py s3 ENDPOINT dump BUCKET PREFIX      -> {key: text} of every object under PREFIX
"""
import json
import sys


def read_delta(url, options):
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder

    dt = DeltaTable(url, storage_options=options or None)
    # delta-rs's own reader: pyarrow's S3 filesystem aborts at exit against moto.
    reader = QueryBuilder().register("t", dt).execute("SELECT * FROM t")
    rows = pa.table(reader.read_all()).to_pylist()
    print(json.dumps({"version": dt.version(), "rows": rows}, default=str))


def polars_count(url, options):
    import polars as pl

    df = pl.read_delta(url, storage_options=options or None)
    print(df.height)


def s3(endpoint, op, args):
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    if op == "mkbucket":
        client.create_bucket(Bucket=args[0])
    elif op == "put":
        with open(args[2], "rb") as f:
            client.put_object(Bucket=args[0], Key=args[1], Body=f.read())
    elif op == "dump":
        # Every object under a prefix: {key: text}.
        out = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=args[0], Prefix=args[1]):
            for obj in page.get("Contents", []):
                body = client.get_object(Bucket=args[0], Key=obj["Key"])["Body"].read()
                out[obj["Key"]] = body.decode("utf-8", "replace")
        print(json.dumps(out))
    elif op == "delete":
        client.delete_object(Bucket=args[0], Key=args[1])
    else:
        raise SystemExit(f"unknown s3 op {op}")


def main():
    cmd = sys.argv[1]
    if cmd == "read-delta":
        read_delta(sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)
    elif cmd == "polars-count":
        polars_count(sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)
    elif cmd == "s3":
        s3(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
