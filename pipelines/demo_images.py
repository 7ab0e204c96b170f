#!/usr/bin/env python3
"""Copy the colour photographs that scikit-image ships into a folder, unchanged.

These are the demo's embedded data: real photographs, bundled with the scikit-image wheel,
so nothing is downloaded. Synthetic images (logo, colour wheel, chessboard) are left out.
"""

import shutil
import sys
from pathlib import Path

import skimage

PHOTOS = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
]


def main(out: Path) -> None:
    data = Path(skimage.data.__file__).parent
    out.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        src = data / name
        if not src.is_file():
            raise SystemExit(f"demo_images: {src} is missing from this scikit-image install")
        shutil.copyfile(src, out / name)
    print(f"copied {len(PHOTOS)} photographs from {data} to {out}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: demo_images.py OUT_DIR")
    main(Path(sys.argv[1]))
