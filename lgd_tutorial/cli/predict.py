"""``lgd predict``: top-k classes for video files, from a checkpoint or a shipped teaching model."""

from __future__ import annotations

import argparse

from ..utils import DEVICES

HELP = "top-k classes for your own videos (files or folders) from a checkpoint or a teaching model"
FORMATS = ("table", "csv", "json")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER", help="video files, or folders searched recursively")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint written by lgd train")
    source.add_argument("--pretrained", help="a shipped teaching model (see lgd_tutorial.list_pretrained())")
    flow = p.add_mutually_exclusive_group()
    flow.add_argument("--flow-checkpoint", default=None,
                      help="a flow model's checkpoint: compute each video's flow and fuse the two streams' scores")
    flow.add_argument("--flow-pretrained", default=None,
                      help="a shipped flow model as the second stream (e.g. lgd3d_tiny_synthetic_flow)")
    p.add_argument("--flow-weight", type=float, default=1.5, help="two streams: rgb + weight x flow (default 1.5)")
    p.add_argument("--flow-method", default="dis", choices=["dis", "tvl1"],
                   help="two streams: how the flow is computed (use the method the flow model was trained on)")
    p.add_argument("--label-map", default=None,
                   help="class names, one per line in index order (MMAction2's label map format), for a checkpoint "
                        "that has none or to rename its classes; the count must match the model's")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="predictions over time: one per window of SECONDS (a row per window in CSV and JSON)")
    p.add_argument("--stride", type=float, default=None, metavar="SECONDS",
                   help="with --window: seconds from one window's start to the next (default: the window)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="videos scored per forward pass where their views have one shape (default 8; 1: one by one)")
    p.add_argument("--top", type=int, default=5, help="classes per video (default 5)")
    p.add_argument("--clips", type=int, default=None, help="clips per video (default: the recipe's test clips)")
    p.add_argument("--crops", type=int, default=None, choices=[1, 3], help="crops per clip (default: the recipe's)")
    p.add_argument("--format", default="table", choices=FORMATS, help="what to print (default: table)")
    p.add_argument("--out", default=None, help="folder for predictions.csv and predictions.json (default: none)")
    p.add_argument("--device", default="auto", choices=DEVICES,
                      help="where to run: auto (a GPU when there is one), cpu or cuda")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 when any input is missing, a folder holds no video, or a video could not "
                        "be read")


def run(args) -> int:
    import csv
    import io
    from pathlib import Path

    from ..checkpoint import CheckpointError
    from ..models import PretrainedError
    from ..data.kinetics import AnnotationError, load_classes
    from ..prediction import as_json, as_rows, as_table, from_checkpoint, from_pretrained, predict, two_stream
    from ..utils import resolve_device
    from . import fail

    if args.top < 1:
        return fail("predict", f"--top must be at least 1, got {args.top}")
    if (args.window is not None and args.window <= 0) or (args.stride is not None and args.stride <= 0):
        return fail("predict", f"--window and --stride are positive seconds, got {args.window} and {args.stride}")
    if args.batch_size < 1:
        return fail("predict", f"--batch-size must be at least 1, got {args.batch_size}")
    if args.stride is not None and args.window is None:
        return fail("predict", "--stride needs --window")
    try:
        device = resolve_device(args.device)
        load = from_checkpoint if args.checkpoint else from_pretrained
        predictor = load(args.checkpoint or args.pretrained, device, args.clips, args.crops)
        if args.flow_checkpoint or args.flow_pretrained:
            load_flow = from_checkpoint if args.flow_checkpoint else from_pretrained
            predictor = two_stream(predictor, load_flow(args.flow_checkpoint or args.flow_pretrained, device,
                                                        args.clips, args.crops), args.flow_weight, args.flow_method)
        if args.label_map:
            names = load_classes(args.label_map)
            if len(names) != predictor.model.num_classes:
                raise ValueError(f"--label-map {args.label_map} names {len(names)} classes; the model has "
                                 f"{predictor.model.num_classes}")
            predictor.classes = names
    except (AnnotationError, CheckpointError, PretrainedError, ValueError, FileNotFoundError) as e:
        return fail("predict", e)
    import sys

    from ..data import signpost, synthetic
    teaching = {tuple(synthetic.CLASSES): "the workbook's synthetic beacon videos",
                tuple(signpost.CLASSES): "the workbook's signpost strips"}.get(tuple(predictor.classes))
    if teaching:
        print(f"note: {args.checkpoint or args.pretrained} was trained on {teaching}; it knows only "
              f"{len(predictor.classes)} classes ({', '.join(predictor.classes)}) and answers with one of them "
              "whatever the video shows", file=sys.stderr)
    skipped = []
    results = predict(predictor, args.inputs, args.top, skipped=skipped, window=args.window, stride=args.stride,
                      batch=args.batch_size)
    rows = as_rows(results)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["path"])
    writer.writeheader()
    writer.writerows(rows)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "predictions.csv").write_text(text.getvalue())
        (out / "predictions.json").write_text(as_json(results) + "\n")
    print({"table": as_table, "json": as_json}.get(args.format, lambda _: text.getvalue().rstrip())(results))
    from ..prediction import NO_VIDEOS, NOT_FOUND

    failed = [r for r in results if r.error]
    missing = sum(r.error == NOT_FOUND for r in failed)
    empty = sum(r.error.startswith(NO_VIDEOS) for r in failed)
    unreadable = len(failed) - missing - empty
    scored = len(results) - len(failed)
    parts = [f"{scored} video(s) scored"] + [text for count, text in (
        (unreadable, f"{unreadable} could not be read"), (missing, f"{missing} input(s) not found"),
        (empty, f"{empty} folder(s) without videos")) if count]
    if skipped:
        kinds = sorted({p.suffix.lower() or "(no extension)" for p in skipped})
        parts.append(f"{len(skipped)} other file(s) in the folders skipped, not videos by extension "
                     f"({', '.join(kinds[:8])}{' ...' if len(kinds) > 8 else ''})")
    print("; ".join(parts) + ("" if not failed or args.strict else " (--strict makes this an error)"),
          file=sys.stderr)
    return 1 if failed and args.strict else 0
