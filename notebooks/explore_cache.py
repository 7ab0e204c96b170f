# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # Exploring a distillery cache
#
# A cache is plain Lance (or Parquet) tables and a JSON manifest, so this notebook reads it
# with pylance, pyarrow, polars, numpy and PIL alone: no distillery code. It shows
#
# 1. what the cache holds (teachers, grids, codecs, rows),
# 2. feature statistics per teacher and per group (the images' labels),
# 3. a cross-teacher comparison: linear CKA between the teachers' features of the same views,
# 4. pictures of features: the first three principal components of each teacher's patch
#    tokens as RGB, beside the view the teachers saw.
#
# It is in jupytext's percent format: open it in Jupyter with jupytext, or convert it
# (`jupytext --to ipynb notebooks/explore_cache.py`), or run it as a script:
#
# ```sh
# python notebooks/explore_cache.py [CACHE] [OUT]   # defaults: out/demo/cache out/demo/explore
# ```
#
# It writes `OUT/features.png` and `OUT/explore.json` (every number printed below).

# %%
import json
import sys
from pathlib import Path

import lance
import numpy as np
import polars as pl
import pyarrow.parquet as pq
from PIL import Image

args = [a for a in sys.argv[1:] if not a.startswith("-")] if __name__ == "__main__" else []
CACHE = Path(args[0] if len(args) > 0 else "out/demo/cache")
OUT = Path(args[1] if len(args) > 1 else "out/demo/explore")
OUT.mkdir(parents=True, exist_ok=True)
# Rows read from each table: a sample is enough to explore; statistics below are over it.
ROWS = 4096

# %% [markdown]
# ## What the cache holds

# %%
manifest = json.loads((CACHE / "manifest.json").read_text())
FORMAT = manifest["table_format"]


def read(rel: str, limit=ROWS):
    """The first `limit` rows (all with None) of a table of the cache, as a pyarrow Table."""
    if FORMAT == "lance":
        return lance.dataset(str(CACHE / rel)).to_table(limit=limit)
    table = pq.read_table(CACHE / rel)
    return table if limit is None else table.slice(0, limit)


print(f"{manifest['images']} images, {manifest['views_per_image']} views each, "
      f"{manifest['rows']} rows per teacher, {len(manifest['rejected'])} rejected")
for t in manifest["teachers"]:
    s = t["sidecar"]
    print(f"  {t['name']:<8} {s['timm_model']:<36} input {s['input_size'][1]}x{s['input_size'][2]}"
          f"  summary {s['summary_dim']:>4}  tokens {s['grid'][0]}x{s['grid'][1]}x{s['patch_dim']}"
          f"  patch codec {t['patch_encoding']['codec']} {t['patch_encoding']['compression']}")

# %% [markdown]
# ## Decoding the features
#
# `float16` and `float32` columns are plain fixed-size lists. The other codecs take the
# few lines of `schemas/cache-v2.md`: `bfloat16` is stored as its bit pattern, `int8`
# beside one float32 scale per token, `bss-zstd` as one zstd frame of byte planes per row.

# %%
ITEM = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16, "int8": np.int8}


