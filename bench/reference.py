#!/usr/bin/env python3
"""A reference extraction pipeline in plain PyTorch, for `make bench` to compare against.

It does the work of `distillery extract` the way a Python project usually does it: a torch
DataLoader with worker processes opens each image with PIL, draws K views per image with
torchvision's RandomResizedCrop (scale 0.35..1, ratio 3/4..4/3) and a horizontal flip, and
resizes, scales and normalises each view for every teacher; the main process runs each
TorchScript teacher in eval mode under inference_mode in batches of B views, converts
summary and patch tokens to float16 and streams them into one zstd Parquet file per
teacher with a pyarrow ParquetWriter.

As in distillery, a view is one crop box and one flip shared by every teacher, resized to
each teacher's input size with its interpolation. It is a reference for the amount of
work, not for the exact crops: the generator is torch's, seeded by (seed, image index),
not distillery's. Torch's thread settings are left at their defaults.

Prints one JSON line: {"pipeline": "python-reference", "images": N, "views": N*K,
"seconds": t, "images_per_s": N/t}, where t runs from loading the teachers to closing the
last Parquet file (interpreter start and imports excluded).
"""

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode, RandomResizedCrop

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}
CROP_SCALE = (0.35, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
FLIP_PROBABILITY = 0.5
INTERPOLATIONS = {
    "bicubic": InterpolationMode.BICUBIC,
    "bilinear": InterpolationMode.BILINEAR,
    "nearest": InterpolationMode.NEAREST,
}
ZSTD_LEVEL = 3


@dataclass(frozen=True)
class Preprocess:
    """What a teacher's sidecar says about its input; picklable, so workers get a copy."""

    name: str
    height: int
    width: int
    interpolation: InterpolationMode
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, img: Image.Image, box: tuple[int, int, int, int], flip: bool):
        top, left, h, w = box
        view = TF.resized_crop(
            img, top, left, h, w, [self.height, self.width], self.interpolation
        )
        if flip:
            view = TF.hflip(view)
        return TF.normalize(TF.to_tensor(view), self.mean, self.std)


@dataclass
class Teacher:
    name: str
    path: Path
    sidecar: dict
    preprocess: Preprocess

    @property
    def summary_dim(self) -> int:
        return int(self.sidecar["summary_dim"])

    @property
    def num_tokens(self) -> int:
        return int(self.sidecar["num_tokens"])

    @property
    def patch_dim(self) -> int:
        return int(self.sidecar["patch_dim"])


def parse_teacher(spec: str) -> Teacher:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise SystemExit(f"reference: --teacher wants NAME=PATH.pt, got {spec!r}")
    path = Path(path)
    sidecar_path = Path(str(path) + ".json")
    if not sidecar_path.is_file():
        raise SystemExit(f"reference: teacher {name}: sidecar {sidecar_path} is missing")
    sidecar = json.loads(sidecar_path.read_text())
    interpolation = sidecar["interpolation"]
    if interpolation not in INTERPOLATIONS:
        raise SystemExit(f"reference: teacher {name}: unknown interpolation {interpolation!r}")
    _, height, width = sidecar["input_size"]
    preprocess = Preprocess(
        name=name,
        height=int(height),
        width=int(width),
        interpolation=INTERPOLATIONS[interpolation],
        mean=tuple(float(v) for v in sidecar["mean"]),
        std=tuple(float(v) for v in sidecar["std"]),
    )
    return Teacher(name, path, sidecar, preprocess)


def list_images(root: Path) -> list[Path]:
    paths = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not paths:
        raise SystemExit(f"reference: no images under {root}")
    return sorted(paths, key=lambda p: p.relative_to(root).as_posix())


class ViewDataset(Dataset):
    """Item i: image i's K views for every teacher, as {"index": i, "views": {name: [K,3,H,W]}}."""

    def __init__(self, paths: list[Path], preprocess: list[Preprocess], views: int, seed: int):
        self.paths = paths
        self.preprocess = preprocess
        self.views = views
        self.seed = seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        with Image.open(self.paths[index]) as f:
            img = f.convert("RGB")
        # torchvision draws from torch's global generator; seeding it per image makes the
        # views independent of how images are dealt out to the workers.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed << 32) + index)
            draws = [self.draw_view(img) for _ in range(self.views)]
        views = {
            pre.name: torch.stack([pre(img, box, flip) for box, flip in draws])
            for pre in self.preprocess
        }
        return {"index": index, "views": views}

    @staticmethod
    def draw_view(img: Image.Image):
        box = RandomResizedCrop.get_params(img, list(CROP_SCALE), list(CROP_RATIO))
        flip = bool(torch.rand(1).item() < FLIP_PROBABILITY)
        return box, flip


def table_schema(teacher: Teacher) -> pa.Schema:
    fields = [pa.field("image_index", pa.uint64()), pa.field("view", pa.uint16())]
    if teacher.summary_dim > 0:
        fields.append(pa.field("summary", pa.list_(pa.float16(), teacher.summary_dim)))
    tokens = teacher.num_tokens * teacher.patch_dim
    fields.append(pa.field("patch_tokens", pa.list_(pa.float16(), tokens)))
    return pa.schema(fields)


def fixed_size_f16(x: torch.Tensor) -> pa.FixedSizeListArray:
    """[B, ...] tensor -> fixed_size_list<float16>[prod(...)] with one row per batch entry."""
    flat = x.to(torch.float16).cpu().contiguous().numpy().reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), x[0].numel())


