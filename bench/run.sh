#!/usr/bin/env bash
# The benchmark: distillery's extract against the bound its teachers set and against a
# plain PyTorch reference pipeline, on the same images, teachers, views and batch size.
#
#   bound       `distillery bench-teachers`: the teachers alone, on pre-decoded tensors
#   extract     `distillery extract --overwrite`, wall clock, process start included
#   python      bench/reference.py (DataLoader, one worker per CPU), wall clock likewise
#
# usage: bench/run.sh DISTILLERY_BINARY OUT_DIR
# env:   BENCH_IMAGES (images, default 256), BENCH_BATCH (default 32), BENCH_DEVICE (torch device, default cpu),
#        BENCH_TEACHERS (tiny, default: the demo's test-sized teachers; full: the real
#        architectures at their real depth and width, random weights, CLIP ViT-B/16 and
#        DINOv2 ViT-S/14 at 224 px and SAM ViT-B at BENCH_SAM_SIZE px: 1024, or 256 on cpu),
#        DISTILLERY_PYTHON (default python3)
# Prints a table and writes OUT_DIR/bench.json.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 DISTILLERY_BINARY OUT_DIR" >&2
  exit 2
fi
BIN=$(realpath "$1")
OUT=$2
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${DISTILLERY_PYTHON:-python3}
IMAGES=${BENCH_IMAGES:-256}
DEVICE=${BENCH_DEVICE:-cpu}
TEACHERS=${BENCH_TEACHERS:-tiny}
# SAM at 1024 px needs ~0.8 GB of attention per image in its global blocks: GPU only.
SAM_SIZE=${BENCH_SAM_SIZE:-$([ "$DEVICE" = cpu ] && echo 256 || echo 1024)}
VIEWS=2
BATCH=${BENCH_BATCH:-32}
SEED=0
WORKERS=$(nproc)
mkdir -p "$OUT"
cd "$OUT"

now() { date +%s.%N; }

# The last line of FILE that is a JSON object; fails, naming STEP, when there is none.
json_line() {
  local file=$1 step=$2
  grep '^{' "$file" | tail -n 1 || {
    echo "bench: $step printed no JSON line (its stdout is in $(pwd)/$file)" >&2
    exit 1
  }
}

make_images() {
  rm -rf images
  "$PY" "$REPO/bench/make_images.py" --out images --count "$IMAGES"
}

export_teacher() { "$PY" "$REPO/pipelines/export_teacher.py" --random-init "$@"; }

# The demo's three teachers, with the demo's flags (pipelines/demo.sh).
export_tiny_teachers() {
  export_teacher --model vit_base_patch16_clip_224.openai --name clip --out teachers/clip.pt \
    --img-size 64 --depth 2 --width 64 --heads 2 --summary-dim 32
  export_teacher --model vit_small_patch14_dinov2.lvd142m --name dinov2 \
    --out teachers/dinov2.pt --img-size 70 --depth 2 --width 64 --heads 2
  export_teacher --model samvit_base_patch16.sa1b --name sam --out teachers/sam.pt \
    --img-size 64 --depth 2 --width 64 --heads 2 --window-size 2
}

# The three teacher architectures at their published depth and width (random weights):
# what the teachers cost in a real run, against which decoding is small.
export_full_teachers() {
  export_teacher --model vit_base_patch16_clip_224.openai --name clip --out teachers/clip.pt
  export_teacher --model vit_small_patch14_dinov2.lvd142m --name dinov2 \
    --out teachers/dinov2.pt --img-size 224
  export_teacher --model samvit_base_patch16.sa1b --name sam --out teachers/sam.pt \
    --img-size "$SAM_SIZE"
}

export_teachers() {
  case $TEACHERS in
    tiny) export_tiny_teachers ;;
    full) export_full_teachers ;;
    *) echo "bench: BENCH_TEACHERS must be tiny or full, not '$TEACHERS'" >&2; exit 2 ;;
  esac
}

write_pipeline() {
  cat > bench.toml <<EOF
# Written by bench/run.sh: the benchmark images and the demo's three teachers.
[source]
kind = "folder"
path = "images"

[extract]
output = "cache"
format = "lance"
views_per_image = $VIEWS
seed = $SEED
batch_size = $BATCH
device = "$DEVICE"

[[teacher]]
name = "clip"
path = "teachers/clip.pt"

[[teacher]]
name = "dinov2"
path = "teachers/dinov2.pt"

[[teacher]]
name = "sam"
path = "teachers/sam.pt"
EOF
}

echo "bench: $IMAGES images, $VIEWS views each, batch $BATCH, device $DEVICE," \
  "$TEACHERS teachers, in $(pwd)" >&2
make_images
export_teachers
write_pipeline

echo "bench: bound (bench-teachers)" >&2
"$BIN" bench-teachers --pipeline bench.toml > bound.out
BOUND_JSON=$(json_line bound.out bench-teachers)

