"""What the grader runs around a canonical check: the package's own answer to the exercise is off limits.

Students have the package installed, so ``lgd_forward = lambda block, x, g: block(x, g)`` would pass the
LGD-block check by calling the reference. ``reference_guard`` traces Python calls while the check runs:
a call into one of the exercise's reference functions whose nearest caller outside PyTorch is the
student's code (a notebook cell), not the check itself, marks the exercise as answered by the
reference. A student's answer that *is* the reference (``MyP3DB = p3d.P3DB``) is caught by identity.
The verdict is given after the check, so a student's ``try``/``except`` cannot hide it.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
from pathlib import Path

# exercise -> the package's own answer ("module:qualified.name"); the check itself may call these
REFERENCES: dict[str, list[str]] = {
    "pool_broadcast": ["lgd_tutorial.models.lgd:pool", "lgd_tutorial.models.lgd:broadcast"],
    "projection": ["lgd_tutorial.models.lgd:projection"],
    "lgd_block": ["lgd_tutorial.models.lgd:LGDBlock.forward",
                  "lgd_tutorial.models.lgd:LGDBlock.diffuse_local_to_global"],
    "p3d_b": ["lgd_tutorial.models.p3d:P3DB"],
    "inflate_kernel": ["lgd_tutorial.models.inflate:_inflate_kernel"],
    "gaussian_kernel": ["lgd_tutorial.models.classifier:KernelHead.similarity"],
    "global_to_local_ratio": ["lgd_tutorial.viz.diffusion:global_to_local_ratio"],
    "scaled_lr": ["lgd_tutorial.builders:lr_at"],
    "flip_flow": ["lgd_tutorial.data.transforms:FlowHorizontalFlip.__call__"],
    "fixed_mean": ["lgd_tutorial.viz.causal:fix_global_to_local", "lgd_tutorial.viz.causal:mean_global_to_local",
                   "lgd_tutorial.viz.causal:fix_context", "lgd_tutorial.viz.causal:mean_context_term"],
    "global_context": ["lgd_tutorial.models.context:GlobalContext.forward",
                       "lgd_tutorial.models.context:GlobalContext.contribute",
                       "lgd_tutorial.models.context:GlobalContext.context"],
    "cut_global_to_local": ["lgd_tutorial.viz.causal:cut_paths", "lgd_tutorial.viz.diffusion:cut_global_path"],
}
_CHECKS = str(Path(__file__).resolve().parent)
_TORCH = str(Path(importlib.import_module("torch").__file__).resolve().parent)
_CONTEXTLIB = contextlib.__file__


class ReferenceUsed(Exception):
    """The student's answer is, or calls, the package's own answer to the exercise."""


def _resolve(spec: str):
    module, _, name = spec.partition(":")
    value = importlib.import_module(module)
    for part in name.split("."):
        value = getattr(value, part)
    return value


def _code_objects(value) -> set:
    value = inspect.unwrap(value)                       # a context manager's own code, not contextlib's helper
    if inspect.isclass(value):
        return {f.__code__ for f in vars(value).values() if inspect.isfunction(f)}
    return {value.__code__} if hasattr(value, "__code__") else set()


def _is_student(frame) -> bool:
    """A frame of notebook code (a cell or a function defined in one), not the package, PyTorch or Python."""
    name = frame.f_code.co_filename
    return "ipykernel_" in name or name.startswith("<ipython-input") or name.startswith("<cell")


def _first_caller_that_counts(frame):
    """The nearest caller that is not machinery: PyTorch's (``Module.__call__``) or contextlib's (``with``)."""
    frame = frame.f_back
    while frame is not None and frame.f_code.co_filename.startswith((_TORCH, _CONTEXTLIB)):
        frame = frame.f_back
    return frame


@contextlib.contextmanager
def reference_guard(exercise: str, answers: dict):
    """Run a check; raise ReferenceUsed afterwards if the student's answer used the exercise's reference.

    ``answers`` maps the names the exercise asks for to the student's objects (missing names are skipped).
    """
    references = [_resolve(spec) for spec in REFERENCES.get(exercise, [])]
    for name, value in answers.items():
        for reference in references:
            if value is reference or (inspect.isclass(reference) and inspect.isclass(value)
                                      and issubclass(value, reference)):
                raise ReferenceUsed(f"{name} is the package's own {reference.__qualname__}; write it yourself")
    forbidden = set().union(*(_code_objects(r) for r in references)) if references else set()
    used: list[str] = []

    def trace(frame, event, arg):
        if event == "call" and frame.f_code in forbidden:
            caller = _first_caller_that_counts(frame)
            if caller is not None and _is_student(caller) and not caller.f_code.co_filename.startswith(_CHECKS):
                used.append(frame.f_code.co_qualname if hasattr(frame.f_code, "co_qualname")
                            else frame.f_code.co_name)
        return None

    previous = sys.gettrace()
    sys.settrace(trace if forbidden else previous)
    try:
        yield
    finally:
        sys.settrace(previous)
    if used:
        raise ReferenceUsed(f"your answer calls the package's own {used[0]}; write it yourself")
