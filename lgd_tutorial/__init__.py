"""lgd_tutorial: LGD networks (Local and Global Diffusion) for teaching and research.

What most users need first is importable from here:

    from lgd_tutorial import build_model, load_config, train
    model = build_model("lgd3d_tiny", num_classes=4)
    result = train(load_config("tiny_synthetic_cpu", ["run.out_dir=runs/first"]))

The rest lives in four packages: ``lgd_tutorial.models`` (networks, the
registry, pretrained teaching checkpoints), ``lgd_tutorial.data`` (video
decoding, Kinetics annotations, datasets, transforms, the synthetic set),
``lgd_tutorial.viz`` (taps, diffusion maps, counterfactuals, Grad-CAM,
figures) and ``lgd_tutorial.exercises`` (the workbook's checks and grading).
Names load on first use, so ``import lgd_tutorial`` is cheap.
"""

from .utils import lazy_exports

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "models": ["build_model", "list_models", "model_info", "list_pretrained", "load_pretrained"],
    "data.clips": ["ClipDataset"],
    "config": ["CONFIG_DIR", "Config", "ConfigError", "load_config"],
    "training": ["Trainer", "train"],
    "evaluation": ["EvalResult", "evaluate"],
    "prediction": ["Prediction", "Predictor", "predict"],
    "builders": ["build_datasets", "lr_at", "model_from_checkpoint", "model_from_config"],
    "checkpoint": ["CheckpointError", "checkpoints_in", "load_checkpoint"],
    "experiments.reach_study": ["ReachSettings"],
    "experiments.study": ["StudySettings", "head_accuracy", "render_clip", "render_split", "run_study"],
    "data.transforms": ["to_clips"],
})
