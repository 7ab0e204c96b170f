#!/usr/bin/env python3
"""Read a distillery cache with pylance/pyarrow alone and check `distillery stats` against
an independent numpy computation.

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


def fsl_to_numpy(column, width: int) -> np.ndarray:
    values = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float16).reshape(-1, width)


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
        grid = (int(meta["distillery:grid_h"]), int(meta["distillery:grid_w"]))
        dim = int(meta["distillery:patch_dim"])
        kinds = {"patch_tokens": fsl_to_numpy(table["patch_tokens"], dim).astype(np.float64)}
        assert table.schema.field("patch_tokens").type.value_type == "halffloat"
        if int(meta["distillery:summary_dim"]) > 0:
            kinds["summary"] = fsl_to_numpy(
                table["summary"], int(meta["distillery:summary_dim"])
            ).astype(np.float64)
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
            checked.append({"teacher": entry["name"], "kind": kind, "vectors": int(x.shape[0])})
        if grid[0] * grid[1] * dim != table.schema.field("patch_tokens").type.list_size:
            raise AssertionError(f"{entry['name']}: grid {grid} x {dim} disagrees with list size")
    print(json.dumps({"format": fmt, "images": images.num_rows, "checked": checked}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