echo "bench: distillery extract" >&2
EXTRACT_START=$(now)
"$BIN" extract --pipeline bench.toml --overwrite | tee extract.out
EXTRACT_END=$(now)
LOAD_S=$(sed -n 's/.*(loading the teachers: \([0-9.]*\)s).*/\1/p' extract.out)
PEAK_BYTES=$(sed -n 's/.*peak memory: .*(\([0-9]*\) bytes).*/\1/p' extract.out)
if [ -z "$LOAD_S" ]; then
  echo "bench: extract did not print its teacher loading time (its stdout is in $(pwd)/extract.out)" >&2
  exit 1
fi

echo "bench: python reference ($WORKERS workers)" >&2
PYTHON_START=$(now)
"$PY" "$REPO/bench/reference.py" --images images --out reference \
  --teacher clip=teachers/clip.pt --teacher dinov2=teachers/dinov2.pt \
  --teacher sam=teachers/sam.pt --views "$VIEWS" --batch-size "$BATCH" --seed "$SEED" \
  --workers "$WORKERS" --device "$DEVICE" > reference.out
PYTHON_END=$(now)
PYTHON_JSON=$(json_line reference.out reference.py)

# The image count comes from the cache manifest, so that rejected images are not counted.
BOUND_JSON=$BOUND_JSON PYTHON_JSON=$PYTHON_JSON \
EXTRACT_START=$EXTRACT_START EXTRACT_END=$EXTRACT_END LOAD_S=$LOAD_S PEAK_BYTES=$PEAK_BYTES \
PYTHON_START=$PYTHON_START PYTHON_END=$PYTHON_END \
VIEWS=$VIEWS BATCH=$BATCH DEVICE=$DEVICE WORKERS=$WORKERS TEACHERS=$TEACHERS \
"$PY" - <<'EOF'
import json
import os

env = os.environ
bound = json.loads(env["BOUND_JSON"])
python = json.loads(env["PYTHON_JSON"])
manifest = json.load(open("cache/manifest.json"))
images = int(manifest["images"])
if python["images"] != images:
    raise SystemExit(f"bench: extract cached {images} images, the reference ran {python['images']}")
if "images_per_s" not in bound:
    raise SystemExit(f"bench: bench-teachers gave no images_per_s: {bound}")

extract_s = float(env["EXTRACT_END"]) - float(env["EXTRACT_START"])
python_s = float(env["PYTHON_END"]) - float(env["PYTHON_START"])
rates = {
    "bound": float(bound["images_per_s"]),
    "extract": images / extract_s,
    "python": images / python_s,
}
result = {
    "images": images,
    "views_per_image": int(env["VIEWS"]),
    "views": images * int(env["VIEWS"]),
    "batch_size": int(env["BATCH"]),
    "device": env["DEVICE"],
    "teacher_sizes": env["TEACHERS"],
    "teachers": [t["name"] for t in manifest["teachers"]],
    "bound_images_per_s": round(rates["bound"], 3),
    "extract_images_per_s": round(rates["extract"], 3),
    "extract_seconds": round(extract_s, 4),
    "extract_teacher_load_seconds": float(env["LOAD_S"]),
    "extract_peak_memory_bytes": int(env["PEAK_BYTES"]) if env.get("PEAK_BYTES") else None,
    "extract_over_bound_less_loading": round(bound["seconds"] / (extract_s - float(env["LOAD_S"])), 4),
    "python_images_per_s": round(rates["python"], 3),
    "python_seconds": round(python_s, 4),
    "python_workers": int(env["WORKERS"]),
    "python_in_process_images_per_s": python["images_per_s"],
    "extract_over_bound": round(rates["extract"] / rates["bound"], 4),
    "extract_over_python": round(rates["extract"] / rates["python"], 4),
    "bench_teachers": bound,
    "reference": python,
}
with open("bench.json", "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")

rows = [
    ("teachers alone (bench-teachers)", rates["bound"], bound.get("seconds")),
    ("distillery extract, end to end", rates["extract"], extract_s),
    (f"python reference, {env['WORKERS']} workers", rates["python"], python_s),
]
print(f"{images} images x {env['VIEWS']} views, batch {env['BATCH']}, device {env['DEVICE']}, "
      f"{env['TEACHERS']} teachers")
print(f"{'pipeline':<34} {'images/s':>10} {'seconds':>9}")
for name, rate, seconds in rows:
    shown = f"{seconds:9.2f}" if isinstance(seconds, (int, float)) else f"{'-':>9}"
    print(f"{name:<34} {rate:10.2f} {shown}")
print(f"{'end to end / bound':<34} {result['extract_over_bound']:10.2f}")
print(f"{'  the same, less loading teachers':<34} {result['extract_over_bound_less_loading']:10.2f}"
      f"   (extract loaded them in {env['LOAD_S']} s; the bound's time excludes loading)")
print(f"{'end to end / python':<34} {result['extract_over_python']:10.2f}")
print(f"(python in-process, imports excluded: {python['images_per_s']:.1f} images/s)")
if result["extract_peak_memory_bytes"]:
    print(f"extract peak memory: {result['extract_peak_memory_bytes'] / 2**20:.0f} MiB")
print(f"written to {os.path.abspath('bench.json')}")
EOF
