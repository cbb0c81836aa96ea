"""``lgd models``: the registered architectures and the teaching checkpoints shipped with the package."""

from __future__ import annotations

import argparse

HELP = "list the registered architectures and the shipped teaching checkpoints (names for --pretrained)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of two tables")


def run(args) -> int:
    import json

    from ..models import list_models, model_info
    from ..models.pretrained import read_manifest

    shipped = read_manifest()
    if args.json:
        print(json.dumps({"architectures": {n: {"frames": model_info(n).frames, "size": model_info(n).size,
                                                "description": model_info(n).description} for n in list_models()},
                          "pretrained": {n: {k: v for k, v in info.items() if k in (
                              "arch", "classes", "frames", "size", "val_acc", "seed", "diffusion", "modality")}
                                         for n, info in sorted(shipped.items())}}, indent=2))
        return 0
    print("architectures (lgd train: model.arch=NAME; lgd summary NAME):")
    for name in list_models():
        info = model_info(name)
        print(f"  {name:<20} {info.frames:>2} x {info.size:<3}  {info.description}")
    print("\nshipped teaching checkpoints (lgd predict / lgd viz --pretrained NAME):")
    for name, info in sorted(shipped.items()):
        size = info["size"] if not isinstance(info["size"], list) else " x ".join(map(str, info["size"]))
        classes = info.get("classes", [])
        accuracy = f"val acc {info['val_acc']:.3f}" if isinstance(info.get("val_acc"), (int, float)) else ""
        print(f"  {name:<36} {info.get('arch', '?'):<12} {info.get('frames', '?')} frames at {size}; "
              f"{len(classes)} classes ({', '.join(classes[:4])}{', ...' if len(classes) > 4 else ''}); {accuracy}")
    print("\nThe shipped checkpoints know only their teaching task's classes: on other videos they still answer "
          "with one of those.")
    return 0
