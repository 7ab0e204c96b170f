#!/usr/bin/env python3
"""Write a benchmark image folder: N real photographs of varied sizes, as JPEG.

The photographs are the colour photos that scikit-image bundles (the demo's nine), so
nothing is downloaded. The script cycles through them and cuts a distinct crop out of each
turn, 40% to 100% of each side, at a position drawn from a generator seeded by --seed; the
crops are saved as JPEG quality 90 under names like `img_00042.jpg`. Sizes, aspect ratios
and JPEG payloads therefore vary the way they do in a real dataset, and the same arguments
always give the same files.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import skimage
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pipelines"))
from demo_images import PHOTOS  # noqa: E402  the demo's nine photographs

MIN_SIDE_FRACTION = 0.4
JPEG_QUALITY = 90


def load_photos() -> list[Image.Image]:
    data = Path(skimage.data.__file__).parent
    photos = []
    for name in PHOTOS:
        path = data / name
        if not path.is_file():
            raise SystemExit(f"make_images: {path} is missing from this scikit-image install")
        with Image.open(path) as im:
            photos.append(im.convert("RGB"))
    return photos


def draw_box(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, int, int]:
    """A crop box (left, top, right, bottom) of 40% to 100% of each side, anywhere inside."""
    w = int(rng.integers(int(np.ceil(MIN_SIDE_FRACTION * width)), width + 1))
    h = int(rng.integers(int(np.ceil(MIN_SIDE_FRACTION * height)), height + 1))
    x = int(rng.integers(0, width - w + 1))
    y = int(rng.integers(0, height - h + 1))
    return x, y, x + w, y + h


def distinct_box(rng, photo: Image.Image, used: set) -> tuple[int, int, int, int]:
    # Each photo has millions of possible boxes; a repeat is rare but would duplicate a file.
    while True:
        box = draw_box(rng, *photo.size)
        if box not in used:
            used.add(box)
            return box


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="folder to write into (created)")
    p.add_argument("--count", type=int, default=256, help="number of images (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the crop generator (default 0)")
    args = p.parse_args(argv)
    if args.count < 1:
        raise SystemExit(f"make_images: --count must be positive, got {args.count}")

    photos = load_photos()
    used = [set() for _ in photos]
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    total_bytes = 0
    for i in range(args.count):
        k = i % len(photos)
        box = distinct_box(rng, photos[k], used[k])
        path = args.out / f"img_{i:05d}.jpg"
        photos[k].crop(box).save(path, format="JPEG", quality=JPEG_QUALITY)
        total_bytes += path.stat().st_size
    print(
        f"make_images: wrote {args.count} crops of {len(photos)} photographs to {args.out} "
        f"({total_bytes / 1e6:.1f} MB)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
