"""``lgd data``: the synthetic dataset, manifests and the data-loading benchmark."""

from __future__ import annotations

import argparse

HELP = "the synthetic dataset, manifests, data throughput (lgd data synth|manifest|bench)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = sub.add_parser("synth", help="write the synthetic dataset (mp4 + CSVs)")
    s.add_argument("out", help="output folder, e.g. data/synthetic")
    s.add_argument("--seed", type=int, default=0,
                      help="seed of the generated videos (default 0; the same seed gives the same set)")
    s.add_argument("--videos-per-class", type=int, default=None, help="training videos per class (default: data.synthetic.DEFAULTS)")
    s.add_argument("--val-per-class", type=int, default=None, help="validation videos per class (default: as above)")
    s.add_argument("--size", type=int, default=None, help="frame height and width (default: as above)")
    s.add_argument("--frames", type=int, default=None, help="frames per video (default: as above)")
    s.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    s.set_defaults(run=synth)

    m = sub.add_parser("manifest", help="list every clip of a dataset with its status (present, missing, unreadable): "
                                        "from Kinetics annotations, class folders or a list file")
    add_manifest_arguments(m, out_required=True, sources=True)
    m.add_argument("--decode", action="store_true", help="also decode a frame of each (slow; see lgd prepare validate)")
    m.set_defaults(run=manifest)

    b = sub.add_parser("bench", help="decode and DataLoader throughput, and workers needed for a training rate")
    b.add_argument("--smoke", action="store_true", help="seconds-long run at tiny sizes")
    b.add_argument("--target", type=float, default=100.0, help="training rate to feed, clips/s")
    b.add_argument("--repeats", type=int, default=3, help="repeats per measurement (default 3)")
    b.add_argument("--out", default="runs/bench", help="folder for data.csv (default: runs/bench)")
    b.add_argument("--flow", action="store_true",
                   help="optical flow instead: frames/s per core for TV-L1 and DIS, and Kinetics-400's cost (flow.csv)")
    b.add_argument("--predict", action="store_true",
                   help="peak memory and time of lgd predict with the shipped flow model, alone and as the second "
                        "stream, on a generated panning video (predict.csv)")
    b.add_argument("--seconds", type=float, default=10.0, help="--predict: the video's length (default 10)")
    b.add_argument("--height", type=int, default=1080,
                   help="--predict: the video's height; width is 16:9 (default 1080)")
    b.set_defaults(run=bench)


def add_manifest_arguments(p: argparse.ArgumentParser, out_required: bool, sources: bool = False) -> None:
    """What every command that writes a manifest takes: the annotations, the videos, the classes, where to write.
    With ``sources`` the videos may instead be listed by class folders or by a list file."""
    if sources:
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("--annotations", help="official Kinetics CSV (or a subset's annotations.csv)")
        source.add_argument("--folders", action="store_true",
                            help="ROOT's subfolders are the classes: every video under ROOT/<class>/ is one clip")
        source.add_argument("--list", default=None,
                            help="a PySlowFast / MMAction2 list file: 'path label_index' per line, paths under ROOT")
    else:
        p.add_argument("--annotations", required=True, help="official CSV (or a subset's annotations.csv)")
    p.add_argument("--root", required=True, help="dataset root")
    p.add_argument("--classes", default=None, help="class list file or kinetics400/600/700")
    p.add_argument("--out", required=out_required, default=None,
                   help="folder for the manifest" + ("" if out_required else " (default: ROOT)"))
    p.add_argument("--manifest", default="manifest.csv", help="the manifest's file name (default: manifest.csv)")


def synth(args) -> int:
    import time

    from ..data.synthetic import DEFAULTS, generate

    t0 = time.perf_counter()
    pick = lambda value, key: DEFAULTS[key] if value is None else value  # noqa: E731
    out = generate(args.out, args.seed, pick(args.videos_per_class, "videos_per_class"),
                   pick(args.val_per_class, "val_per_class"), pick(args.size, "size"), pick(args.frames, "frames"),
                   workers=args.workers)
    videos = list(out.rglob("*.mp4"))
    print(f"{len(videos)} videos, {sum(p.stat().st_size for p in videos) / 1e6:.1f} MB, "
          f"in {time.perf_counter() - t0:.1f} s -> {out}")
    return 0


