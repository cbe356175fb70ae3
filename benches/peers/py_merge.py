"""The Python peer for the MERGE bench: pyarrow's JSON reader + deltalake's merge().

Reads every JSON-lines file of a landing directory into one Arrow table and MERGEs it into
the Delta table by key, newer sequence winning, new keys inserted: what inlet does in merge
mode, written the way a user of the Python `deltalake` package would write it.
usage: py_merge.py LANDING_DIR TABLE_DIR KEY[,KEY...] SEQUENCE_COLUMN
"""
import pathlib
import sys

import pyarrow as pa
import pyarrow.json as pj
from deltalake import DeltaTable


def main() -> None:
    landing, table, keys, seq = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
    files = sorted(pathlib.Path(landing).glob("*.json"))
    source = pa.concat_tables(pj.read_json(f) for f in files)
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    metrics = (
        DeltaTable(table)
        .merge(source, predicate=on, source_alias="s", target_alias="t")
        .when_matched_update_all(predicate=f"s.{seq} >= t.{seq}")
        .when_not_matched_insert_all()
        .execute()
    )
    print(metrics, file=sys.stderr)


if __name__ == "__main__":
    main()
