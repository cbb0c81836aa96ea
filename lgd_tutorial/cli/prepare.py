"""``lgd prepare``: Kinetics at full scale (download, validate, resize, subset) and optical flow."""

from __future__ import annotations

import argparse

from ..data.video import BACKENDS
from .data import add_manifest_arguments

HELP = "Kinetics at full scale: download, validate, resize, subset; optical flow"

KINETICS = ("400", "600", "700")                    # as data.prepare.VERSIONS (checked by a test)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    v = sub.add_parser("validate", help="decode-check every annotated clip; write the manifest")
    add_manifest_arguments(v, out_required=False)
    v.add_argument("--workers", type=int, default=2, help="processes that check the videos (default 2)")
    v.add_argument("--backend", default="auto", choices=BACKENDS,
                      help="decoder used to check each video: auto (decord, else PyAV), decord or pyav")
    v.set_defaults(run=validate)

    r = sub.add_parser("resize", help="re-encode videos to a short side (resumable)")
    r.add_argument("--src", required=True, help="folder of the videos to resize (searched recursively)")
    r.add_argument("--dst", required=True, help="folder for the resized copies (the same layout as --src)")
    r.add_argument("--short-side", type=int, default=320,
                      help="short side of the copies in pixels (default 320, as the release trains on)")
    r.add_argument("--workers", type=int, default=2, help="processes that resize (default 2)")
    r.set_defaults(run=resize)

    d = sub.add_parser("download", help="fetch, verify, extract and sort the CVDF archives (resumable)")
    d.add_argument("--version", default="400", choices=KINETICS, help="Kinetics version: 400, 600 or 700 (default 400)")
    d.add_argument("--split", default="val", choices=["train", "val", "test"],
                      help="which split's archives to fetch (default val)")
    d.add_argument("--root", required=True, help="folder the archives are downloaded to and extracted in")
    d.add_argument("--base-url", default=None, help="mirror of the CVDF lists (default: the CVDF's own)")
    d.add_argument("--annotations", default=None,
                      help="the official annotation CSV to check the extracted clips against (optional)")
    d.add_argument("--keep-archives", action="store_true",
                      help="keep the .tar.gz archives after extraction (default: delete them)")
    d.set_defaults(run=download)

    s = sub.add_parser("subset", help="N classes x M clips per class from an official CSV")
    s.add_argument("--annotations", required=True, help="the official annotation CSV to draw the subset from")
    s.add_argument("--classes", type=int, default=50, help="number of classes in the subset (default 50)")
    s.add_argument("--clips", type=int, default=40, help="clips per class")
    s.add_argument("--seed", type=int, default=0,
                      help="seed of the draw (default 0; the same seed gives the same subset)")
    s.add_argument("--choose", default="even", choices=["even", "random"],
                      help="how classes are chosen: even (every k-th of the sorted list) or random (seeded)")
    s.add_argument("--names", default=None, help="a file of class names (one per line) instead of --classes")
    s.add_argument("--name", default=None, help="subset name (default: from the CSV and sizes)")
    s.add_argument("--out", default=None, help="folder (default: data/subsets/NAME)")
    s.set_defaults(run=subset)

    f = sub.add_parser("flow", help="optical flow of every video of a manifest, or of a folder, stored 8-bit "
                                    "(resumable)")
    f.add_argument("--root", required=True, help="the dataset root the manifest's paths are relative to, or "
                                                 "with --videos the folder of videos")
    source = f.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", nargs="+",
                        help="manifest file(s), relative to --root (e.g. manifest_train.csv manifest_val.csv)")
    source.add_argument("--videos", action="store_true",
                        help="folder in, folder out: every video under --root (recursively); --out mirrors its "
                             "folders and flow_manifest_videos.csv lists them")
    f.add_argument("--out", required=True, help="folder for the flow files and flow_manifest_*.csv")
    f.add_argument("--method", default="tvl1", choices=["tvl1", "dis"],
                      help="optical-flow method: tvl1 (what two-stream networks trained on; slow) or dis (fast)")
    f.add_argument("--bound", type=float, default=20.0, help="clip flow to +-bound pixels before 8-bit storage")
    f.add_argument("--short-side", type=int, default=None,
                   help="compute at this short side (0: as decoded; default: the largest short side --config's "
                        "training scales the clips to)")
    f.add_argument("--config", default="k400_flow",
                   help="the flow recipe the flow is for, which sets the default --short-side (default k400_flow)")
    f.add_argument("--workers", type=int, default=2, help="processes that compute flow (default 2)")
    f.set_defaults(run=flow)


