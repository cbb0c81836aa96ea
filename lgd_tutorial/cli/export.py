"""``lgd export``: a trained model as TorchScript and ONNX files, checked against PyTorch (``lgd_tutorial.export``)."""

from __future__ import annotations

import argparse

HELP = "a trained model as TorchScript and ONNX files (batch size free), each checked against PyTorch's logits"
FORMATS = ("torchscript", "onnx")          # as export.FORMATS (checked by a test)


def add_arguments(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint written by lgd train (RGB or flow)")
    source.add_argument("--pretrained", help="a shipped teaching model (lgd models lists them)")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS), help="default: both")
    p.add_argument("--out", required=True, help="folder for the exported files")


def run(args) -> int:
    from pathlib import Path

    from ..checkpoint import CheckpointError
    from ..export import OPSET, export
    from ..models import PretrainedError
    from ..prediction import from_checkpoint, from_pretrained
    from . import fail

    try:
        load = from_checkpoint if args.checkpoint else from_pretrained
        predictor = load(args.checkpoint or args.pretrained, "cpu")
        views = predictor.views
        name = Path(args.checkpoint).stem if args.checkpoint else args.pretrained
        done = export(predictor.model, args.out, name, views.num_frames, views.crop_size, args.formats)
    except (CheckpointError, PretrainedError, RuntimeError, ValueError) as e:
        return fail("export", e)
    channels = predictor.model.in_channels
    print(f"input: clips (batch, {channels}, {views.num_frames}, {views.crop_size}, {views.crop_size}) "
          f"({views.modality}), output: logits (batch, {predictor.model.num_classes}); the batch size is free, "
          f"frames and size are fixed; ONNX opset {OPSET}")
    for kind, (path, difference) in done.items():
        print(f"{kind:<12} {path}  largest |logit difference| from PyTorch on 3 random clips: {difference:.2e}")
    return 0
