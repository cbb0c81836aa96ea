"""Run configuration: dataclasses read from YAML (``yaml.safe_load``) plus ``key=value`` overrides.

    cfg = load_config("tiny_synthetic_cpu", ["optim.lr=0.05", "run.out_dir=runs/try"])

A recipe is a YAML file with the sections below (a name without ``.yaml``
looks in ``lgd_tutorial/configs/``). An unknown key or a value of the wrong
type or outside its choices raises ``ConfigError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from .constants import (AMP_MODES, ARCHITECTURES, AVERAGES, BACKENDS, DATASETS, DEVICES, DIFFUSIONS, TEST_HEADS, INITS,
                        KERNELS, MODALITIES, SAMPLINGS, SCHEDULES, TEST_CROPS)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    pass


@dataclass
class DataConfig:
    dataset: str = "synthetic"          # synthetic | kinetics | ucf101 | hmdb51
    root: str = "data/synthetic"        # dataset root (videos; synthetic: generated here if missing)
    train_manifest: str = "manifest_train.csv"   # relative to root (kinetics); built from split files (ucf/hmdb)
    val_manifest: str = "manifest_val.csv"
    classes: str = ""                   # class list file (default: from the manifest)
    split_dir: str = ""                 # ucf101/hmdb51: folder with the official split files
    split: int = 1                      # ucf101/hmdb51: split 1, 2 or 3
    synthetic_seed: int = 0
    synthetic_videos_per_class: int = 320      # the defaults of `lgd data synth`
    synthetic_val_per_class: int = 32
    num_frames: int = 8
    stride: int = 2
    sampling: str = "clip"              # clip (3D) | tsn (LGD-2D segments)
    crop_size: int = 64
    scale: list = field(default_factory=lambda: [72, 88])   # short-side jitter range for training
    resized_crop: bool = False          # RandomResizedCrop instead of scale jitter + crop
    crop_scale: list = field(default_factory=lambda: [0.25, 1.0])   # RandomResizedCrop: area range (release 0.2-1)
    color_jitter: list = field(default_factory=list)   # [brightness, contrast, saturation, hue]; [] = off
    color_jitter_p: float = 0.8         # per clip
    grayscale_p: float = 0.0            # per clip
    blur_p: float = 0.0                 # per clip
    blur_sigma: list = field(default_factory=lambda: [0.1, 2.0])
    decode_short_side: int = 0          # decode at this short side (0: full size)
    test_short_side: int = 72
    test_clips: int = 2
    test_crops: int = 1
    test_crop_size: int = 0             # test crops' side (0: crop_size; the release: test_short_side, full height)
    test_head: str = "combined"         # combined (local + global) | local (the release)
    test_average: str = "softmax"       # softmax | logits (the release): averaged over a video's views
    batch_size: int = 16                # per process
    workers: int = 0
    backend: str = "auto"               # auto | decord | pyav
    decoded_cache: str = ""             # folder for decoded frames, relative to root ("": decode every time)
    flow_root: str = ""                 # model.modality=flow: the folder `lgd prepare flow` wrote (relative to root)
    flow_bound: float = 20.0            # flow is divided by this (the bound it was stored with) into [-1, 1]
    strict: bool = False


@dataclass
class ModelConfig:
    arch: str = "lgd3d_tiny"
    num_classes: int = 4
    diffusion: str = "both"             # both | local_to_global | global_to_local | none
    modality: str = "rgb"               # rgb | flow (optical flow from data.flow_root: a 2-channel stem)
    kernel: str = "linear"              # linear | gaussian
    dropout: float = 0.5
    init: str = "scratch"               # scratch | imagenet (needs pretrained_2d)
    pretrained_2d: str = ""             # torchvision ResNet state dict to inflate (file)
    init_from: str = ""                 # a checkpoint to start from (fine-tuning)
    new_classifier: bool = False        # with init_from: a fresh classifier for a new label set


@dataclass
class OptimConfig:
    epochs: int = 8
    lr: float = 0.1                     # for a global batch of ``lr_batch`` clips; scaled linearly
    lr_batch: int = 16
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    decay_all: bool = False             # weight decay on every parameter (the release) instead of weights only
    schedule: str = "cosine"            # cosine | step
    warmup_epochs: float = 1.0
    milestones: list = field(default_factory=lambda: [6, 7])   # step schedule, in epochs
    gamma: float = 0.1
    clip_grad: float = 40.0             # max gradient norm (0: off)
    accumulate: int = 1                 # micro-batches per optimizer step
    backbone_lr_mult: float = 1.0       # fine-tuning: lower LR for everything but the classifier
    freeze_bn: bool = False
    combined_weight: float = 1.0        # loss = w_c CE(combined logits) + w_h (CE(local) + CE(global))
    heads_weight: float = 0.0           # the authors' release trains the two heads (w_c 0, w_h 1)
    label_smoothing: float = 0.0
    loss_weight: float = 1.0            # the loss is multiplied by it (the release: 4 for Kinetics)


@dataclass
class RunConfig:
    out_dir: str = "runs/tiny"
    seed: int = 0
    device: str = "auto"                # auto | cpu | cuda
    amp: str = "auto"                   # auto (bf16 on CUDA and on CPUs with native bf16, fp16 + GradScaler on
                                        # GPUs without bf16, else fp32) | bf16 | fp16 (CUDA) | off
    channels_last: bool = True          # channels_last_3d on CUDA
    channels_last_cpu: bool = False     # channels_last_3d on a CPU too (faster for the teaching model, slower for R50)
    compile: bool = False
    cudnn_benchmark: bool = True        # CUDA: let cuDNN time its convolution algorithms for the run's fixed shapes
    deterministic: bool = False         # repeatable GPU runs: deterministic cuDNN and PyTorch algorithms (slower);
                                        # a few CUDA kernels have no deterministic form and warn (max-pool backward)
    sync_bn: bool = False
    checkpoint_every: int = 0           # steps between checkpoints (0: only at epoch ends)
    keep_last: int = 2
    eval_every: int = 1                 # epochs between validations (0: never during training)
    log_every: int = 10
    max_steps_per_epoch: int = 0        # cap for quick runs (0: full epochs)
    resume: bool = True                 # continue from the newest good checkpoint in out_dir
    resume_changed: bool = False        # resume even when the checkpoint was made with other settings (listed)
    tensorboard: bool = False
    progress: bool = True


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        """The sections as plain dicts, with ``schema_version`` first (what checkpoints and config.yaml store)."""
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}


# Saved configurations (checkpoints, a run's config.yaml) carry ``schema_version``. Renaming or removing a field
# raises the version and adds a step here that rewrites the previous version's dict, so every checkpoint saved
# before still loads. Version 1 is what was saved before versions were recorded: the same fields as version 2.
SCHEMA_VERSION = 2
MIGRATIONS = {
    1: lambda data: data,
}


def migrate(data: dict | None) -> dict:
    """A saved configuration dict brought to ``SCHEMA_VERSION`` (without the version key). A dict without a
    version is version 1; one from a newer version than this package knows raises ``ConfigError``."""
    data = dict(data or {})
    version = data.pop("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise ConfigError(f"bad value for schema_version: {version!r} (a positive whole number)")
    if version > SCHEMA_VERSION:
        raise ConfigError(f"this configuration was saved with schema_version {version}, newer than this "
                          f"lgd_tutorial reads ({SCHEMA_VERSION}): upgrade the package to load it")
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
    return data


# Every choice list lives in ``constants`` (which imports nothing), so a new choice needs no second edit here.
CHOICES = {
    "data.dataset": DATASETS,
    "data.sampling": SAMPLINGS,
    "data.backend": BACKENDS,
    "data.test_crops": TEST_CROPS,
    "data.test_head": TEST_HEADS,
    "data.test_average": AVERAGES,
    "model.diffusion": DIFFUSIONS,
    "model.kernel": KERNELS,
    "model.init": INITS,
    "optim.schedule": SCHEDULES,
    "model.modality": tuple(MODALITIES),
    "run.device": DEVICES,
    "run.amp": AMP_MODES,
}
POSITIVE = {"data.num_frames", "data.stride", "data.crop_size", "data.test_short_side", "data.test_clips",
            "data.batch_size", "model.num_classes", "optim.epochs", "optim.lr", "optim.lr_batch",
            "optim.accumulate", "run.keep_last", "run.log_every"}
NON_NEGATIVE = {"data.workers", "data.decode_short_side", "optim.weight_decay", "optim.warmup_epochs",
                "optim.clip_grad", "optim.combined_weight", "optim.heads_weight", "optim.momentum",
                "run.checkpoint_every", "run.eval_every", "run.max_steps_per_epoch", "optim.backbone_lr_mult",
                "optim.label_smoothing", "data.test_crop_size", "data.grayscale_p", "data.blur_p", "data.color_jitter_p"}
POSITIVE |= {"optim.loss_weight"}


def _coerce(key: str, value, kind):
    """Convert a YAML or command-line value to the field's type, or raise ConfigError naming the key."""
    origin = typing.get_origin(kind)
    if kind is str and isinstance(value, bool):
        raise ConfigError(f"bad value for {key}: YAML reads an unquoted yes/no/on/off as {value}; "
                          f"quote it, e.g. {key.split('.')[-1]}: 'off'")
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
                return value.lower() in ("true", "yes", "1")
            raise ValueError
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is str:
            if isinstance(value, (dict, list, bool)):
                raise ValueError
            return "" if value is None else str(value)
        if kind is list or origin is list:
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, list):
                raise ValueError
            return [float(v) if isinstance(v, float) else int(v) for v in value]
    except (TypeError, ValueError):
        pass
    name = getattr(kind, "__name__", str(kind))
    raise ConfigError(f"bad value for {key}: {value!r} (expected {name})")


