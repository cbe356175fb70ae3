"""The polars peer for the append benches: scan_ndjson over the landing directory, then
write_delta (append). No checkpoint, no exactly-once.
usage: polars_append.py LANDING_DIR TABLE_DIR
"""
import sys

import polars as pl


def main() -> None:
    landing, table = sys.argv[1], sys.argv[2]
    df = pl.scan_ndjson(f"{landing}/**/*.json").collect()
    df.write_delta(table, mode="append")


if __name__ == "__main__":
    main()
