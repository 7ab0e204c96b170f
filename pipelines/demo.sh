#!/usr/bin/env bash
# The demo: real photographs, three small random-init teachers of the real architectures
# (CLIP, DINOv2, SAM from timm), extract -> train from the cache -> stats.
# usage: demo.sh DISTILLERY_BINARY OUT_DIR
set -euo pipefail
BIN=$(realpath "$1")
OUT=$2
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${DISTILLERY_PYTHON:-python3}
mkdir -p "$OUT"
cd "$OUT"

"$PY" "$REPO/pipelines/demo_images.py" photos
export_teacher() { "$PY" "$REPO/pipelines/export_teacher.py" --random-init "$@"; }
export_teacher --model vit_base_patch16_clip_224.openai --name clip --out teachers/clip.pt \
  --img-size 64 --depth 2 --width 64 --heads 2 --summary-dim 32
export_teacher --model vit_small_patch14_dinov2.lvd142m --name dinov2 --out teachers/dinov2.pt \
  --img-size 70 --depth 2 --width 64 --heads 2
export_teacher --model samvit_base_patch16.sa1b --name sam --out teachers/sam.pt \
  --img-size 64 --depth 2 --width 64 --heads 2 --window-size 2

"$BIN" extract --pipeline "$REPO/pipelines/demo.toml" --overwrite
"$BIN" train --pipeline "$REPO/pipelines/demo.toml" --overwrite
"$BIN" stats --cache cache
echo "outputs under $(pwd): cache/ (features), student/ (checkpoint, loss log), cache/stats/"