def features(table, column: str, encoding: dict, per_row: int, tokens: int) -> np.ndarray:
    """Column `column` of `table` decoded to float32, shape [rows, tokens, per_row // tokens]."""
    codec, item = encoding["codec"], ITEM[encoding["codec"]]
    if encoding["compression"] == "bss-zstd":
        import zstandard

        unzip = zstandard.ZstdDecompressor()
        width = np.dtype(item).itemsize
        raw = np.stack([
            np.frombuffer(unzip.decompress(blob), np.uint8).reshape(width, per_row).T.copy().view(item)[:, 0]
            for blob in table[column].to_pylist()
        ])
    else:
        raw = table[column].combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(item)
    raw = raw.reshape(table.num_rows, tokens, per_row // tokens)
    if codec == "bfloat16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if codec == "int8":
        scale = table[column + "_scale"].combine_chunks().flatten().to_numpy()
        return raw.astype(np.float32) * scale.reshape(table.num_rows, tokens, 1)
    return raw.astype(np.float32)


images = pl.from_arrow(read(manifest["images_table"], limit=None))
views = None
feats = {}  # teacher -> {"summary": [rows, D_s] or None, "patch": [rows, T, D]}
for t in manifest["teachers"]:
    table = read(t["table"])
    s = t["sidecar"]
    if views is None:
        views = pl.from_arrow(table.select(["image_id", "view", "crop_x", "crop_y", "crop_w", "crop_h", "flip"]))
    tokens = s["num_tokens"]
    patch = features(table, "patch_tokens", t["patch_encoding"], tokens * s["patch_dim"], tokens)
    summary = None
    if s["summary_dim"] > 0:
        summary = features(table, "summary", t["summary_encoding"], s["summary_dim"], 1)[:, 0]
    feats[t["name"]] = {"summary": summary, "patch": patch}
print(views.head(4))

# %% [markdown]
# ## Statistics per teacher and per group
#
# Over the first `ROWS` views. One row per view: the L2 norm of the summary and the mean L2 norm of its patch tokens,
# joined to the images table to group by label (images without one form the group
# `(none)`). The overall means are what `distillery stats` reports as `norm_mean` for
# summaries; for patch tokens its `norm_mean` is over all tokens, which is the mean of the
# per-view means here since every view has the same number of tokens.

# %%
norms = views.select("image_id", "view")
for name, f in feats.items():
    patch = np.linalg.norm(f["patch"].astype(np.float64), axis=2).mean(axis=1)
    norms = norms.with_columns(pl.Series(f"{name}/patch", patch))
    if f["summary"] is not None:
        summary = np.linalg.norm(f["summary"].astype(np.float64), axis=1)
        norms = norms.with_columns(pl.Series(f"{name}/summary", summary))
labelled = norms.join(
    images.select(pl.col("id").alias("image_id"), pl.col("label").fill_null("(none)")),
    on="image_id",
    how="left",
)
columns = [c for c in norms.columns if "/" in c]
per_group = (
    labelled.group_by("label")
    .agg(pl.len().alias("views"), *[pl.col(c).mean() for c in columns])
    .sort("label")
)
overall = labelled.select(*[pl.col(c).mean() for c in columns])
print("mean L2 norm per group")
print(per_group)
print("overall")
print(overall)

# %% [markdown]
# ## Cross-teacher comparison: linear CKA
#
# Linear centred kernel alignment (Kornblith et al., 2019) between two teachers' features
# of the same views: 1 when one is a rotation and scaling of the other, near 0 when they
# are unrelated. Each view is represented by its mean-pooled patch tokens, so that teachers
# with different grids and widths compare. With few views CKA is biased upwards (even
# unrelated features of these widths score well above 0 on a few dozen views), so a
# baseline is printed beside it: the same pairs with the views of one side shuffled, which
# breaks their correspondence and keeps everything else.


# %%
def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


names = list(feats)
pooled = {n: feats[n]["patch"].mean(axis=1).astype(np.float64) for n in names}
cka = np.array([[linear_cka(pooled[a], pooled[b]) for b in names] for a in names])
shuffle = np.random.default_rng(0).permutation(views.height)
baseline = np.array([[linear_cka(pooled[a], pooled[b][shuffle]) for b in names] for a in names])
print(f"linear CKA of mean-pooled patch tokens over {views.height} views")
print(pl.DataFrame({"teacher": names, **{b: cka[:, j] for j, b in enumerate(names)}}))
print("the same with one side's views shuffled (the level of unrelated features)")
print(pl.DataFrame({"teacher": names, **{b: baseline[:, j] for j, b in enumerate(names)}}))

# %% [markdown]
# ## Pictures of features
#
# For the first view: the crop the teachers saw (rebuilt from the stored box and flip, if
# the source is a folder of image files), then, per teacher, its patch tokens projected on
# their first three principal components (computed over every token of every view), each
# component scaled to 0-255, shown on the teacher's grid enlarged to the panel size.

# %%
PANEL = 192
ROW = 0


def pca_rgb(tokens_all: np.ndarray, tokens_row: np.ndarray, grid) -> np.ndarray:
    flat = tokens_all.reshape(-1, tokens_all.shape[-1]).astype(np.float64)
    centre = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - centre, full_matrices=False)
    proj = (tokens_row - centre) @ vt[:3].T
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    rgb = (proj - lo) / np.where(hi > lo, hi - lo, 1.0)
    return (rgb.reshape(grid[0], grid[1], 3) * 255).round().astype(np.uint8)


panels = []
view = views.row(ROW, named=True)
source = Path(manifest["source_path"])
path = images.filter(pl.col("id") == view["image_id"])["path"][0]
if manifest["pipeline"]["source"].get("kind", "folder") == "folder" and (source / path).is_file():
    from PIL import ImageOps

    photo = ImageOps.exif_transpose(Image.open(source / path)).convert("RGB")
    box = (view["crop_x"], view["crop_y"], view["crop_x"] + view["crop_w"], view["crop_y"] + view["crop_h"])
    crop = photo.crop(box).resize((PANEL, PANEL), Image.BICUBIC)
    if view["flip"]:
        crop = ImageOps.mirror(crop)
    panels.append(np.asarray(crop))
pictures = {}
for t in manifest["teachers"]:
    grid = t["sidecar"]["grid"]
    patch = feats[t["name"]]["patch"]
    rgb = pca_rgb(patch, patch[ROW], grid)
    pictures[t["name"]] = rgb
    panels.append(np.asarray(Image.fromarray(rgb).resize((PANEL, PANEL), Image.NEAREST)))
sheet = Image.fromarray(np.concatenate(panels, axis=1))
sheet.save(OUT / "features.png")
print(f"{OUT / 'features.png'}: {len(panels)} panels of {PANEL}x{PANEL} "
      f"(view {view['view']} of image {path}, then {', '.join(names)})")
sheet

# %%
report = {
    "cache": str(CACHE),
    "rows": views.height,
    "teachers": names,
    "overall_norm_mean": overall.to_dicts()[0],
    "per_group": per_group.to_dicts(),
    "cka_pooled_patch": cka.tolist(),
    "cka_shuffled_baseline": baseline.tolist(),
    "picture": {"file": "features.png", "panels": len(panels), "panel": PANEL, "photo": len(panels) > len(names)},
    "pca_grids": {n: list(p.shape) for n, p in pictures.items()},
}
(OUT / "explore.json").write_text(json.dumps(report, indent=1))
