"""Visualisation toolkit for LGD networks: taps, diffusion maps, kernel evidence, video Grad-CAM,
figures and animations, notebook explorers and training plots.

The explorers (``widgets``) import ipywidgets only when used.
"""

from .diffusion import (AblationResult, DiffusionMaps, ablate_global_path, cut_global_path, diffusion_maps,
                        global_cosine, global_to_local_ratio)
from .evidence import (class_evidence, clip_to_frames, colorize, evidence_overlay, normalize_maps, overlay,
                       upsample)
from .demo import render_demo, synthetic_clip
from .gradcam import (ClipGradCAM, FrameGradCAM, check_cam_method, gradcam_per_block, make_video_cam,
                      video_gradcam)
from .plots import (confusion_matrix, per_class_accuracy, plot_ablation, plot_confusion, plot_learning_curves,
                    plot_per_class_accuracy, read_metrics)
from .render import (diffusion_grid, diffusion_rows, export_animation, figure_grid, figure_to_png, gradcam_strip,
                     rgb_to_png, save_figure)
from .taps import TapRecord, TapRecorder, collect_taps, evaluating, lgd_blocks, resolve_block, tap_layers

__all__ = [
    "AblationResult", "DiffusionMaps", "ablate_global_path", "cut_global_path", "diffusion_maps",
    "global_cosine", "global_to_local_ratio",
    "class_evidence", "clip_to_frames", "colorize", "evidence_overlay", "normalize_maps", "overlay", "upsample",
    "ClipGradCAM", "FrameGradCAM", "check_cam_method", "gradcam_per_block", "make_video_cam", "video_gradcam",
    "confusion_matrix", "per_class_accuracy", "plot_ablation", "plot_confusion", "plot_learning_curves",
    "plot_per_class_accuracy", "read_metrics",
    "diffusion_grid", "diffusion_rows", "export_animation", "figure_grid", "figure_to_png", "gradcam_strip",
    "rgb_to_png", "save_figure",
    "render_demo", "synthetic_clip",
    "OverlayExplorer", "diffusion_explorer", "evidence_explorer", "gradcam_explorer",
    "TapRecord", "TapRecorder", "collect_taps", "evaluating", "lgd_blocks", "resolve_block", "tap_layers",
]


def __getattr__(name):
    # The explorers need ipywidgets; import them on first use.
    if name in ("OverlayExplorer", "diffusion_explorer", "evidence_explorer", "gradcam_explorer"):
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
