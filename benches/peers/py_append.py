"""The hand-written Python ingester for the append benches: pyarrow's JSON reader and
deltalake's write_deltalake, batching files (at most 1,000 files or 1 GiB per write), the way
a user of the Python `deltalake` package would write it. No checkpoint, no exactly-once.
usage: py_append.py LANDING_DIR TABLE_DIR
"""
import pathlib
import sys

import pyarrow as pa
import pyarrow.json as pj
from deltalake import write_deltalake

MAX_FILES = 1000
MAX_BYTES = 1 << 30


def main() -> None:
    landing, table = pathlib.Path(sys.argv[1]), sys.argv[2]
    files = sorted(p for p in landing.rglob("*.json") if p.is_file())
    batch, size = [], 0
    for f in files + [None]:
        if f is not None:
            batch.append(f)
            size += f.stat().st_size
        if batch and (f is None or len(batch) >= MAX_FILES or size >= MAX_BYTES):
            data = pa.concat_tables([pj.read_json(p) for p in batch], promote_options="default")
            write_deltalake(table, data, mode="append", schema_mode="merge")
            batch, size = [], 0


if __name__ == "__main__":
    main()
