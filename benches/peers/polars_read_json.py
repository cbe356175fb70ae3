"""The polars peer for the multi-line JSON bench: read_json on each file (one JSON array of
objects), concatenated, then write_delta (append). No checkpoint, no exactly-once.
usage: polars_read_json.py LANDING_DIR TABLE_DIR
"""
import pathlib
import sys

import polars as pl


def main() -> None:
    landing, table = pathlib.Path(sys.argv[1]), sys.argv[2]
    frames = [pl.read_json(p) for p in sorted(landing.glob("*.json"))]
    pl.concat(frames, how="diagonal_relaxed").write_delta(table, mode="append")


if __name__ == "__main__":
    main()