def _field_types(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _apply(cfg: Config, key: str, value, text: bool = False) -> None:
    """Set ``key`` to ``value``; ``text``: value is a command-line string, read as YAML unless the field is
    a string (so ``run.amp=off`` stays "off")."""
    parts = key.split(".")
    if len(parts) != 2:
        raise ConfigError(f"unknown key {key!r}: keys look like section.name, e.g. optim.lr")
    section, name = parts
    if section not in _field_types(Config):
        raise ConfigError(f"unknown key {key!r}: sections are {', '.join(_field_types(Config))}")
    target = getattr(cfg, section)
    types_ = _field_types(type(target))
    if name not in types_:
        raise ConfigError(f"unknown key {key!r}; {section} has: {', '.join(types_)}")
    if text and types_[name] is not str:
        value = yaml.safe_load(value) if value.strip() else ""
    setattr(target, name, _coerce(key, value, types_[name]))


def _check_augmentation(cfg: Config) -> None:
    d = cfg.data
    for key in ("color_jitter_p", "grayscale_p", "blur_p"):
        if not 0 <= getattr(d, key) <= 1:
            raise ConfigError(f"bad value for data.{key}: {getattr(d, key)!r} (a probability, 0 to 1)")
    if d.color_jitter and (len(d.color_jitter) != 4 or min(d.color_jitter) < 0 or d.color_jitter[3] > 0.5):
        raise ConfigError(f"bad value for data.color_jitter: {d.color_jitter!r} "
                          "([brightness, contrast, saturation, hue], each >= 0, hue <= 0.5; [] for none)")
    if len(d.crop_scale) != 2 or not 0 < d.crop_scale[0] <= d.crop_scale[1] <= 1:
        raise ConfigError(f"bad value for data.crop_scale: {d.crop_scale!r} (two areas, 0 < low <= high <= 1)")
    if len(d.blur_sigma) != 2 or not 0 < d.blur_sigma[0] <= d.blur_sigma[1]:
        raise ConfigError(f"bad value for data.blur_sigma: {d.blur_sigma!r} (two sigmas, 0 < low <= high)")


def validate(cfg: Config) -> Config:
    for key, choices in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in choices:
            raise ConfigError(f"bad value for {key}: {value!r} (choose from {', '.join(map(str, choices))})")
    for key in POSITIVE | NON_NEGATIVE:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if (key in POSITIVE and value <= 0) or value < 0:
            raise ConfigError(f"bad value for {key}: {value!r} (must be {'positive' if key in POSITIVE else '>= 0'})")
    if len(cfg.data.scale) != 2 or not 0 < cfg.data.scale[0] <= cfg.data.scale[1]:
        raise ConfigError(f"bad value for data.scale: {cfg.data.scale!r} (two sizes, low <= high)")
    if cfg.data.scale[0] < cfg.data.crop_size and not cfg.data.resized_crop:
        raise ConfigError(f"bad value for data.scale: {cfg.data.scale!r} (must be >= data.crop_size {cfg.data.crop_size})")
    _check_augmentation(cfg)
    if cfg.model.arch not in ARCHITECTURES:
        raise ConfigError(f"bad value for model.arch: {cfg.model.arch!r} (choose from {', '.join(ARCHITECTURES)})")
    if not 0 <= cfg.model.dropout < 1:
        raise ConfigError(f"bad value for model.dropout: {cfg.model.dropout!r} (0 <= p < 1)")
    if cfg.model.modality == "flow" and not cfg.data.flow_root:
        raise ConfigError("model.modality is 'flow' but data.flow_root is empty: set it to the folder "
                          "`lgd prepare flow --out ...` wrote")
    if cfg.data.flow_bound <= 0:
        raise ConfigError(f"bad value for data.flow_bound: {cfg.data.flow_bound!r} (must be positive)")
    return cfg


def resolve_path(name_or_path) -> Path:
    path = Path(name_or_path)
    if path.exists():
        return path
    candidate = CONFIG_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"no config file {name_or_path!r}; recipes: {known}")


def from_dict(data: dict | None, overrides=()) -> Config:
    """A validated ``Config`` from sections (a recipe, or a saved configuration of any schema version: it is
    migrated first) and ``key=value`` overrides."""
    cfg = Config()
    for section, values in migrate(data).items():
        if not isinstance(values, dict):
            raise ConfigError(f"unknown key {section!r}: expected a section with keys")
        for name, value in values.items():
            _apply(cfg, f"{section}.{name}", value)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. optim.lr=0.05")
        key, value = item.split("=", 1)
        _apply(cfg, key.strip(), value, text=True)
    return validate(cfg)


def load_config(name_or_path, overrides=()) -> Config:
    """Read a recipe (file or name in lgd_tutorial/configs/) and apply ``key=value`` overrides."""
    path = resolve_path(name_or_path)
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected sections (data, model, optim, run) at the top level")
    try:
        return from_dict(data, overrides)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def save_config(cfg: Config, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return path