class TeacherRun:
    """One teacher's module, its pending views and its Parquet writer."""

    def __init__(self, teacher: Teacher, out_dir: Path, batch_size: int, device: torch.device):
        self.teacher = teacher
        self.batch_size = batch_size
        self.device = device
        self.module = torch.jit.load(str(teacher.path), map_location=device).eval()
        self.schema = table_schema(teacher)
        self.writer = pq.ParquetWriter(
            out_dir / f"{teacher.name}.parquet",
            self.schema,
            compression="zstd",
            compression_level=ZSTD_LEVEL,
        )
        self.pending: list[tuple[torch.Tensor, np.ndarray, np.ndarray]] = []
        self.pending_views = 0
        self.rows = 0

    def push(self, views: torch.Tensor, image_index: np.ndarray, view: np.ndarray) -> None:
        """Queue views [N, 3, H, W]; run every full batch of B views."""
        self.pending.append((views, image_index, view))
        self.pending_views += views.shape[0]
        while self.pending_views >= self.batch_size:
            self.run_batch(self.batch_size)

    def finish(self) -> None:
        if self.pending_views:
            self.run_batch(self.pending_views)
        self.writer.close()

    def take(self, n: int):
        if len(self.pending) == 1:
            views, image_index, view = self.pending[0]
        else:
            views, image_index, view = (list(parts) for parts in zip(*self.pending))
            views = torch.cat(views)
            image_index = np.concatenate(image_index)
            view = np.concatenate(view)
        rest = views.shape[0] - n
        self.pending = [(views[n:], image_index[n:], view[n:])] if rest else []
        self.pending_views = rest
        return views[:n], image_index[:n], view[:n]

    def run_batch(self, n: int) -> None:
        views, image_index, view = self.take(n)
        with torch.inference_mode():
            summary, patches = self.module(views.to(self.device, non_blocking=True))
        self.check_shapes(summary, patches, n)
        columns = [pa.array(image_index, pa.uint64()), pa.array(view, pa.uint16())]
        if self.teacher.summary_dim > 0:
            columns.append(fixed_size_f16(summary))
        columns.append(fixed_size_f16(patches))
        self.writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.schema))
        self.rows += n

    def check_shapes(self, summary: torch.Tensor, patches: torch.Tensor, n: int) -> None:
        t = self.teacher
        want_summary = (n, t.summary_dim)
        want_patches = (n, t.num_tokens, t.patch_dim)
        if tuple(summary.shape) != want_summary or tuple(patches.shape) != want_patches:
            raise SystemExit(
                f"reference: teacher {t.name}: outputs summary {list(summary.shape)}, "
                f"patch tokens {list(patches.shape)}; the sidecar says "
                f"{list(want_summary)} and {list(want_patches)}"
            )


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", required=True, type=Path, help="folder of jpeg/png/webp images")
    p.add_argument(
        "--teacher",
        action="append",
        required=True,
        metavar="NAME=PATH.pt",
        help="a TorchScript teacher with its sidecar at PATH.pt.json; repeatable",
    )
    p.add_argument("--views", type=int, default=2, help="views per image, K (default 2)")
    p.add_argument("--batch-size", type=int, default=32, help="views per forward (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the view generator (default 0)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0)")
    p.add_argument("--device", default="cpu", help="torch device for the teachers (default cpu)")
    p.add_argument("--out", required=True, type=Path, help="folder for <teacher>.parquet files")
    args = p.parse_args(argv)
    for flag in ("views", "batch_size"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"reference: --{flag.replace('_', '-')} must be positive")
    if args.workers < 0 or not 0 <= args.seed < 2**31:
        raise SystemExit("reference: --workers must be >= 0 and --seed in 0..2^31")
    return args


def make_loader(args, paths: list[Path], teachers: list[Teacher], device: torch.device):
    dataset = ViewDataset(paths, [t.preprocess for t in teachers], args.views, args.seed)
    # Whole images per loader batch, about B views' worth; TeacherRun re-cuts exact batches.
    return DataLoader(
        dataset,
        batch_size=max(1, args.batch_size // args.views),
        shuffle=False,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )


def extract(args) -> dict:
    device = torch.device(args.device)
    teachers = [parse_teacher(spec) for spec in args.teacher]
    names = [t.name for t in teachers]
    if len(set(names)) != len(names):
        raise SystemExit(f"reference: teacher names repeat: {names}")
    paths = list_images(args.images)
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    runs = [TeacherRun(t, args.out, args.batch_size, device) for t in teachers]
    for batch in make_loader(args, paths, teachers, device):
        n = batch["index"].shape[0]
        image_index = np.repeat(batch["index"].numpy(), args.views)
        view = np.tile(np.arange(args.views), n)
        for run in runs:
            views = batch["views"][run.teacher.name]  # [n, K, 3, H, W]
            run.push(views.flatten(0, 1), image_index, view)
    for run in runs:
        run.finish()
    seconds = time.perf_counter() - start

    for run in runs:
        if run.rows != len(paths) * args.views:
            raise SystemExit(f"reference: teacher {run.teacher.name}: wrote {run.rows} rows")
    return {
        "pipeline": "python-reference",
        "images": len(paths),
        "views": len(paths) * args.views,
        "seconds": round(seconds, 4),
        "images_per_s": round(len(paths) / seconds, 3),
        "teachers": names,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    print(json.dumps(extract(args)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
