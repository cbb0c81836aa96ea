"""``lgd viz``: render the visualisation figures (see ``lgd_tutorial.viz.demo``)."""

from __future__ import annotations

import argparse

HELP = "figures of a model: counterfactual, cosine maps, Grad-CAM; --video for your own video"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demo", action="store_true",
                   help="the shipped teaching checkpoints on a clip of their study (the default; needs no data)")
    p.add_argument("--pretrained", default="lgd3d_tiny_beacon_both",
                   help="shipped teaching checkpoint to draw (default: %(default)s; see list_pretrained())")
    p.add_argument("--plain", default="lgd3d_tiny_beacon_none",
                   help="shipped checkpoint to compare with in the counterfactual ('' for none)")
    p.add_argument("--checkpoint", help="draw a checkpoint written by lgd train instead")
    p.add_argument("--video", help="draw the model on this video file (diffusion maps, class evidence, Grad-CAM, GIF)")
    p.add_argument("--class", dest="class_name", default=None,
                   help="with --video: the class to explain (default: the predicted one)")
    p.add_argument("--clip", type=int, default=0, help="which validation clip of the study (default 0)")
    p.add_argument("--out", default="runs/viz", help="output folder (default: runs/viz)")


def run(args) -> int:
    from pathlib import Path

    from ..viz import demo
    from . import fail

    if args.video:
        return _video(args)
    if args.checkpoint and not args.demo:
        from ..builders import model_from_checkpoint
        from ..checkpoint import CheckpointError

        try:
            model, cfg = model_from_checkpoint(args.checkpoint)
        except CheckpointError as e:
            return fail("viz", e)
        paths = demo.render_models(args.out, {Path(args.checkpoint).name: model},
                                   *demo.checkpoint_clip(cfg, args.clip), title=cfg.model.arch)
    else:
        from ..models import PretrainedError, load_pretrained

        try:
            model, info = load_pretrained(args.pretrained)
            models = {args.pretrained: model}
            if args.plain:
                models[args.plain] = load_pretrained(args.plain)[0]
        except PretrainedError as e:
            return fail("viz", e)
        paths = demo.render_models(args.out, models, *demo.study_clip(info, args.clip), title=args.pretrained)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _video(args) -> int:
    from ..checkpoint import CheckpointError
    from ..data.video import VideoDecodeError
    from ..models import PretrainedError
    from ..prediction import from_checkpoint, from_pretrained
    from ..viz.demo import render_video
    from . import fail

    try:
        predictor = from_checkpoint(args.checkpoint) if args.checkpoint else from_pretrained(args.pretrained)
        paths = render_video(args.out, predictor, args.video, args.class_name)
    except (CheckpointError, PretrainedError, VideoDecodeError, ValueError) as e:
        return fail("viz", e)
    for path in paths:
        print(f"wrote {path}")
    return 0
