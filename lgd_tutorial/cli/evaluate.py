"""``lgd evaluate``: multi-clip x multi-crop evaluation of a checkpoint."""

from __future__ import annotations

import argparse

from ..utils import DEVICES

HELP = "multi-clip x multi-crop evaluation of a checkpoint"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="written by lgd train, or a checkpoint of the authors' release")
    p.add_argument("--config", default=None,
                   help="the recipe (name or YAML) for a release checkpoint, which carries none of its own")
    p.add_argument("--manifest", default=None, help="manifest CSV (default: the run's validation manifest)")
    p.add_argument("--root", default=None, help="dataset root (default: the manifest's folder)")
    p.add_argument("--clips", type=int, default=None, help="clips per video (default: data.test_clips)")
    p.add_argument("--crops", type=int, default=None, choices=[1, 3], help="crops per clip (default: data.test_crops)")
    p.add_argument("--crop-size", type=int, default=None, help="test crops' side (default: data.test_crop_size)")
    p.add_argument("--head", default=None, choices=["combined", "local"],
                   help="scores of local + global (default: data.test_head) or of the local head alone")
    p.add_argument("--average", default=None, choices=["softmax", "logits"],
                   help="what is averaged over a video's views (default: data.test_average)")
    p.add_argument("--protocol", default=None, choices=["release"],
                   help="release: the authors' test protocol, 3 full-height crops x 20 clips, local head, "
                        "logits averaged (the explicit flags above still win)")
    p.add_argument("--flow-checkpoint", default=None,
                   help="a flow model's checkpoint: evaluate both streams on the same videos and fuse their scores")
    p.add_argument("--flow-weight", type=float, default=1.5,
                   help="two streams: fused = rgb + weight x flow video scores (TSN's 1:1.5 by default)")
    p.add_argument("--batch-size", type=int, default=4, help="videos per forward pass")
    p.add_argument("--out", default=None, help="folder for the CSVs (default: eval/ next to the checkpoint)")
    p.add_argument("--device", default="auto", choices=DEVICES,
                      help="where to run: auto (a GPU when there is one), cpu or cuda")


def run(args) -> int:
    from pathlib import Path

    from ..builders import eval_dataset, model_from_checkpoint
    from ..checkpoint import CheckpointError
    from ..config import ConfigError, load_config
    from ..evaluation import class_names, evaluate, evaluate_streams, save, use_release_protocol
    from ..utils import resolve_device
    from . import fail

    try:
        device = resolve_device(args.device)
        recipe = load_config(args.config) if args.config else None
        model, cfg = model_from_checkpoint(args.checkpoint, device, recipe)
        d = cfg.data
        manifest = Path(args.manifest) if args.manifest else Path(d.root) / d.val_manifest
        if not manifest.exists():
            raise FileNotFoundError(f"no manifest {manifest}; pass --manifest")
        if args.protocol == "release":
            use_release_protocol(cfg)
        d.test_crop_size = args.crop_size or d.test_crop_size
        dataset = eval_dataset(cfg, manifest, args.root, args.clips or d.test_clips, args.crops or d.test_crops)
        flow = None
        if args.flow_checkpoint:
            flow_model, flow_cfg = model_from_checkpoint(args.flow_checkpoint, device)
            if flow_cfg.model.modality != "flow" or cfg.model.modality != "rgb":
                raise ValueError("--checkpoint must be an RGB model and --flow-checkpoint a flow model "
                                 f"(got {cfg.model.modality} and {flow_cfg.model.modality})")
            flow_data = eval_dataset(flow_cfg, manifest, args.root if args.root else d.root,
                                     args.clips or d.test_clips, args.crops or d.test_crops)
            flow = (flow_model, flow_cfg, flow_data)
    except (CheckpointError, ConfigError, FileNotFoundError, ValueError) as e:
        return fail("evaluate", e)
    head, average = args.head or d.test_head, args.average or d.test_average
    print(f"protocol: {dataset.num_clips} clip(s) x {args.crops or d.test_crops} crop(s) of "
          f"{d.test_crop_size or d.crop_size} px, {head} head, {average} averaged")
    if flow is None:
        result = evaluate(model, dataset, class_names(cfg), args.batch_size, device, progress=True, head=head,
                          average=average)
    else:
        flow_model, flow_cfg, flow_data = flow
        try:                                                   # the streams are checked before either is scored
            result, flow_result, table = evaluate_streams((model, dataset), (flow_model, flow_data),
                                                          class_names(cfg), args.flow_weight, args.batch_size, device,
                                                          head, average, progress=True)
        except ValueError as e:
            return fail("evaluate", e)
    out = save(result, args.out or Path(args.checkpoint).parent / "eval")
    print(result.summary())
    if result.failed:
        print(f"{len(result.failed)} video(s) failed to decode and were replaced: {', '.join(result.failed)}")
    if flow is not None:
        save(flow_result, out / "flow")
        table.to_csv(out / "two_stream.csv", index=False)
        print(table.to_string(index=False))
    print(f"written to {out}")
    return 0
