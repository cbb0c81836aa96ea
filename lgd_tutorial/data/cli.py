"""``lgd data``: the synthetic dataset, manifests and the data benchmark."""

from __future__ import annotations

import argparse
import sys


def manifest_main(argv) -> int:
    from .kinetics import AnnotationError, build_manifest, load_classes, read_annotations, save_manifest, summarize_manifest
    parser = argparse.ArgumentParser(prog="lgd data manifest",
                                     description="List every annotated clip with its status (present, missing, unreadable).")
    parser.add_argument("--annotations", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--classes", default=None, help="class list file or kinetics400/600/700")
    parser.add_argument("--out", required=True)
    parser.add_argument("--decode", action="store_true", help="also decode a frame of each (slow; see lgd prepare validate)")
    args = parser.parse_args(argv)
    try:
        classes = load_classes(args.classes) if args.classes else None
        manifest = build_manifest(read_annotations(args.annotations), args.root, classes,
                                  check="decode" if args.decode else "exists")
    except (AnnotationError, ValueError, FileNotFoundError) as e:
        print(f"lgd data manifest: error: {e}", file=sys.stderr)
        return 2
    save_manifest(manifest, args.out)
    print(summarize_manifest(manifest), "->", args.out)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"synth": "write the synthetic dataset", "manifest": "build a manifest from a CSV and a video folder",
                "bench": "decode and DataLoader throughput"}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: lgd data {synth,manifest,bench} ...\n")
        for name, text in commands.items():
            print(f"  {name:10s} {text}")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    name, rest = argv[0], argv[1:]
    if name == "synth":
        from .synthetic import main as run
    elif name == "bench":
        from .bench import main as run
    else:
        run = manifest_main
    return run(rest)
