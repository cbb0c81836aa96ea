"""Visualisation toolkit for LGD networks: taps, diffusion maps, kernel evidence, video Grad-CAM,
figures and animations, notebook explorers and training plots.

Submodules: ``taps``, ``diffusion``, ``evidence``, ``gradcam``, ``render``,
``widgets``, ``plots``, ``demo``, ``causal`` (counterfactuals, receptive
fields, probes, path cuts), ``causal_plots`` (their figures), ``spreading`` (the
evidence-spreading experiment). The reach study's figures are in ``lgd_tutorial.experiments.reach_plots``.
Names are imported from them on first use, so ``import lgd_tutorial.viz`` (and ``lgd viz --help``) stays cheap.
"""

from ..utils import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "taps": ["TapRecord", "TapRecorder", "collect_taps", "detach_taps", "lgd_blocks", "resolve_block",
             "tap_layers"],
    "diffusion": ["AblationResult", "DiffusionMaps", "ablate_global_path", "cut_global_path", "diffusion_maps",
                  "global_cosine", "global_to_local_ratio"],
    "evidence": ["class_evidence", "clip_to_frames", "colorize", "evidence_overlay", "normalize_maps", "overlay",
                 "upsample"],
    "gradcam": ["ClipGradCAM", "FrameGradCAM", "check_cam_method", "gradcam_per_block", "make_video_cam",
                "video_gradcam"],
    "render": ["diffusion_grid", "diffusion_rows", "export_animation", "figure_grid", "figure_to_png",
               "gradcam_strip", "rgb_to_png", "save_figure"],
    "widgets": ["OverlayExplorer", "diffusion_explorer", "evidence_explorer", "gradcam_explorer"],
    "plots": ["confusion_matrix", "per_class_accuracy", "plot_ablation", "plot_confusion", "plot_learning_curves",
              "plot_per_class_accuracy", "read_metrics"],
    "demo": ["render_models", "render_video"],
    "causal": ["Counterfactual", "beacon_counterfactuals", "beacon_region", "counterfactual_change", "cut_paths", "effective_receptive_field", "fix_global_to_local", "linear_probe", "lookup_baseline",
               "mean_global_to_local",
               "object_and_global_features", "object_features", "receptive_field_reach", "swap_beacon"],
    "causal_plots": ["plot_counterfactual", "plot_effective_fields", "plot_probes"],
    "spreading": ["evidence_on_the_square", "one_region_clips", "train_on_one_region_clips"],
})
