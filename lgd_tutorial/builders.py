"""From a ``Config`` to the objects a run needs: model, datasets, optimizer and learning-rate schedule.

``train``, ``evaluate``, ``bench``, ``predict`` and the notebooks build
through these functions, so a recipe means the same thing everywhere.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_checkpoint
from .config import Config, ConfigError, ModelConfig, from_dict
from .data.clips import ClipDataset
from .data.flow import extract
from .data.synthetic import generate
from .data.transfer import split_manifests
from .data.transforms import flow_test_transform, flow_train_transform, test_transform, train_transform
from .models import build_model, inflate_from_2d, model_info
from .models.release import convert_release_state_dict, is_release_state_dict, load_release_checkpoint

log = logging.getLogger("lgd_tutorial.builders")


def model_from_config(m: ModelConfig, load_weights: bool = True) -> nn.Module:
    """The configured model; with ``load_weights``, ImageNet inflation and the starting checkpoint it names.

    A network without diffusion (``p3d_*``, and the SE, GC and non-local ``*_p3d_*``) ignores the default
    ``model.diffusion`` ("both") and refuses any other value but its own."""
    diffusion = m.diffusion
    fixed = model_info(m.arch).fixed_diffusion
    if fixed is not None and diffusion != fixed:
        if diffusion != "both":
            raise ConfigError(f"model.diffusion={diffusion!r}: {m.arch} has no diffusion to set (it is "
                              f"{fixed!r}); train an lgd* model to vary it")
        diffusion = fixed
    model = build_model(m.arch, m.num_classes, diffusion=diffusion, kernel=m.kernel, dropout=m.dropout,
                        **({"modality": m.modality} if m.modality != "rgb" else {}))
    if not load_weights:
        return model
    if m.init == "imagenet" and not m.pretrained_2d:
        raise ConfigError(
            "model.init is 'imagenet' (the release starts from torchvision's ImageNet ResNet): set "
            "model.pretrained_2d=PATH to a torchvision ResNet state dict of the same depth, for example "
            "torch.save(torchvision.models.resnet50(weights='IMAGENET1K_V1').state_dict(), 'resnet50.pth'); "
            "or set model.init=scratch to train from random weights on purpose")
    if m.init == "scratch" and m.pretrained_2d:
        raise ConfigError(f"model.pretrained_2d is {m.pretrained_2d!r} but model.init is 'scratch': "
                          "set model.init=imagenet to inflate it, or drop model.pretrained_2d")
    if m.pretrained_2d:
        if not Path(m.pretrained_2d).is_file():
            raise ConfigError(f"model.pretrained_2d: no such file {m.pretrained_2d!r}")
        try:
            inflate_from_2d(model, m.pretrained_2d)
        except ValueError as e:                               # names every key that does not fit
            raise ConfigError(f"model.pretrained_2d {m.pretrained_2d}: {e}") from None
        log.info("inflated the 2D weights of %s into %s", m.pretrained_2d, m.arch)
    if m.init_from:
        head = model_info(m.arch).classifier + "."
        state = load_checkpoint(m.init_from)["model"]
        if is_release_state_dict(state):                    # a checkpoint of the authors' release
            try:
                state = convert_release_state_dict(state)
            except ValueError as e:
                raise ConfigError(f"model.init_from {m.init_from}: {e}") from None
        shape_key = f"{head}local_head.weight"
        if m.new_classifier and shape_key in state:          # load every weight strictly, the head included,
            model.reset_classifier(state[shape_key].shape[0])     # then replace the head with a fresh one
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ConfigError(f"model.init_from {m.init_from}: missing {missing[:5]}, unexpected {unexpected[:5]}")
        if m.new_classifier:
            model.reset_classifier(m.num_classes)
    return model


def model_from_checkpoint(path, device="cpu", recipe: Config | None = None) -> tuple[nn.Module, Config]:
    """(model in eval mode, its Config) from a checkpoint written by ``lgd train``.

    A checkpoint of the authors' release carries no recipe of this project: pass ``recipe`` (its model
    section names the architecture; the number of classes comes from the checkpoint).
    """
    state = load_checkpoint(path)
    if is_release_state_dict(state):
        if recipe is None:
            raise ConfigError(f"{path}: a checkpoint of the authors' release; name the recipe it was trained "
                              "with (lgd evaluate --config k400_full)")

        try:
            model = load_release_checkpoint(path, recipe.model.arch)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        recipe.model.num_classes = model.num_classes
        return model.to(device).eval(), recipe
    cfg = from_dict(state.get("config") or {})
    model = model_from_config(cfg.model, load_weights=False)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


def manifests(cfg: Config) -> tuple[Path, Path]:
    """(train, validation) manifest paths for the configured data (the synthetic set is generated if needed)."""
    d = cfg.data
    root = Path(d.root)
    if d.dataset == "synthetic":
        generate(root, seed=d.synthetic_seed, videos_per_class=d.synthetic_videos_per_class,
                 val_per_class=d.synthetic_val_per_class, progress=False)
        if cfg.model.modality == "flow":                    # its flow too (DIS: seconds; finished files kept)
            for name in (d.train_manifest, d.val_manifest):
                extract(root / name, root, root / d.flow_root, "dis", d.flow_bound, workers=2, progress=False,
                        manifest_name=f"flow_{Path(name).stem}.csv")
    elif d.dataset in ("ucf101", "hmdb51"):
        return split_manifests(d.dataset, root, d.split_dir, d.split)
    return root / d.train_manifest, root / d.val_manifest


def decoded_cache(cfg: Config) -> Path | None:
    """The folder ``data.decoded_cache`` names (relative to ``data.root``), or None when it is off."""
    d = cfg.data
    return Path(d.root) / d.decoded_cache if d.decoded_cache else None


def stream(cfg: Config, root) -> dict:
    """The ClipDataset arguments of the recipe's modality: flow reads ``data.flow_root`` (under ``root``);
    RGB decodes the videos (through ``data.decoded_cache`` when it is set)."""
    d = cfg.data
    if cfg.model.modality == "flow":
        return {"modality": "flow", "flow_root": Path(root) / d.flow_root}
    return {"cache": decoded_cache(cfg)}


def eval_dataset(cfg: Config, manifest, root=None, clips: int = 1, crops: int = 1) -> ClipDataset:
    """A test-mode dataset: ``clips`` evenly spaced clips x ``crops`` crops per video (fixed, no randomness).

    ``root`` is the folder the manifest's paths are relative to (default: the manifest's own folder).
    """
    d = cfg.data
    if root is None and isinstance(manifest, (str, Path)):
        root = Path(manifest).parent
    size = d.test_crop_size or d.crop_size
    transform = (flow_test_transform(size, d.test_short_side, crops, d.flow_bound) if cfg.model.modality == "flow"
                 else test_transform(size, d.test_short_side, crops))
    return ClipDataset(manifest, root, mode="tsn" if d.sampling == "tsn" else "test",
                       num_frames=d.num_frames, stride=d.stride, num_clips=clips, transform=transform,
                       backend=d.backend, strict=d.strict, short_side=d.decode_short_side or None, seed=cfg.run.seed,
                       tsn_random=False, **stream(cfg, root))


def recipe_test_set(cfg: Config) -> ClipDataset:
    """The recipe's validation videos with its test views (``data.test_clips`` x ``data.test_crops``)."""
    d = cfg.data
    return eval_dataset(cfg, Path(d.root) / d.val_manifest, d.root, d.test_clips, d.test_crops)


