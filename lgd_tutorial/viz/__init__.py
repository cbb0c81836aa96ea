"""Visualisation toolkit for LGD networks: taps, diffusion maps, kernel evidence, video Grad-CAM."""

from .diffusion import (AblationResult, DiffusionMaps, ablate_global_path, cut_global_path, diffusion_maps,
                        global_cosine, global_to_local_ratio)
from .evidence import (class_evidence, clip_to_frames, colorize, evidence_overlay, normalize_maps, overlay,
                       upsample)
from .gradcam import (ClipGradCAM, FrameGradCAM, check_cam_method, gradcam_per_block, make_video_cam,
                      video_gradcam)
from .taps import TapRecord, TapRecorder, collect_taps, evaluating, lgd_blocks, resolve_block, tap_layers

__all__ = [
    "AblationResult", "DiffusionMaps", "ablate_global_path", "cut_global_path", "diffusion_maps",
    "global_cosine", "global_to_local_ratio",
    "class_evidence", "clip_to_frames", "colorize", "evidence_overlay", "normalize_maps", "overlay", "upsample",
    "ClipGradCAM", "FrameGradCAM", "check_cam_method", "gradcam_per_block", "make_video_cam", "video_gradcam",
    "TapRecord", "TapRecorder", "collect_taps", "evaluating", "lgd_blocks", "resolve_block", "tap_layers",
]
