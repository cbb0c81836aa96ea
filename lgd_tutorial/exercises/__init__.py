"""The workbook's exercises: the checks students call (``checks``) and the instructor's tools (``grading``).

    from lgd_tutorial.exercises import check_lgd_block
    check_lgd_block(my_lgd_forward)

``lgd exercises build`` writes the student versions of the notebooks and
``lgd exercises grade`` grades submissions (``lgd_tutorial.exercises.grading``).
"""

from .checks import (
    P3D_KINDS,
    ExerciseError,
    check_pool_broadcast,
    check_projection,
    check_p3d_unit,
    check_lgd_block,
    check_inflate_kernel,
    check_gaussian_kernel,
    check_receptive_field,
    check_video_accuracy,
    check_split_per_class,
    check_flip_flow,
    check_workers_needed,
    check_scaled_lr,
    check_global_to_local_ratio,
    check_cut_global_to_local,
    check_outside_reach,
    check_global_context,
    check_fixed_mean_logits,
)

__all__ = [
    "P3D_KINDS",
    "ExerciseError",
    "check_pool_broadcast",
    "check_projection",
    "check_p3d_unit",
    "check_lgd_block",
    "check_inflate_kernel",
    "check_gaussian_kernel",
    "check_receptive_field",
    "check_video_accuracy",
    "check_split_per_class",
    "check_flip_flow",
    "check_workers_needed",
    "check_scaled_lr",
    "check_global_to_local_ratio",
    "check_cut_global_to_local",
    "check_outside_reach",
    "check_global_context",
    "check_fixed_mean_logits",
]
