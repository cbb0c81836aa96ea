"""Checks for the workbook's exercises: compare a student's code with the reference and say what is off.

Each ``check_*`` function runs the student's code and the package's reference
on the same random inputs, with the same weights, and either prints one
success line and returns True, or raises ``ExerciseError`` whose message says
in plain words what differs: which shape, which diffusion, which term.

    from lgd_tutorial.exercises import check_lgd_block
    check_lgd_block(my_lgd_forward)      # a function (block, x, g) -> (x_new, g_new)
    check_lgd_block(MyLGDBlock)          # or a class with LGDBlock's constructor

The instructor's side (``lgd exercises build`` and ``grade``) is in
``lgd_tutorial.exercises.grading``.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math

import torch
from torch import Tensor, nn

from ..data.transforms import FlowHorizontalFlip
from ..models import build_model, lgd, p3d
from ..models.context import GlobalContext
from ..models.inflate import _inflate_kernel
from ..viz.causal import cut_paths, fix_global_to_local, mean_global_to_local
from ..viz.diffusion import global_to_local_ratio
from ..viz.taps import collect_taps

TOLERANCE = dict(rtol=1e-4, atol=1e-5)


class ExerciseError(AssertionError):
    """A check failed; the message says what is wrong.

    ``credit`` is the share of the check's parts that passed before it failed (the grader gives that
    share of the exercise's points): the LGD block's local-to-global part right and its global-to-local
    part wrong is worth half.
    """

    def __init__(self, message: str, credit: float = 0.0):
        super().__init__(message)
        self.credit = credit


def _passed(what: str) -> bool:
    print(f"[ok] {what}: matches the reference.")
    return True


def _shape(name: str, got, expected: tuple, hint: str = "") -> None:
    if not isinstance(got, Tensor):
        raise ExerciseError(f"{name} should be a tensor of shape {expected}, got {type(got).__name__}.")
    if tuple(got.shape) != tuple(expected):
        raise ExerciseError(f"{name} has shape {tuple(got.shape)}, expected {tuple(expected)}. {hint}".strip())


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, **TOLERANCE)


CASE_SEED = 0        # the visible checks use 0; the grader sets another, so its cases differ from the visible ones


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(1000 * CASE_SEED + seed)


def _draw(seed: int, low: int, high: int, size: int = 1) -> list[int]:
    """``size`` integers in [low, high] from the case generator: hidden cases when the grader changes CASE_SEED."""
    return torch.randint(low, high + 1, (size,), generator=_seeded(seed)).tolist()


@contextlib.contextmanager
def _part(done: int, total: int):
    """One of a check's ``total`` parts: an ExerciseError raised in it carries the credit of the ``done``
    parts that passed before (the grader gives that share of the exercise's points)."""
    try:
        yield
    except ExerciseError as error:
        error.credit = max(error.credit, done / total)
        raise


# --- pooling and broadcasting -------------------------------------------------

def check_pool_broadcast(pool, broadcast) -> bool:
    """``pool``: (N, C, T, H, W) -> (N, C), the mean over (T, H, W); ``broadcast``: (N, C) -> adds to every position."""
    x = torch.randn(2, 6, 3, 4, 5, generator=_seeded())
    pooled = pool(x)
    _shape("pool(x)", pooled, (2, 6), "P averages over T, H and W and keeps N and C.")
    if not _close(pooled, lgd.pool(x)):
        if _close(pooled, x.sum((2, 3, 4))):
            raise ExerciseError("pool(x) sums over (T, H, W); P is the *mean* over the T*H*W positions.")
        if _close(pooled, x.amax((2, 3, 4))):
            raise ExerciseError("pool(x) takes the maximum; P is the average over (T, H, W).")
        raise ExerciseError("pool(x) has the right shape but wrong values: average over dims 2, 3 and 4 only.")
    g = torch.randn(2, 6, generator=_seeded(1))
    try:
        added = x + broadcast(g)
    except RuntimeError as error:
        raise ExerciseError(f"x + broadcast(g) fails for x {tuple(x.shape)} and g {tuple(g.shape)}: "
                            f"{error}. U must give g shape (N, C, 1, 1, 1) so it lines up with channels.",
                            credit=0.5) from None
    if tuple(added.shape) != tuple(x.shape):
        raise ExerciseError(f"x + broadcast(g) has shape {tuple(added.shape)}, expected {tuple(x.shape)}: "
                            "broadcasting must not change the local map's shape.", credit=0.5)
    if not _close(added, x + lgd.broadcast(g)):
        raise ExerciseError("x + broadcast(g) adds the wrong numbers: every position (t, h, w) of channel c "
                            "should receive g[:, c]. Check that g's channel axis lines up with x's axis 1.",
                            credit=0.5)
    return _passed("pool and broadcast")


# --- the projections ----------------------------------------------------------

def check_projection(build) -> bool:
    """``build(in_features, out_features)`` -> a module like ``lgd.projection``: two Linear layers, bottleneck C // 16 (>= 8)."""
    cases = ((64, 256), (32, 64))
    for i, (c_in, c_out) in enumerate(cases):
        with _part(i, len(cases)):
            reference = lgd.projection(c_in, c_out)
            student = build(c_in, c_out)
            linears = [m for m in student.modules() if isinstance(m, nn.Linear)]
            hidden = reference[0].out_features
            if len(linears) != 2:
                raise ExerciseError(f"projection({c_in}, {c_out}) has {len(linears)} Linear layers; "
                                    "the release uses exactly two (C_in -> C/16 -> C), nothing between them.")
            if linears[0].out_features != hidden:
                raise ExerciseError(f"projection({c_in}, {c_out}) has a bottleneck of {linears[0].out_features}; "
                                    f"expected max({c_out} // 16, 8) = {hidden}.")
            if any(m.bias is None for m in linears):
                raise ExerciseError("a Linear layer of your projection has no bias; both layers keep theirs.")
            for mine, theirs in zip(linears, (reference[0], reference[1])):
                mine.load_state_dict(theirs.state_dict())
            v = torch.randn(3, c_in, generator=_seeded())
            out = student(v)
            _shape(f"projection({c_in}, {c_out})(v)", out, (3, c_out))
            if not _close(out, reference(v)):
                raise ExerciseError("with the reference weights your projection gives other values: "
                                    "apply the two Linear layers one after the other with no activation between.")
    return _passed("projection")


# --- P3D units ----------------------------------------------------------------

P3D_KINDS = {"A": p3d.P3DA, "B": p3d.P3DB, "C": p3d.P3DC}
P3D_FORMULAS = {"A": "ReLU(BN(T(S(x))))", "B": "ReLU(BN(S(x) + T(x)))", "C": "s = ReLU(BN(S(x))); ReLU(s + T(s))"}


def check_p3d_unit(kind: str, student_cls) -> bool:
    """``student_cls(in_channels, out_channels, stride=1, activate=True)`` against P3D-``kind`` (A, B or C)."""
    kind = kind.upper()
    if kind not in P3D_KINDS:
        raise ValueError(f"kind must be one of {sorted(P3D_KINDS)}, got {kind!r}")
    formula = P3D_FORMULAS[kind]
    cases = ((1, True), (2, True), (1, False))
    for i, (stride, activate) in enumerate(cases):
        with _part(i, len(cases)):
            torch.manual_seed(CASE_SEED)
            reference = P3D_KINDS[kind](4, 6, stride, activate).eval()
            student = student_cls(4, 6, stride, activate=activate).eval()
            try:
                student.load_state_dict(reference.state_dict())
            except RuntimeError as error:
                raise ExerciseError(f"your P3D-{kind} does not hold the same layers as the reference ({error}). "
                                    "Name them spatial (1x3x3 conv), temporal (3x1x1 conv) and bn.") from None
            with torch.no_grad():
                for module in reference.modules():
                    if isinstance(module, nn.BatchNorm3d):
                        module.running_mean.uniform_(-0.5, 0.5)
                        module.running_var.uniform_(0.5, 2.0)
                student.load_state_dict(reference.state_dict())
                x = torch.randn(2, 4, 5, 8, 8, generator=_seeded())
                expected = reference(x.clone())
                out = student(x.clone())
            _shape(f"P3D-{kind} (stride {stride}) output", out, tuple(expected.shape),
                   "The spatial stride shrinks H and W; T never changes." + (" In P3D-B the temporal conv takes the "
                                                                             "spatial stride too." if kind == "B" else ""))
            if not _close(out, expected):
                if not activate and (out >= 0).all() and (expected < 0).any():
                    raise ExerciseError(f"with activate=False P3D-{kind} must end without ReLU "
                                        "(the residual branch ends in BN).")
                raise ExerciseError(f"P3D-{kind} (stride {stride}, activate={activate}) gives other values than "
                                    f"{formula}. Check the order of the convolutions, BN and ReLU.")
    return _passed(f"P3D-{kind} unit")


# --- the LGD block --------------------------------------------------------------

def _reference_block(diffusion: str = "both", square: bool = False) -> lgd.LGDBlock:
    """A block from 16 to 32 channels with stride 2 (``square``: 32 to 32, stride 1, so g and g_new have one
    shape), every projection weight drawn."""
    torch.manual_seed(CASE_SEED)
    c_in, c_out = (32, 32) if square else (16, 32)
    stride = 1 if square else 2
    residual = p3d.Bottleneck(c_in, c_out // 4, stride, p3d.P3DA)
    shortcut = p3d.Shortcut(c_in, c_out, stride) if not square else nn.Identity()
    block = lgd.LGDBlock(residual, shortcut, c_in, c_out, diffusion).eval()
    with torch.no_grad():
        for module in block.modules():            # the zero-initialised W_xg would hide global-to-local
            if isinstance(module, nn.Linear):
                module.weight.normal_(0, 0.3)
                module.bias.normal_(0, 0.3)
    return block


def _diagnose_global(block: lgd.LGDBlock, x: Tensor, g: Tensor, got: Tensor) -> str:
    carried = block.global_to_global(g)
    from_local = block.local_to_global(lgd.pool(x))
    candidates = {
        "your new global vector ignores the local map: the local-to-global diffusion W_gx P(x) is missing":
            torch.relu(carried),
        "your new global vector forgets the incoming global vector: W_gg g is missing from local-to-global":
            torch.relu(from_local),
        "local-to-global is missing its ReLU: g_new = ReLU(W_gx P(x) + W_gg g)": carried + from_local,
    }
    for message, candidate in candidates.items():
        if _close(got, candidate):
            return message
    return "the new global vector differs from ReLU(W_gx P(x) + W_gg g) (local-to-global)"


def _diagnose_local(block: lgd.LGDBlock, x: Tensor, g_new: Tensor, got: Tensor) -> str:
    residual = block.residual(x) + block.shortcut(x)
    term = lgd.broadcast(block.global_to_local(g_new))
    candidates = {
        "your local output never receives the global vector: the global-to-local diffusion U(W_xg g_new) is missing":
            torch.relu(residual),
        "global-to-local is added after the ReLU; add U(W_xg g_new) to F(x) + S(x) first, then apply ReLU":
            torch.relu(residual) + term,
        "the final ReLU is missing: x_new = ReLU(F(x) + S(x) + U(W_xg g_new))": residual + term,
        "the shortcut S(x) is missing from the local output": torch.relu(block.residual(x) + term),
    }
    for message, candidate in candidates.items():
        if _close(got, candidate):
            return message
    return "the local output differs from ReLU(F(x) + S(x) + U(W_xg g_new)) (global-to-local)"


def _diagnose_crash(student, error: RuntimeError) -> None:
    """The student's block raised on a block that changes the width (16 -> 32 channels). Run it on a block that
    keeps the width, where g and g_new have one shape, and say in plain words what the crash meant."""
    block = _reference_block(square=True)
    x = torch.randn(2, 32, 4, 8, 8, generator=_seeded(2))
    g = torch.randn(2, 32, generator=_seeded(3))
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    try:
        got_x, got_g = student(block, x.clone(), g.clone())
    except Exception:
        raise ExerciseError(f"your block raised {type(error).__name__} ({first}) on a block from 16 to 32 channels: "
                            "check which vector each projection reads (W_gg and W_gx read the block's inputs g and "
                            "P(x), with C_in channels; W_xg reads g_new, with C_out)") from None
    expected_x, expected_g = block(x.clone(), g.clone())
    uses_old_g = torch.relu(block.residual(x) + block.shortcut(x) + lgd.broadcast(block.global_to_local(g)))
    if _close(got_g, expected_g) and _close(got_x, uses_old_g):
        raise ExerciseError("global-to-local reads the incoming global vector g; it should read the block's new "
                            "one, g_new = ReLU(W_gx P(x) + W_gg g), which has the block's output width (that is "
                            f"why a block that changes the width raised: {first})", credit=0.5) from None
    raise ExerciseError(f"your block raised {type(error).__name__} ({first}) on a block from 16 to 32 channels, but "
                        "runs when the width does not change: some projection reads a vector of the wrong width "
                        "(W_gg and W_gx read C_in channels, W_xg reads g_new with C_out)",
                        credit=0.5 if _close(got_g, expected_g) else 0.0) from None


def check_lgd_block(student) -> bool:
    """Compare a student's LGD block with ``LGDBlock`` (diffusion="both"), with shared weights.

    ``student`` is either a function ``(block, x, g) -> (x_new, g_new)`` that
    uses the reference block's modules (``block.residual``, ``block.shortcut``,
    ``block.global_to_global``, ``block.local_to_global``,
    ``block.global_to_local``), or a class with LGDBlock's constructor
    ``(residual, shortcut, in_channels, out_channels, diffusion="both")``.
    """
    block = _reference_block()
    x = torch.randn(2, 16, 4, 8, 8, generator=_seeded())
    g = torch.randn(2, 16, generator=_seeded(1))
    with torch.no_grad():
        expected_x, expected_g = block(x.clone(), g.clone())
        if not inspect.isclass(student):
            try:
                student(block, x.clone(), g.clone())
            except NotImplementedError:
                raise                                    # a stub not yet written: the grader says "not attempted"
            except RuntimeError as error:
                _diagnose_crash(student, error)
        if inspect.isclass(student):
            mine = student(copy.deepcopy(block.residual), copy.deepcopy(block.shortcut), 16, 32).eval()
            try:
                mine.load_state_dict(block.state_dict())
            except RuntimeError as error:
                raise ExerciseError("your block does not hold the same parameters as LGDBlock: name the "
                                    "projections global_to_global (W_gg), local_to_global (W_gx) and "
                                    f"global_to_local (W_xg), built with projection(). Details: {error}") from None
            result = mine(x.clone(), g.clone())
        else:
            result = student(block, x.clone(), g.clone())
        if not (isinstance(result, tuple) and len(result) == 2):
            raise ExerciseError("the block must return a pair (x_new, g_new): the local map and the global vector.")
        got_x, got_g = result
        _shape("g_new (the global output)", got_g, tuple(expected_g.shape),
               "The global vector is (N, C_out): pool over T, H, W and project to the block's output width.")
        _shape("x_new (the local output)", got_x, tuple(expected_x.shape),
               "The local map keeps the residual branch's shape (N, C_out, T, H', W').")
        if not _close(got_g, expected_g):
            raise ExerciseError(_diagnose_global(block, x, g, got_g) + ".")
        if not _close(got_x, expected_x):
            raise ExerciseError(_diagnose_local(block, x, expected_g, got_x) + " (local-to-global is right).",
                                credit=0.5)
    return _passed("LGD block (local-to-global and global-to-local)")


# --- inflation ------------------------------------------------------------------

def check_inflate_kernel(inflate) -> bool:
    """``inflate(weight (O, I, k, k), time)`` -> (O, I, time, k, k) with the 2D kernel at index time // 2."""
    weight = torch.randn(5, 3, 7, 7, generator=_seeded())
    cases = (4, 2, 3)
    for i, time in enumerate(cases):
        with _part(i, len(cases)):
            out = inflate(weight, time)
            _shape(f"inflate(weight, {time})", out, (5, 3, time, 7, 7),
                   "Insert a time axis after the input channels: (O, I, time, k, k).")
            expected = _inflate_kernel(weight, time, time // 2)
            if not _close(out, expected):
                if _close(out, weight[:, :, None].expand_as(out) / time):
                    raise ExerciseError("you spread the kernel evenly over time (I3D-style, divided by T); the "
                                        f"release puts the whole 2D kernel at index {time} // 2 and zeros elsewhere.")
                nonzero = [t for t in range(time) if out[:, :, t].abs().sum() > 0]
                raise ExerciseError(f"the 2D kernel should sit at temporal index {time // 2} of {time} with zeros "
                                    f"elsewhere; your kernel is non-zero at indices {nonzero}.")
    return _passed("kernel inflation")


# --- the kernelized classifier --------------------------------------------------

def check_gaussian_kernel(kernel) -> bool:
    """``kernel(features (..., C), templates (K, C), bandwidth, scale)`` -> (..., K) Gaussian similarities.

    k(a, u_c) = scale * exp(-||a - u_c||^2 / (2 bandwidth^2)) (the reconstruction's Gaussian kernel).
    """
    features = torch.randn(2, 7, 12, generator=_seeded())
    templates = torch.randn(5, 12, generator=_seeded(1))
    bandwidth, scale = 3.0, 2.0
    out = kernel(features, templates, bandwidth, scale)
    _shape("kernel(features, templates)", out, (2, 7, 5), "One similarity per position and class: (..., K).")
    sq = ((features[..., None, :] - templates) ** 2).sum(-1)
    expected = scale * torch.exp(-sq / (2 * bandwidth**2))
    if not _close(out, expected):
        if _close(out, scale * torch.exp(-sq.sqrt() / (2 * bandwidth**2))):
            raise ExerciseError("you used the distance ||a - u||; the Gaussian kernel uses the *squared* distance.")
        if _close(out, scale * torch.exp(-sq / bandwidth**2)):
            raise ExerciseError("the exponent misses the factor 2: exp(-||a - u||^2 / (2 sigma^2)).")
        if _close(out, torch.exp(-sq / (2 * bandwidth**2))):
            raise ExerciseError("the output scale alpha is missing: multiply the exponential by scale.")
        raise ExerciseError("your kernel gives other values than scale * exp(-||a - u_c||^2 / (2 bandwidth^2)).")
    return _passed("Gaussian kernel")


# --- receptive fields (notebook 1) ------------------------------------------------

def _receptive_field(kernels, strides) -> int:
    size, jump = 1, 1
    for kernel, stride in zip(kernels, strides):
        size += (kernel - 1) * jump
        jump *= stride
    return size


def check_receptive_field(receptive_field) -> bool:
    """``receptive_field(kernels, strides)`` -> how many input pixels (along one axis) one output position sees."""
    cases = [([3], [1]), ([3, 3], [1, 1]), ([3] * 4, [1] * 4), ([7, 3, 3, 3], [2, 2, 1, 1]), ([3, 3, 3], [2, 2, 2])]
    for seed in range(3):                                  # drawn cases: others when the grader runs the check
        depth = _draw(10 + seed, 2, 6)[0]
        cases.append(([2 * k + 1 for k in _draw(20 + seed, 0, 3, depth)], [1 + s for s in _draw(30 + seed, 0, 1, depth)]))
    for i, (kernels, strides) in enumerate(cases):
        with _part(i, len(cases)):
            got = receptive_field(list(kernels), list(strides))
            expected = _receptive_field(kernels, strides)
            if got == expected:
                continue
            where = f"for kernels {kernels} and strides {strides} you return {got}, expected {expected}"
            if got == 1 + sum(k - 1 for k in kernels):
                raise ExerciseError(f"{where}: you ignore the strides. After a layer with stride s, one step of the "
                                    "next kernel moves s input pixels, so its k - 1 extra taps add (k - 1) * (product "
                                    "of the earlier strides).")
            if got == sum(kernels):
                raise ExerciseError(f"{where}: kernels overlap by one pixel at each layer; a k-wide kernel adds k - 1, not k.")
            if got == _receptive_field(kernels, [1] + list(strides[:-1])[::-1]) or \
                    got == 1 + sum((k - 1) * s for k, s in zip(kernels, strides)):
                raise ExerciseError(f"{where}: a layer's own stride does not widen its receptive field; only the "
                                    "strides of the layers *before* it do.")
            raise ExerciseError(f"{where}. Keep a running size r (start 1) and jump j (start 1): "
                                "r += (k - 1) * j, then j *= s.")
    return _passed("receptive field")


# --- video-level accuracy from clip scores (notebook 5) ----------------------------

def _video_predictions(clip_logits: Tensor) -> Tensor:
    return clip_logits.softmax(-1).mean(1).argmax(-1)


def check_video_accuracy(video_accuracy) -> bool:
    """``video_accuracy(clip_logits (N, V, K), labels (N,))`` -> the fraction of videos whose averaged softmax is right.

    Every video has V views (clips x crops); each view's logits become
    probabilities (softmax), the probabilities are averaged over the views,
    and the video's prediction is the class with the highest average.
    """
    generator = _seeded(5)
    n, views, k = 200, 6, 5
    temperature = torch.exp(torch.empty(n, views, 1).uniform_(-3, 3, generator=generator))
    clip_logits = torch.randn(n, views, k, generator=generator) * temperature
    right = _video_predictions(clip_logits)
    wrong_ways = {
        "you average the logits; average the softmax probabilities of the views instead (a confident view "
        "should not outweigh the others by the size of its logits)": clip_logits.mean(1).argmax(-1),
        "you take a majority vote of the views' top classes; average their softmax probabilities instead":
            clip_logits.argmax(-1).mode(1).values,
        "you score only the first view of every video; average the softmax over all V views":
            clip_logits[:, 0].argmax(-1),
        "you take each class's maximum over the views; average the softmax probabilities instead":
            clip_logits.softmax(-1).amax(1).argmax(-1),
    }
    shifted = torch.where(torch.arange(n) % 2 == 0, right, (right + 1) % k)
    for i, labels in enumerate((right, shifted)):
        with _part(i, 2):
            expected = float((right == labels).float().mean())
            got = video_accuracy(clip_logits.clone(), labels.clone())
            got = float(got.item() if isinstance(got, Tensor) else got)
            if abs(got - expected) < 1e-6:
                continue
            if abs(got - 100 * expected) < 1e-4:
                raise ExerciseError(f"you return a percentage ({got:.1f}); return a fraction between 0 and 1.")
            for message, predictions in wrong_ways.items():
                if abs(got - float((predictions == labels).float().mean())) < 1e-6:
                    raise ExerciseError(f"accuracy {got:.3f}, expected {expected:.3f}: {message}.")
            raise ExerciseError(f"accuracy {got:.3f}, expected {expected:.3f}. Softmax over the classes (last axis), "
                                "mean over the views (axis 1), argmax, compare with the labels, mean over the videos.")
    return _passed("video-level accuracy")


# --- a deterministic train/val split (notebook 5) ------------------------------------

def _toy_annotations():
    import pandas as pd
    rows = [{"label": label, "youtube_id": f"{label[:3]}{i:08d}"[:11], "time_start": 10 * i, "time_end": 10 * i + 10,
             "split": "val"} for label, count in (("archery", 12), ("bowling", 9), ("juggling balls", 3))
            for i in range(count)]
    return pd.DataFrame(rows)


def _keys(frame) -> list[tuple]:
    return sorted(zip(frame["youtube_id"], frame["time_start"], frame["time_end"]))


def check_split_per_class(split) -> bool:
    """``split(annotations, val_per_class, seed)`` -> (train, val): a per-class split that depends only on its inputs.

    Seven parts, in order (a failure earns the share of the parts before it): the form, the counts per
    class, no clip in both, every clip somewhere, repeatable, independent of the row order, the seed matters.

    ``val`` holds ``min(val_per_class, clips of the class)`` clips of every
    class, ``train`` all the others; the same annotations and seed give the
    same split whatever the order of the rows; another seed may give another.
    """
    annotations = _toy_annotations()
    train, val = split(annotations.copy(), 4, 0)
    for name, part in (("train", train), ("val", val)):
        if not hasattr(part, "columns") or not {"label", "youtube_id", "time_start", "time_end"} <= set(part.columns):
            raise ExerciseError(f"{name} should be a DataFrame with the annotations' columns (label, youtube_id, ...).")
    counts = val["label"].value_counts().to_dict()
    expected = {"archery": 4, "bowling": 4, "juggling balls": 3}
    if counts != expected:
        raise ExerciseError(f"val has {counts} clips per class, expected {expected}: take val_per_class clips of "
                            "every class (all of them when a class has fewer).", credit=1/7)
    if set(_keys(train)) & set(_keys(val)):
        raise ExerciseError("some clips are in both train and val; a clip must be in exactly one of them.", credit=2/7)
    if sorted(_keys(train) + _keys(val)) != _keys(annotations):
        raise ExerciseError(f"train and val hold {len(train) + len(val)} clips together, the annotations "
                            f"{len(annotations)}: every clip not in val belongs to train.", credit=3/7)
    again = split(annotations.copy(), 4, 0)[1]
    if _keys(again) != _keys(val):
        raise ExerciseError("two calls with the same inputs give different splits: draw with a generator seeded "
                            "by `seed` (e.g. random.Random(seed)), not the global random state.", credit=4/7)
    shuffled = annotations.sample(frac=1.0, random_state=1).reset_index(drop=True)
    if _keys(split(shuffled, 4, 0)[1]) != _keys(val):
        raise ExerciseError("the split changes when the same rows come in another order: sort each class's clips "
                            "by (youtube_id, time_start, time_end) before drawing.", credit=5/7)
    if all(_keys(split(annotations.copy(), 4, seed)[1]) == _keys(val) for seed in (1, 2, 3)):
        raise ExerciseError("the seed has no effect: seeds 0 to 3 give the same val clips. Draw the val clips "
                            "with a generator seeded by `seed`.", credit=6/7)
    return _passed("deterministic per-class split")


# --- scaling up and visualising diffusion (notebooks 6 and 7) -------------------

def check_flip_flow(flip_flow) -> bool:
    """``flip_flow(clip (2, T, H, W))``: the horizontal mirror of a centred flow clip (x negated, y kept)."""
    cases = ((2, 3, 5, 7), (2, 1, 4, 4))
    for i, shape in enumerate(cases):
        with _part(i, len(cases)):
            clip = torch.randn(shape, generator=_seeded(i))
            got = flip_flow(clip.clone())
            _shape("flip_flow(clip)", got, shape, "Mirror the frames; keep the (2, T, H, W) layout.")
            if _close(got, FlowHorizontalFlip(p=1.0)(clip)):
                continue
            if _close(got, clip.flip(-1)):
                raise ExerciseError("you mirrored the frames but kept the x component: in the mirror image what "
                                    "moved right moves left, so x changes sign (y does not).")
            if _close(got, -clip.flip(-1)):
                raise ExerciseError("you negated both components; only x changes sign in a horizontal mirror.")
            if _close(got, clip.flip(-2) * clip.new_tensor([1.0, -1.0]).view(2, 1, 1, 1)):
                raise ExerciseError("that is the vertical flip (rows mirrored, y negated); mirror the columns (the "
                                    "last axis) and negate x.")
            raise ExerciseError("flip_flow(clip) differs from clip.flip(-1) with channel 0 (x) negated.")
    return _passed("horizontal flip of a flow clip")


def check_workers_needed(workers_needed) -> bool:
    """``workers_needed(target, per_worker)``: the fewest whole workers whose summed rate reaches ``target``."""
    cases = [(100.0, 12.0, 9), (100.0, 25.0, 4), (50.0, 7.0, 8), (3.0, 40.0, 1), (96.0, 32.0, 3)]
    for seed in range(3):                                  # drawn cases: others when the grader runs the check
        rate, workers, short = _draw(40 + seed, 2, 40) + _draw(50 + seed, 1, 30) + _draw(60 + seed, 0, 1)
        cases.append((float(rate * workers - short), float(rate), workers))   # short: just under a multiple
    for i, (target, rate, expected) in enumerate(cases):
        with _part(i, len(cases)):
            got = workers_needed(target, rate)
            if isinstance(got, float) and got.is_integer():
                got = int(got)
            if not isinstance(got, int) or isinstance(got, bool):
                raise ExerciseError(f"workers_needed({target:g}, {rate:g}) returned {got!r}; a number of workers is "
                                    "a whole number (an int).")
            if got == expected:
                continue
            if got == round(rate / target) or got == math.ceil(rate / target):
                raise ExerciseError(f"workers_needed({target:g}, {rate:g}) = {got}: the division is upside down; "
                                    "workers = target rate / one worker's rate.")
            if got == math.floor(target / rate) or got == round(target / rate):
                raise ExerciseError(f"workers_needed({target:g}, {rate:g}) = {got}, but {got} workers give only "
                                    f"{got * rate:g} clips/s: round *up* (math.ceil), a fraction of a worker is a worker.")
            if got == 0:
                raise ExerciseError(f"workers_needed({target:g}, {rate:g}) = 0: at least one worker must decode.")
            raise ExerciseError(f"workers_needed({target:g}, {rate:g}) = {got}, expected {expected}.")
    return _passed("workers needed for a target rate")


def check_scaled_lr(scaled_lr) -> bool:
    """``scaled_lr(base_lr, lr_batch, batch_per_process, processes, accumulate)``: the linear scaling rule.

    The same rule as ``lgd_tutorial.builders.lr_at``: base_lr x (batch x processes x accumulate) / lr_batch.
    """
    cases = [(0.04, 256, 16, 4, 2), (0.04, 256, 16, 32, 1), (0.05, 16, 16, 1, 1), (0.1, 64, 8, 2, 3)]
    for seed in range(3):                                  # drawn cases: others when the grader runs the check
        lr_batch, batch, processes, accumulate = _draw(70 + seed, 1, 9, 4)
        cases.append((0.01 * _draw(80 + seed, 1, 20)[0], 16 * lr_batch, 2 * batch, processes, accumulate))
    for i, (base, lr_batch, batch, processes, accumulate) in enumerate(cases):
        with _part(i, len(cases)):
            got = scaled_lr(base, lr_batch, batch, processes, accumulate)
            expected = base * batch * processes * accumulate / lr_batch
            args = f"scaled_lr({base}, {lr_batch}, {batch}, {processes}, {accumulate})"
            if not isinstance(got, (int, float)) or isinstance(got, bool):
                raise ExerciseError(f"{args} returned {got!r}; a learning rate is a number.")
            if math.isclose(got, expected, rel_tol=1e-6):
                continue
            if math.isclose(got, base * batch * processes / lr_batch, rel_tol=1e-6):
                raise ExerciseError(f"{args} = {got:g}, expected {expected:g}: the accumulation steps are missing; "
                                    "each optimizer step sees batch x processes x accumulate clips.")
            if math.isclose(got, base * batch * accumulate / lr_batch, rel_tol=1e-6):
                raise ExerciseError(f"{args} = {got:g}, expected {expected:g}: the number of processes is missing; "
                                    "DDP averages the gradients of all processes, so the global batch counts them all.")
            if math.isclose(got, base * lr_batch / (batch * processes * accumulate), rel_tol=1e-6):
                raise ExerciseError(f"{args} = {got:g}, expected {expected:g}: the ratio is upside down; a larger "
                                    "global batch takes a *larger* learning rate.")
            raise ExerciseError(f"{args} = {got:g}, expected base_lr x global batch / lr_batch = {expected:g}.")
    return _passed("linearly scaled learning rate")


def _taps_for_ratio_check():

    return collect_taps(_trained_looking_tiny(), torch.randn(2, 3, 4, 32, 32, generator=_seeded(1)))


def check_global_to_local_ratio(ratio_map) -> bool:
    """``ratio_map(block_taps)`` -> (N, T, H, W): ||U(W_xg g_new)||_C / ||F(x) + S(x)||_C at every position.

    ``block_taps`` is one entry of ``collect_taps(model, clip).blocks``, a ``BlockTaps`` (attributes
    ``local``, ``residual``, ``global_to_local``, ...). The norms are taken over the channels.
    """
    record = _taps_for_ratio_check()
    for taps in record.blocks:
        name = taps.name
        n, c, t, h, w = taps.residual.shape
        got = ratio_map(taps)
        _shape(f"ratio_map(taps of {name})", got, (n, t, h, w),
               "One number per clip and position: take the norm over the channel axis (dim 1).")
        if _close(got, global_to_local_ratio(taps, "residual")):
            continue
        term, residual = taps.global_to_local, taps.residual
        if _close(got, global_to_local_ratio(taps, "local")):
            raise ExerciseError(f"{name}: you divided by the block's output (local); the reference is the local "
                                "activation *before* the global term is added, F(x) + S(x) (taps.residual).")
        if _close(got, residual.norm(dim=1) / term.norm(dim=1).clamp_min(1e-6)):
            raise ExerciseError(f"{name}: the ratio is upside down: |global-to-local term| / |F(x) + S(x)|.")
        if _close(got, term.abs().mean(1) / residual.abs().mean(1).clamp_min(1e-6)):
            raise ExerciseError(f"{name}: you compared mean absolute values; use the Euclidean norm over the "
                                "channels, .norm(dim=1).")
        raise ExerciseError(f"{name}: the values differ from ||taps.global_to_local||_C / "
                            "||taps.residual||_C at each (t, h, w).")
    return _passed("global-to-local ratio map")


# --- the central claim: cutting the global path, and what a counterfactual can show ---------------

def _trained_looking_tiny(seed: int = 2):
    """A teaching model whose global-to-local terms differ from clip to clip (W_xg's last weight not zero)."""
    torch.manual_seed(CASE_SEED)
    model = build_model("lgd3d_tiny", num_classes=3).eval()
    with torch.no_grad():
        for block in model.blocks():
            block.global_to_local[-1].weight.normal_(0, 0.2, generator=_seeded(seed))
    return model


def check_cut_global_to_local(cut) -> bool:
    """``cut(model)`` -> the list of forward-hook handles it registered, one per block with a global-to-local
    term, each making that block's ``tap_global_to_local`` output zeros. Removing the handles restores the model."""
    model = _trained_looking_tiny()
    clip = torch.randn(2, 3, 8, 32, 32, generator=_seeded(1))
    with torch.no_grad():
        intact = model(clip)
        with cut_paths(model):
            expected = model(clip)
        handles = cut(model)
        if not isinstance(handles, (list, tuple)) or not all(hasattr(h, "remove") for h in handles):
            raise ExerciseError("cut(model) must return the list of handles that register_forward_hook gave you, "
                                "so the caller can remove them.")
        got = model(clip)
        for handle in handles:
            handle.remove()
        after = model(clip)
    if _close(got, intact):
        raise ExerciseError("the logits did not change: a forward hook replaces a module's output only when it "
                            "returns the new value (return torch.zeros_like(output)).")
    if not _close(got, expected):
        raise ExerciseError("the logits differ from those with every global-to-local term zeroed: hook each "
                            "block's tap_global_to_local (model.blocks()), and only that module.")
    if not _close(after, intact):
        raise ExerciseError("after removing the handles you returned the model is still cut: return every handle.",
                            credit=0.5)
    plain = build_model("p3d_tiny", num_classes=3)
    if len(cut(plain)) != 0:
        raise ExerciseError("a network without diffusion has no global-to-local term: cut(model) should register "
                            "nothing there (its blocks' tap_global_to_local is None).", credit=0.5)
    return _passed("cutting the global-to-local path with forward hooks")


def check_outside_reach(outside_max) -> bool:
    """``outside_max(change, reach)`` -> one float per block: the largest change at the positions whose receptive
    field cannot reach the moved region (``~reach``), 0.0 for a block where every position can reach it.

    ``change``: per block (N, T, H, W), how much each local feature moved; ``reach``: per block (T, H, W) bool.
    """
    g = _seeded(3)
    change = [torch.rand(2, 2, 4, 4, generator=g), torch.rand(2, 2, 2, 2, generator=g),
              torch.rand(2, 2, 1, 1, generator=g)]
    reach = [torch.rand(2, 4, 4, generator=g) > 0.5, torch.zeros(2, 2, 2, dtype=torch.bool),
             torch.ones(2, 1, 1, dtype=torch.bool)]
    expected = [float(c[:, ~r].max()) if (~r).any() else 0.0 for c, r in zip(change, reach)]
    got = outside_max(change, reach)
    if not isinstance(got, (list, tuple)) or len(got) != len(expected):
        raise ExerciseError(f"return one number per block ({len(expected)} here), got {got!r}.")
    for i, (value, want) in enumerate(zip(got, expected)):
        c, r = change[i], reach[i]
        if math.isclose(float(value), want, rel_tol=1e-6, abs_tol=1e-9):
            continue
        if r.any() and math.isclose(float(value), float(c[:, r].max()), rel_tol=1e-6):
            raise ExerciseError(f"block {i}: you took the positions *inside* the reach; the question is about "
                                "those the region cannot reach, ~reach.")
        if (~r).any() and math.isclose(float(value), float(c[:, ~r].mean()), rel_tol=1e-6):
            raise ExerciseError(f"block {i}: that is the mean outside the reach; take the largest change (max).")
        if not (~r).any():
            raise ExerciseError(f"block {i}: every position reaches the region, so nothing is outside: return 0.0.")
        raise ExerciseError(f"block {i}: expected {want:.6f}, the largest change where ~reach, got {float(value):.6f}.")
    return _passed("the largest change outside the receptive-field reach")


# --- other ways to bring in global context ------------------------------------------

def _reference_global_context():
    """A global-context block with every weight drawn (its zero-initialised last layer would hide the term), and
    a map of a case-dependent shape."""
    channels, frames, side = _draw(7, 2, 5, 3)
    channels *= 8
    torch.manual_seed(1000 * CASE_SEED + 7)
    block = GlobalContext(channels).eval()
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0, 0.5)
                module.bias.normal_(0, 0.5)
    x = torch.randn(2, channels, frames, side, side + 1, generator=_seeded(8))
    return block, x


def _diagnose_global_context(block, x: Tensor, got: Tensor) -> tuple[str, float]:
    """Which slip the student's output matches, and the credit it is worth."""
    flat = x.flatten(2)
    logits = block.key(flat.transpose(1, 2)).squeeze(-1)                     # (N, L)
    attention = torch.softmax(logits, -1)
    pooled = torch.einsum("ncl,nl->nc", flat, attention)

    def transform(c, norm=True, relu=True):
        h = block.reduce(c)
        h = block.norm(h) if norm else h
        return block.expand(torch.relu(h) if relu else h)[:, :, None, None, None]

    right = transform(pooled)
    candidates = [
        ("you returned only the context term: the block adds it to its input, x + U(transform(context))",
         right.expand_as(x), 0.5),
        ("the context is a plain average over positions; GC pools with attention weights "
         "softmax over positions of w_k . x_j (block.key)", x + transform(flat.mean(-1)), 0.5),
        ("the attention weights were not normalised: take a softmax over the positions (T*H*W), not the raw "
         "w_k . x_j", x + transform(torch.einsum("ncl,nl->nc", flat, logits)), 0.5),
        ("the LayerNorm of the transform is missing: W2 ReLU(LN(W1 c))", x + transform(pooled, norm=False), 0.5),
        ("the ReLU of the transform is missing: W2 ReLU(LN(W1 c))", x + transform(pooled, relu=False), 0.5),
        ("the context multiplies the map; GC *adds* it to every position (multiplying is squeeze-and-excitation's "
         "gate)", x * right, 0.5),
    ]
    for message, candidate, credit in candidates:
        if candidate.shape == got.shape and _close(got, candidate):
            return message, credit
    return "the output differs from x + U(W2 ReLU(LN(W1 sum_j a_j x_j))) with a = softmax_j(w_k . x_j)", 0.0


def check_global_context(gc_forward) -> bool:
    """``gc_forward(block, x)`` -> the global-context block's output for a map x (N, C, T, H, W), using the
    block's layers: ``block.key`` (w_k, C -> 1), ``block.reduce`` (W1), ``block.norm`` (LN), ``block.expand``
    (W2); all ``nn.Linear``/``nn.LayerNorm`` on the last dimension."""
    block, x = _reference_global_context()
    with torch.no_grad():
        expected = block(x.clone())
        got = gc_forward(block, x.clone())
        _shape("the output", got, tuple(expected.shape),
               "The block keeps the map's shape: it adds one C-vector to every position.")
        if not _close(got, expected):
            message, credit = _diagnose_global_context(block, x, got)
            raise ExerciseError(message + ".", credit=credit)
        other = torch.randn(x.shape, generator=_seeded(9))
        if not _close(gc_forward(block, other.clone()), block(other)):
            raise ExerciseError("right on one map, wrong on another: compute the context from the map you are "
                                "given, not from a value you kept.", credit=0.5)
    return _passed("global-context block (attention pooling, transform, addition)")


# --- an intervention ------------------------------------------------------------------------------

def check_fixed_mean_logits(fixed_mean_logits) -> bool:
    """``fixed_mean_logits(model, train_clips, clips, block)`` -> the local head's logits (N, K) on ``clips`` with
    block ``block``'s (an index into ``model.blocks()``) global-to-local term U(W_xg g) replaced by its mean over
    ``train_clips``; every other block intact, and the model left as it was found."""
    model = _trained_looking_tiny(seed=4)
    size = 32 + 8 * _draw(11, 0, 2)[0]
    train = torch.randn(6, 3, 8, size, size, generator=_seeded(12))
    clips = torch.randn(3, 3, 8, size, size, generator=_seeded(13))
    blocks = len(model.blocks())
    with torch.no_grad():
        intact = model(clips, return_heads=True)["local_logits"]
        means = mean_global_to_local(model, train)
        for case, block in enumerate(_draw(14, 0, blocks - 1, 2)):
            with fix_global_to_local(model, [m if j == block else None for j, m in enumerate(means)]):
                expected = model(clips, return_heads=True)["local_logits"]
            got = fixed_mean_logits(model, train, clips, block)
            _shape("the logits", got, tuple(expected.shape), "Return the local head's logits, one row per clip.")
            if _close(got, expected):
                continue
            with fix_global_to_local(model, [torch.zeros_like(m) if j == block else None for j, m in enumerate(means)]):
                zeroed = model(clips, return_heads=True)["local_logits"]
            with fix_global_to_local(model, means):
                everywhere = model(clips, return_heads=True)["local_logits"]
            wrong_mean = mean_global_to_local(model, clips)
            with fix_global_to_local(model, [m if j == block else None for j, m in enumerate(wrong_mean)]):
                from_eval = model(clips, return_heads=True)["local_logits"]
            combined = None
            with fix_global_to_local(model, [m if j == block else None for j, m in enumerate(means)]):
                combined = model(clips)
            slips = [(intact, "the logits are the intact model's: a forward hook replaces a module's output only when "
                              "it returns the new tensor (hook block.tap_global_to_local)"),
                     (zeroed, "you zeroed the term; fix it at its mean over train_clips, so only what it says about "
                              "each clip is removed"),
                     (everywhere, f"you fixed the term in every block; only block {block} should change"),
                     (from_eval, "the mean comes from the clips you evaluate; take it over train_clips"),
                     (combined, "those are the combined logits (local + global head); return the local head's: "
                                "model(clips, return_heads=True)['local_logits']")]
            for candidate, message in slips:
                if _close(got, candidate):
                    raise ExerciseError(f"block {block}: {message}.", credit=case / 3)
            raise ExerciseError(f"block {block}: the logits differ from the local head's with that block's "
                                "U(W_xg g) fixed at its mean over train_clips.", credit=case / 3)
        after = model(clips, return_heads=True)["local_logits"]
    if not _close(after, intact):
        raise ExerciseError("the model still has the term fixed after your function returned: remove every hook "
                            "you registered (handle.remove()).", credit=2 / 3)
    return _passed("fixing one block's global-to-local term at its mean (an intervention)")
