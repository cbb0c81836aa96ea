"""Checks of the exercises of notebooks 6 and 7: a correct answer passes, a typical mistake is named."""

import math

import pytest
import torch

from lgd_tutorial import exercises
from lgd_tutorial.exercises import ExerciseError
from lgd_tutorial.viz.diffusion import global_to_local_ratio


def test_workers_needed_passes_the_ceiling_and_names_rounding_down_and_the_inverted_division(capsys):
    assert exercises.check_workers_needed(lambda target, rate: max(1, math.ceil(target / rate)))
    assert "[ok] workers needed" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match=r"round \*up\*"):
        exercises.check_workers_needed(lambda target, rate: int(target // rate))
    with pytest.raises(ExerciseError, match="upside down"):
        exercises.check_workers_needed(lambda target, rate: math.ceil(rate / target))
    with pytest.raises(ExerciseError, match="whole number"):
        exercises.check_workers_needed(lambda target, rate: target / rate)


@pytest.mark.parametrize("wrong, named", [
    (lambda base, lr_batch, batch, processes, accumulate: base * batch * processes / lr_batch, "accumulation steps"),
    (lambda base, lr_batch, batch, processes, accumulate: base * batch * accumulate / lr_batch, "number of processes"),
    (lambda base, lr_batch, batch, processes, accumulate: base * lr_batch / (batch * processes * accumulate),
     "upside down"),
])
def test_scaled_lr_names_the_missing_factor(wrong, named):
    assert exercises.check_scaled_lr(lambda base, lr_batch, batch, processes, accumulate:
                                     base * batch * processes * accumulate / lr_batch)
    with pytest.raises(ExerciseError, match=named):
        exercises.check_scaled_lr(wrong)


def test_ratio_map_passes_the_reference_and_names_the_wrong_reference_the_inversion_and_the_axis():
    assert exercises.check_global_to_local_ratio(
        lambda taps: taps.global_to_local.norm(dim=1) / (taps.residual.norm(dim=1) + 1e-6))
    with pytest.raises(ExerciseError, match=r"F\(x\) \+ S\(x\)"):
        exercises.check_global_to_local_ratio(lambda taps: global_to_local_ratio(taps, "local"))
    with pytest.raises(ExerciseError, match="upside down"):
        exercises.check_global_to_local_ratio(
            lambda taps: taps.residual.norm(dim=1) / taps.global_to_local.norm(dim=1))
    with pytest.raises(ExerciseError, match="channel axis"):
        exercises.check_global_to_local_ratio(lambda taps: taps.global_to_local.norm(dim=2))


def _hooks(make_output):
    def cut(model):
        return [block.tap_global_to_local.register_forward_hook(lambda m, i, o: make_output(o))
                for block in model.blocks() if block.tap_global_to_local is not None]
    return cut


def test_cut_global_to_local_check_accepts_zeros_and_names_each_mistake():
    import torch

    assert exercises.check_cut_global_to_local(_hooks(torch.zeros_like))
    with pytest.raises(ExerciseError, match="did not change") as error:
        exercises.check_cut_global_to_local(_hooks(lambda o: None))            # a hook that returns nothing
    assert error.value.credit == 0
    with pytest.raises(ExerciseError, match="differ from those with every global-to-local term zeroed"):
        exercises.check_cut_global_to_local(_hooks(lambda o: -o))

    def forgets_handles(model):
        _hooks(torch.zeros_like)(model)
        return []
    with pytest.raises(ExerciseError) as error:
        exercises.check_cut_global_to_local(forgets_handles)
    assert error.value.credit == 0.5 and "return every handle" in str(error.value)


def test_outside_reach_check_names_inside_and_mean():
    right = lambda change, reach: [float(c[:, ~r].max()) if (~r).any() else 0.0 for c, r in zip(change, reach)]  # noqa: E731
    assert exercises.check_outside_reach(right)
    with pytest.raises(ExerciseError, match="inside"):
        exercises.check_outside_reach(lambda change, reach: [float(c[:, r].max()) if r.any() else 0.0
                                                             for c, r in zip(change, reach)])
    with pytest.raises(ExerciseError, match="mean"):
        exercises.check_outside_reach(lambda change, reach: [float(c[:, ~r].mean()) if (~r).any() else 0.0
                                                             for c, r in zip(change, reach)])


def _fixed_mean_answer(model, train_clips, clips, block, remove=True, zero=False):
    tap = model.blocks()[block].tap_global_to_local
    seen = []
    handle = tap.register_forward_hook(lambda m, i, o: seen.append(o[:, :, 0, 0, 0]))
    model(train_clips)
    handle.remove()
    mean = torch.cat(seen).mean(0)
    handle = tap.register_forward_hook(lambda m, i, o: torch.zeros_like(o) if zero
                                       else mean.view(1, -1, 1, 1, 1).expand_as(o))
    out = model(clips, return_heads=True)["local_logits"]
    if remove:
        handle.remove()
    return out


def test_the_intervention_check_passes_hooks_and_names_zeroing_and_leftover_hooks():
    with torch.no_grad():
        assert exercises.check_fixed_mean_logits(_fixed_mean_answer)
        with pytest.raises(exercises.ExerciseError, match="you zeroed the term"):
            exercises.check_fixed_mean_logits(lambda *a: _fixed_mean_answer(*a, zero=True))
        with pytest.raises(exercises.ExerciseError, match="remove every hook") as error:
            exercises.check_fixed_mean_logits(lambda *a: _fixed_mean_answer(*a, remove=False))
    assert error.value.credit == pytest.approx(2 / 3)
