"""Checks of notebooks 1 and 5: receptive fields, video-level accuracy, a deterministic per-class split."""

import random

import pytest

from lgd_tutorial import exercises
from lgd_tutorial.exercises import ExerciseError


def receptive_field(kernels, strides):
    size, jump = 1, 1
    for kernel, stride in zip(kernels, strides):
        size, jump = size + (kernel - 1) * jump, jump * stride
    return size


def test_a_correct_receptive_field_passes(capsys):
    assert exercises.check_receptive_field(receptive_field)
    assert "[ok] receptive field" in capsys.readouterr().out


def test_a_receptive_field_that_ignores_strides_is_told_so():
    with pytest.raises(ExerciseError, match="you ignore the strides"):
        exercises.check_receptive_field(lambda kernels, strides: 1 + sum(k - 1 for k in kernels))


def video_accuracy(clip_logits, labels):
    return (clip_logits.softmax(-1).mean(1).argmax(-1) == labels).float().mean()


def test_averaged_softmax_passes_as_a_tensor_or_a_float():
    assert exercises.check_video_accuracy(video_accuracy)
    assert exercises.check_video_accuracy(lambda logits, labels: float(video_accuracy(logits, labels)))


@pytest.mark.parametrize("wrong, named", [
    (lambda logits, labels: (logits.mean(1).argmax(-1) == labels).float().mean(), "you average the logits"),
    (lambda logits, labels: (logits[:, 0].argmax(-1) == labels).float().mean(), "only the first view"),
    (lambda logits, labels: (logits.argmax(-1).mode(1).values == labels).float().mean(), "majority vote"),
    (lambda logits, labels: 100 * video_accuracy(logits, labels), "percentage"),
])
def test_a_wrong_video_accuracy_is_told_what_it_does(wrong, named):
    with pytest.raises(ExerciseError, match=named):
        exercises.check_video_accuracy(wrong)


def split_per_class(annotations, val_per_class, seed):
    val_rows = []
    for label, rows in sorted(annotations.groupby("label")):
        rows = rows.sort_values(["youtube_id", "time_start", "time_end"])
        picked = random.Random(f"{seed}-{label}").sample(range(len(rows)), min(val_per_class, len(rows)))
        val_rows += list(rows.index[sorted(picked)])
    return annotations.drop(index=val_rows), annotations.loc[val_rows]


def test_a_seeded_sorted_split_passes():
    assert exercises.check_split_per_class(split_per_class)


def test_a_split_that_depends_on_row_order_is_told_to_sort():
    def by_position(annotations, val_per_class, seed):
        picked = []
        for _, rows in annotations.groupby("label"):
            picked += list(rows.index[random.Random(seed).sample(range(len(rows)), min(val_per_class, len(rows)))])
        return annotations.drop(index=picked), annotations.loc[picked]
    with pytest.raises(ExerciseError, match="another order"):
        exercises.check_split_per_class(by_position)


def test_a_split_that_takes_too_few_or_overlaps_is_told_which():
    with pytest.raises(ExerciseError, match="clips per class"):
        exercises.check_split_per_class(lambda a, n, s: (a.iloc[n:], a.iloc[:n]))
    with pytest.raises(ExerciseError, match="both train and val"):
        exercises.check_split_per_class(lambda a, n, s: (a, split_per_class(a, n, s)[1]))


def test_an_unseeded_split_is_told_to_use_the_seed():
    with pytest.raises(ExerciseError, match="seed has no effect"):
        exercises.check_split_per_class(lambda a, n, s: split_per_class(a, n, 0))
