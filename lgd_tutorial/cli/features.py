"""``lgd features``: per video or per window, a block's pooled local feature and global vector, to .npz."""

from __future__ import annotations

import argparse

HELP = "features for probes and retrieval: a block's pooled local map and global vector per video or window"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER", help="video files, or folders searched recursively")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint written by lgd train")
    source.add_argument("--pretrained", help="a shipped teaching model (lgd models lists them)")
    p.add_argument("--block", default=None, help="the LGD block, e.g. layer3.1 (default: the last)")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="one row per window of SECONDS instead of one per video")
    p.add_argument("--stride", type=float, default=None, metavar="SECONDS",
                   help="with --window: seconds between windows (default: the window)")
    p.add_argument("--out", required=True, help="folder for features.npz and index.csv")


def run(args) -> int:
    from ..checkpoint import CheckpointError
    from ..models import PretrainedError
    from ..prediction import extract_features, from_checkpoint, from_pretrained
    from . import fail

    try:
        load = from_checkpoint if args.checkpoint else from_pretrained
        predictor = load(args.checkpoint or args.pretrained, "cpu")
        path, failed = extract_features(predictor, args.inputs, args.out, args.block, args.window, args.stride)
    except (CheckpointError, PretrainedError, ValueError) as e:
        return fail("features", e)
    import numpy as np

    with np.load(path) as data:
        shapes = ", ".join(f"{key} {data[key].shape}" for key in data.files)
    print(f"{path}: {shapes or 'no rows'}; rows are listed in {path.parent / 'index.csv'}")
    for f in failed:
        print(f"FAILED: {f.path}: {f.error}")
    return 1 if failed else 0