def _guarded(action: str, work) -> int:
    from ..data.flow import FlowUnavailable
    from ..data.kinetics import AnnotationError
    from ..data.prepare import DownloadError
    from . import fail

    try:
        work()
    except (AnnotationError, DownloadError, FlowUnavailable, ValueError, FileNotFoundError) as e:
        return fail(f"prepare {action}", e)
    return 0


def validate(args) -> int:
    def work():
        from pathlib import Path

        from ..data.kinetics import load_classes, summarize_manifest
        from ..data.prepare import validate as check

        classes = load_classes(args.classes) if args.classes else None
        out = Path(args.out or args.root) / args.manifest
        table = check(args.annotations, args.root, classes, out, args.workers, args.backend)
        print(summarize_manifest(table))
        for r in table[table["status"] != "present"].head(20).itertuples():
            print(f"  {r.status}: {r.path} {r.reason}")
    return _guarded("validate", work)


def resize(args) -> int:
    def work():
        from ..data.prepare import resize as reencode
        print(reencode(args.src, args.dst, args.short_side, args.workers))
    return _guarded("resize", work)


def download(args) -> int:
    def work():
        from ..data.prepare import CVDF_BASE, download as fetch_all
        print(fetch_all(args.version, args.split, args.root, args.base_url or CVDF_BASE, args.annotations,
                        args.keep_archives))
    return _guarded("download", work)


def subset(args) -> int:
    def work():
        from pathlib import Path

        import pandas as pd

        from ..data.subsets import SubsetSpec, write_subset

        names = [l.strip() for l in Path(args.names).read_text().splitlines() if l.strip()] if args.names else None
        count = len(names) if names else args.classes
        name = args.name or f"{Path(args.annotations).stem}_{count}x{args.clips}"
        spec = SubsetSpec(name, str(args.annotations), count, args.clips, args.seed,
                          "names" if names else args.choose, names or [])
        out = write_subset(spec, args.out)
        print(f"subset {name}: {len(pd.read_csv(out / 'annotations.csv'))} clips -> {out}")
    return _guarded("subset", work)


def flow(args) -> int:
    def work():
        from pathlib import Path

        from ..config import load_config
        from ..data import flow as optical_flow

        short_side = args.short_side
        if short_side is None:
            short_side = max(load_config(args.config).data.scale)
            print(f"computing at short side {short_side}: the largest training scale of {args.config} "
                  "(--short-side to change; 0 keeps the decoded size)")
        sources = ([(Path(args.root) / name, Path(name).stem) for name in args.manifest] if args.manifest
                   else [(optical_flow.folder_manifest(args.root), "videos")])
        for manifest, stem in sources:
            name = manifest if isinstance(manifest, Path) else f"{args.root} (every video)"
            table = optical_flow.extract(manifest, args.root, args.out, args.method, args.bound,
                                         short_side or None, args.workers, manifest_name=f"flow_{stem}.csv")
            recomputed = table["reason"].astype(str).str.startswith("recomputed").sum()
            print(f"{name}: {optical_flow.status_counts(table)}"
                  + (f" ({recomputed} recomputed: made with other settings)" if recomputed else "")
                  + f" -> {args.out}/flow_{stem}.csv")
            for r in table[table["status"] == "failed"].head(20).itertuples():
                print(f"  failed: {r.path} {r.reason}")
    return _guarded("flow", work)