def manifest(args) -> int:
    from pathlib import Path

    from ..data.kinetics import (AnnotationError, build_manifest, load_classes, manifest_from_folders,
                                 manifest_from_list, read_annotations, save_manifest, summarize_manifest)
    from . import fail

    try:
        classes = load_classes(args.classes) if args.classes else None
        check = "decode" if args.decode else "exists"
        if args.folders:
            table = manifest_from_folders(args.root, classes, check)
        elif args.list:
            table = manifest_from_list(args.list, args.root, classes, check)
        else:
            table = build_manifest(read_annotations(args.annotations), args.root, classes, check=check)
    except (AnnotationError, ValueError, FileNotFoundError) as e:
        return fail("data manifest", e)
    path = save_manifest(table, Path(args.out) / args.manifest)
    print(summarize_manifest(table), "->", path)
    return 0


def bench(args) -> int:
    from pathlib import Path

    import pandas as pd

    from ..experiments.bench_data import run as measure

    if args.flow:
        return flow_bench(args)
    if args.predict:
        return predict_bench(args)
    out = Path(args.out) / "data.csv"
    table = measure(args.smoke, args.target, out, args.repeats)
    with pd.option_context("display.width", 120, "display.float_format", "{:.1f}".format):
        print(table.to_string(index=False))
    print(f"16-frame clips (stride 2) decoded at short side 128, cropped to 112; "
          f"workers_for_target = ceil({args.target:g} clips/s / rate). CSV: {out}")
    return 0


def predict_bench(args) -> int:
    import tempfile
    from pathlib import Path

    import pandas as pd

    from ..experiments.bench_predict import batch_rates, panning_video, predict_cost
    from ..experiments.results import provenance, write_results

    made_by = provenance("data", args.argv[1:])            # the code as it was at the start
    out = Path(args.out)
    width = int(round(args.height * 16 / 9 / 2)) * 2
    with tempfile.TemporaryDirectory() as scratch:          # the generated videos are not kept
        video = panning_video(Path(scratch) / f"panning_{args.height}p_{args.seconds:g}s.mp4", args.seconds,
                              args.height, width)
        rows = []
        for label, models in (("flow model alone", ("lgd3d_tiny_synthetic_flow",)),
                              ("two streams", ("lgd3d_tiny_beacon_both", "lgd3d_tiny_synthetic_flow"))):
            cost = predict_cost(video, models)
            if cost["status"] != 0:
                print(f"lgd predict failed ({label}): {cost['stderr']}")
                return 1
            rows.append({"what": label, "video": video.name, "peak_mb": round(cost["peak_mb"]),
                         "seconds": round(cost["seconds"], 2)})
        rates = pd.DataFrame(batch_rates(scratch))
    table = pd.DataFrame(rows)
    write_results(out, {"predict.csv": table, "predict_batch.csv": rates.round(1)}, "predict_bench.json", made_by)
    print(table.to_string(index=False, float_format="{:.1f}".format))
    print(rates.to_string(index=False, float_format="{:.1f}".format))
    print(f"peak: the resident set of the whole lgd predict process (Python, PyTorch, the models and the video); "
          f"CSVs in {out}")
    return 0


def flow_bench(args) -> int:
    from pathlib import Path

    import pandas as pd

    from ..experiments.bench_flow import KINETICS400_VIDEOS, KINETICS_FRAMES_PER_VIDEO, flow_rates

    table = flow_rates(sizes=(64,) if args.smoke else (80, 256), pairs=2 if args.smoke else 4)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "flow.csv", index=False)
    with pd.option_context("display.width", 160, "display.float_format", "{:.3g}".format):
        print(table.to_string(index=False))
    print(f"one OpenCV thread per process (per-core rates); Kinetics-400: {KINETICS400_VIDEOS:,} videos x "
          f"{KINETICS_FRAMES_PER_VIDEO} frames at 340 x 256, scaled from each size by the pixel count. "
          f"CSV: {out / 'flow.csv'}")
    return 0
