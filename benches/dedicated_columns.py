"""What dedicated attribute columns would save, measured before building them (BENCHMARKS.md).

Rewrites one Parquet file of `spanlake bench gen` twice with pyarrow, zstd 7 and the encodings
Spanlake uses: as it is (every attribute in the `attributes` map), and with every span
attribute key present on at least 20% of spans taken out of the map into a column of its own.
Prints bytes per span, the largest columns, and how long reading the map and one dedicated
column takes.

    ./target/release/spanlake bench gen --spans 1000000 --file-spans 1000000 --data-dir /tmp/gen1m
    python3 benches/dedicated_columns.py /tmp/gen1m/spans/tenant=*/date=*/hour=*/*.parquet
"""

import collections
import os
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

ENCODINGS = {
    "span_id": "DELTA_LENGTH_BYTE_ARRAY",
    "parent_span_id": "DELTA_LENGTH_BYTE_ARRAY",
    "start_time": "BYTE_STREAM_SPLIT",
    "duration_ns": "BYTE_STREAM_SPLIT",
    "attributes.key_value.value": "PLAIN",
}
NESTED = {"attributes", "attribute_types", "resource_attributes", "resource_attribute_types", "events", "links"}
MAP_LEAVES = [
    "attributes.key_value.key",
    "attribute_types.key_value.key",
    "attribute_types.key_value.value",
    "resource_attributes.key_value.key",
    "resource_attributes.key_value.value",
]


def with_dedicated_columns(table):
    attrs = table.column("attributes").combine_chunks()
    rows = table.num_rows
    offsets, keys, values = attrs.offsets.to_pylist(), attrs.keys.to_pylist(), attrs.items.to_pylist()
    counts = collections.Counter(keys)
    dedicated = {k: [None] * rows for k, c in counts.items() if c >= 0.2 * rows}
    rest_offsets, rest_keys, rest_values = [0], [], []
    for i in range(rows):
        for j in range(offsets[i], offsets[i + 1]):
            column = dedicated.get(keys[j])
            if column is not None:
                column[i] = values[j]
            else:
                rest_keys.append(keys[j])
                rest_values.append(values[j])
        rest_offsets.append(len(rest_keys))
    rest = pa.MapArray.from_arrays(
        pa.array(rest_offsets, pa.int32()), pa.array(rest_keys, pa.string()), pa.array(rest_values, pa.string())
    )
    out = table.set_column(table.schema.get_field_index("attributes"), "attributes", rest)
    for key, column in dedicated.items():
        out = out.append_column("attr_" + key.replace(".", "_"), pa.array(column, pa.string()))
    return out, sorted(dedicated)


def measure(name, table, path):
    dictionary = [c for c in table.schema.names if c not in NESTED and c not in ENCODINGS] + MAP_LEAVES
    pq.write_table(
        table, path, row_group_size=65536, compression="zstd", compression_level=7,
        use_dictionary=dictionary, column_encoding=ENCODINGS,
    )
    meta = pq.ParquetFile(path).metadata
    per_column = collections.Counter()
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            per_column[group.column(c).path_in_schema] += group.column(c).total_compressed_size
    rows = table.num_rows
    print(f"{name}: {os.path.getsize(path) / rows:.2f} bytes per span")
    for column, size in per_column.most_common(8):
        print(f"  {column}: {size / rows:.2f}")
    for column in ["attributes", "resource_attributes", "attr_http_route"]:
        if column in table.schema.names:
            started = time.perf_counter()
            pq.read_table(path, columns=[column])
            print(f"  read {column}: {(time.perf_counter() - started) * 1000:.0f} ms")


def main():
    table = pq.read_table(sys.argv[1])
    dedicated, keys = with_dedicated_columns(table)
    with tempfile.TemporaryDirectory() as tmp:
        measure("every attribute in the map", table, os.path.join(tmp, "maps.parquet"))
        measure(f"dedicated columns for {len(keys)} keys", dedicated, os.path.join(tmp, "dedicated.parquet"))


if __name__ == "__main__":
    main()
