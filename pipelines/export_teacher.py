#!/usr/bin/env python3
"""Export a timm vision model as a distillery teacher: a TorchScript file and a JSON sidecar.

The exported module has one contract whatever the family:

    input   float32 [B, 3, H, W], already resized and normalised with the sidecar's mean/std
    output  (summary [B, D_s], patch_tokens [B, T, D]), patch tokens in NLC layout

Summary per family: CLIP, the projected image embedding (timm's head on the class token);
DINOv2, the normalised class token; SAM, none (an empty [B, 0] tensor). SAM's neck output
[B, 256, h, w] is flattened to [B, h*w, 256].

Real use loads pretrained weights by timm name, for example

    export_teacher.py --model vit_large_patch14_clip_336.openai --out clip.pt

Machines without a model hub use --random-init with size overrides, which keeps the real
architecture of each family but makes it small enough to run on a CPU in seconds.
"""

import argparse
import json
import sys
from pathlib import Path

import timm
import warnings

import torch


def family_of(model_name: str) -> str:
    name = model_name.lower()
    if name.startswith("samvit"):
        return "sam"
    if "dinov2" in name or "dinov3" in name:
        return "dinov2"
    if "clip" in name or "siglip" in name:
        return "clip"
    raise SystemExit(
        f"export_teacher: cannot tell the teacher family of {model_name!r}; "
        "expected a CLIP/SigLIP, DINOv2 or SAM ViT"
    )


class TeacherWrapper(torch.nn.Module):
    """Splits a timm model's features into (summary, patch_tokens)."""

    def __init__(self, model: torch.nn.Module, family: str):
        super().__init__()
        self.model = model
        self.family = family
        self.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 0))

    def forward(self, x: torch.Tensor):
        feats = self.model.forward_features(x)
        if self.family == "sam":
            # neck output, NCHW -> NLC
            patches = feats.flatten(2).transpose(1, 2)
            summary = feats.new_zeros((feats.shape[0], 0))
            return summary, patches
        patches = feats[:, self.num_prefix_tokens:]
        if self.family == "clip":
            summary = self.model.forward_head(feats)
        else:
            summary = feats[:, 0]
        return summary, patches


def build_model(args, family: str) -> torch.nn.Module:
    kwargs = {}
    if args.img_size is not None:
        kwargs["img_size"] = args.img_size
    if args.depth is not None:
        kwargs["depth"] = args.depth
        if family == "sam":
            # SAM ViTs interleave windowed blocks with global ones; keep the last block global.
            kwargs["global_attn_indexes"] = (args.depth - 1,)
    if args.width is not None:
        kwargs["embed_dim"] = args.width
    if args.heads is not None:
        kwargs["num_heads"] = args.heads
    if args.summary_dim is not None:
        kwargs["num_classes"] = args.summary_dim
    if family == "sam" and args.window_size is not None:
        kwargs["window_size"] = args.window_size
    if family == "dinov2" or family == "clip":
        kwargs.setdefault("num_classes", kwargs.get("num_classes", None))
        if kwargs["num_classes"] is None:
            del kwargs["num_classes"]
    torch.manual_seed(args.seed)
    model = timm.create_model(args.model, pretrained=not args.random_init, **kwargs)
    return model.eval()


def sidecar_for(args, model, family, summary, patches, img_size):
    cfg = timm.data.resolve_data_config(model=model)
    patch = model.patch_embed.patch_size
    grid = list(model.patch_embed.grid_size)
    if family == "sam" and patches.shape[1] != grid[0] * grid[1]:
        raise SystemExit(f"export_teacher: SAM neck gives {patches.shape[1]} tokens, grid {grid}")
    return {
        "format": "distillery-teacher/1",
        "name": args.name,
        "family": family,
        "timm_model": args.model,
        "timm_version": timm.__version__,
        "torch_version": torch.__version__,
        "pretrained": not args.random_init,
        "overrides": {
            k: v
            for k, v in {
                "img_size": args.img_size,
                "depth": args.depth,
                "width": args.width,
                "heads": args.heads,
                "summary_dim": args.summary_dim,
                "window_size": args.window_size,
            }.items()
            if v is not None
        },
        "seed": args.seed if args.random_init else None,
        "input_size": [3, img_size[0], img_size[1]],
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "interpolation": cfg["interpolation"],
        "patch_size": [int(patch[0]), int(patch[1])],
        "grid": [int(grid[0]), int(grid[1])],
        "summary_dim": int(summary.shape[1]),
        "patch_dim": int(patches.shape[2]),
        "num_tokens": int(patches.shape[1]),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="timm model name, e.g. vit_small_patch14_dinov2.lvd142m")
    p.add_argument("--out", required=True, type=Path, help="output .pt path; the sidecar is <out>.json")
    p.add_argument("--name", help="teacher name in the cache (default: the family)")
    p.add_argument("--random-init", action="store_true", help="random weights instead of pretrained")
    p.add_argument("--img-size", type=int, help="input resolution override (square)")
    p.add_argument("--depth", type=int, help="number of transformer blocks override")
    p.add_argument("--width", type=int, help="embedding width override")
    p.add_argument("--heads", type=int, help="attention heads override")
    p.add_argument("--summary-dim", type=int, help="CLIP projection width override")
    p.add_argument("--window-size", type=int, help="SAM windowed-attention size override")
    p.add_argument("--seed", type=int, default=0, help="seed for random init (default 0)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)

    family = family_of(args.model)
    args.name = args.name or family
    model = build_model(args, family)
    img_size = tuple(model.patch_embed.img_size)
    wrapper = TeacherWrapper(model, family).eval()

    example = torch.randn(2, 3, *img_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager = wrapper(example)
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        # A different batch size checks that tracing kept the batch axis dynamic.
        probe = torch.randn(3, 3, *img_size, generator=torch.Generator().manual_seed(2))
        for a, b in zip(wrapper(probe), traced(probe)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)

    summary, patches = eager
    sidecar = sidecar_for(args, model, family, summary, patches, img_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(args.out))
    sidecar_path = Path(str(args.out) + ".json")
    sidecar_path.write_text(json.dumps(sidecar, indent=2) + "\n")
    print(
        f"exported {args.name} ({args.model}, {'pretrained' if sidecar['pretrained'] else 'random'}): "
        f"input {img_size[0]}x{img_size[1]}, summary {sidecar['summary_dim']}, "
        f"patch tokens {sidecar['num_tokens']}x{sidecar['patch_dim']} -> {args.out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
