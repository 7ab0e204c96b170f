#!/usr/bin/env python3
"""Read a distillery cache with pylance/pyarrow alone and check `distillery stats` against
an independent numpy computation; check that polars and DuckDB read the same rows.

usage: check_cache.py CACHE_DIR STATS_DIR
Prints one JSON object with what it checked; exits non-zero on any mismatch.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def read_table(cache: Path, rel: str, table_format: str):
    path = cache / rel
    if table_format == "lance":
        import lance

        return lance.dataset(str(path)).to_table()
    return pq.read_table(path)


VIEW_COLUMNS = ["image_id", "view", "crop_x", "crop_y", "crop_w", "crop_h", "flip"]


def check_other_readers(cache: Path, rel: str, table_format: str, table) -> list[str]:
    """polars and DuckDB read `rel` as pyarrow/pylance did: the same view columns, in the
    same order, and (where they can hold it) the same patch tokens."""
    import duckdb
    import polars as pl

    path = cache / rel
    expected = {c: table[c].to_pylist() for c in VIEW_COLUMNS}
    if table_format == "lance":
        import lance

        dataset = lance.dataset(str(path))
        frame = pl.scan_pyarrow_dataset(dataset).select(VIEW_COLUMNS).collect()
        # DuckDB takes no Arrow float16: it reads the view columns of a projected scanner.
        scanner = dataset.scanner(columns=VIEW_COLUMNS)
        relation = duckdb.sql("SELECT * FROM scanner")
        tokens = None
    else:
        frame = pl.read_parquet(str(path)).select(VIEW_COLUMNS)
        # DuckDB reads Parquet float16 as FLOAT.
        relation = duckdb.sql(f"SELECT * FROM read_parquet('{path}/part-*.parquet')")
        tokens = relation.select("patch_tokens").fetchall()
        relation = relation.select(", ".join(VIEW_COLUMNS))
    for column in VIEW_COLUMNS:
        assert frame[column].to_list() == expected[column], ("polars", rel, column)
    rows = relation.fetchall()
    for i, column in enumerate(VIEW_COLUMNS):
        assert [r[i] for r in rows] == expected[column], ("duckdb", rel, column)
    if tokens is not None and pa_type_name(table, "patch_tokens") == "halffloat":
        got = np.array([t[0] for t in tokens], dtype=np.float32)
        want = table["patch_tokens"].combine_chunks().flatten().to_numpy()
        assert np.array_equal(got, want.astype(np.float32).reshape(got.shape)), ("duckdb", rel)
    return ["polars", "duckdb"]


def pa_type_name(table, column: str) -> str:
    kind = table.schema.field(column).type
    return str(getattr(kind, "value_type", kind))


WIDTH = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
STORED = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16, "int8": np.int8}


def decode(table, column: str, codec: str, compression: str, values: int, tokens: int):
    """Feature `column` as float64 [rows, values], for every codec of schemas/cache-v2.md."""
    if compression == "bss-zstd":
        import zstandard

        dctx = zstandard.ZstdDecompressor()
        rows = []
        for blob in table[column].to_pylist():
            planes = np.frombuffer(dctx.decompress(blob), np.uint8).reshape(WIDTH[codec], values)
            rows.append(planes.T.copy().view(STORED[codec]).reshape(values))
        x = np.stack(rows)
    else:
        flat = table[column].combine_chunks().flatten().to_numpy(zero_copy_only=False)
        x = flat.astype(STORED[codec]).reshape(-1, values)
    if codec == "bfloat16":
        x = (x.astype(np.uint32) << 16).view(np.float32)
    if codec == "int8":
        # value = int8 * its token's float32 scale, in float32
        scales = table[column + "_scale"].combine_chunks().flatten().to_numpy()
        q = x.astype(np.float32).reshape(len(x), tokens, -1)
        x = (q * scales.reshape(len(x), tokens, 1).astype(np.float32)).reshape(len(x), -1)
    return x.astype(np.float64)


def main(cache: Path, stats_dir: Path) -> None:
    manifest = json.loads((cache / "manifest.json").read_text())
    fmt = manifest["table_format"]
    images = read_table(cache, manifest["images_table"], fmt)
    assert images.num_rows == manifest["images"], (images.num_rows, manifest["images"])
    per_dim = pq.read_table(stats_dir / "stats_per_dim.parquet").to_pylist()
    overall = pq.read_table(stats_dir / "stats.parquet").to_pylist()
    checked = []
    for entry in manifest["teachers"]:
        table = read_table(cache, entry["table"], fmt)
        meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
        assert meta["distillery:teacher"] == entry["name"], meta
        assert table.num_rows == manifest["rows"], (table.num_rows, manifest["rows"])
        readers = check_other_readers(cache, entry["table"], fmt, table)
        grid = (int(meta["distillery:grid_h"]), int(meta["distillery:grid_w"]))
        dim = int(meta["distillery:patch_dim"])
        compression = meta.get("distillery:compression", "native")
        tokens = grid[0] * grid[1]
        patch_codec = meta.get("distillery:patch_tokens_codec", "float16")
        patches = decode(table, "patch_tokens", patch_codec, compression, tokens * dim, tokens)
        kinds = {"patch_tokens": patches.reshape(-1, dim)}
        if int(meta["distillery:summary_dim"]) > 0:
            summary_codec = meta.get("distillery:summary_codec", "float16")
            sdim = int(meta["distillery:summary_dim"])
            kinds["summary"] = decode(table, "summary", summary_codec, compression, sdim, 1)
        for kind, x in kinds.items():
            rows = [r for r in per_dim if r["teacher"] == entry["name"] and r["kind"] == kind]
            got_mean = np.array([r["mean"] for r in sorted(rows, key=lambda r: r["dim"])])
            got_std = np.array([r["std"] for r in sorted(rows, key=lambda r: r["dim"])])
            np.testing.assert_allclose(got_mean, x.mean(axis=0), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(got_std, x.std(axis=0), rtol=1e-9, atol=1e-12)
            (o,) = [r for r in overall if r["teacher"] == entry["name"] and r["kind"] == kind]
            norms = np.linalg.norm(x, axis=1)
            assert o["vectors"] == x.shape[0] and o["dims"] == x.shape[1], o
            np.testing.assert_allclose(o["mean"], x.mean(), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(o["std"], x.std(), rtol=1e-7)
            np.testing.assert_allclose(o["norm_mean"], norms.mean(), rtol=1e-9)
            np.testing.assert_allclose(o["norm_std"], norms.std(), rtol=1e-7)
            np.testing.assert_allclose(o["norm_min"], norms.min(), rtol=1e-12)
            np.testing.assert_allclose(o["norm_max"], norms.max(), rtol=1e-12)
            checked.append(
                {"teacher": entry["name"], "kind": kind, "vectors": int(x.shape[0]), "readers": readers}
            )
    print(json.dumps({"format": fmt, "images": images.num_rows, "checked": checked}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