def build_datasets(cfg: Config) -> tuple[ClipDataset, ClipDataset | None]:
    """(train, validation) datasets; validation is None when its manifest does not exist."""
    d = cfg.data
    train_manifest, val_manifest = manifests(cfg)
    if cfg.model.modality == "flow":
        transform = flow_train_transform(d.crop_size, tuple(d.scale), d.flow_bound, resized_crop=d.resized_crop,
                                         crop_scale=d.crop_scale)
    else:
        transform = train_transform(d.crop_size, tuple(d.scale), d.resized_crop, crop_scale=d.crop_scale,
                                    color_jitter=d.color_jitter, color_jitter_p=d.color_jitter_p,
                                    grayscale_p=d.grayscale_p, blur_p=d.blur_p, blur_sigma=d.blur_sigma)
    train = ClipDataset(train_manifest, d.root, mode="tsn" if d.sampling == "tsn" else "train",
                        num_frames=d.num_frames, stride=d.stride, backend=d.backend, strict=d.strict,
                        transform=transform, short_side=d.decode_short_side or None, seed=cfg.run.seed,
                        **stream(cfg, d.root))
    val = eval_dataset(cfg, val_manifest, d.root) if val_manifest and Path(val_manifest).exists() else None
    return train, val


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers keep their statistics and affine parameters (fine-tuning on little data)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """SGD with momentum and Nesterov; weight decay where the model says so (everywhere with
    ``optim.decay_all``, as the release does); ``lr_mult`` per group.

    The groups come from ``model.parameter_groups()``: the head keeps the
    full learning rate, the rest is scaled by ``optim.backbone_lr_mult``.
    """
    o = cfg.optim
    groups = [{"params": params, "weight_decay": o.weight_decay if decay or o.decay_all else 0.0,
               "lr_mult": 1.0 if head else o.backbone_lr_mult}
              for (head, decay), params in sorted(model.parameter_groups().items())]
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov and o.momentum > 0)


def lr_at(step: int, steps_per_epoch: int, cfg: Config, world: int) -> float:
    """The learning rate at optimizer step ``step``: linear warm-up, then cosine or steps.

    The base LR is given for ``optim.lr_batch`` clips and scaled linearly with
    the global batch (clips per step over all processes and accumulation).
    """
    o = cfg.optim
    global_batch = cfg.data.batch_size * world * o.accumulate
    base = o.lr * global_batch / o.lr_batch
    epoch = step / max(1, steps_per_epoch)
    if o.warmup_epochs > 0 and epoch < o.warmup_epochs:
        return base * (epoch + 1 / max(1, steps_per_epoch)) / o.warmup_epochs
    if o.schedule == "cosine":
        span = max(1e-8, o.epochs - o.warmup_epochs)
        progress = min(1.0, (epoch - o.warmup_epochs) / span)
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    return base * o.gamma ** sum(epoch >= m for m in o.milestones)
