"""The figure check run at save time: overlapping or cut-off text and maps without a colorbar are caught."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from lgd_tutorial.viz.figcheck import NO_COLORBAR, FigureProblem, check_figure, figure_problems
from lgd_tutorial.viz.render import save_figure


def _good():
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.random.default_rng(0).random((6, 6)), cmap="viridis")
    fig.colorbar(image, ax=ax, label="value")
    ax.set(title="a map", xlabel="x", ylabel="y")
    return fig


def test_a_clean_figure_has_no_problems():
    assert figure_problems(_good()) == []


def test_overlapping_text_is_named():
    fig = _good()
    ax = fig.axes[0]
    ax.text(0.4, 0.5, "first label", transform=ax.transAxes)
    ax.text(0.45, 0.5, "second label", transform=ax.transAxes)
    assert any("'first label' overlaps text 'second label'" in p for p in figure_problems(fig))


def test_text_beyond_the_canvas_is_named():
    fig = _good()
    fig.text(0.9, 0.5, "a note that runs off the right edge")
    assert any("cut off" in p and "a note that runs" in p for p in figure_problems(fig))


def test_a_map_without_colorbar_is_named_unless_it_opts_out_or_shares_one():
    fig = Figure(figsize=(7, 3), layout="constrained")
    left, right = fig.subplots(1, 2)
    data = np.random.default_rng(0).random((5, 5))
    left.imshow(data, vmin=0, vmax=1)
    left.set_title("left map")
    assert figure_problems(fig) == ["the map in 'left map' has no colorbar"]
    shown = right.imshow(data, vmin=0, vmax=1)
    fig.colorbar(shown, ax=[left, right])                             # one colorbar for both: same cmap and limits
    assert figure_problems(fig) == []
    other = Figure(figsize=(3, 3), layout="constrained")
    other.subplots().imshow(data).set_gid(NO_COLORBAR)
    assert figure_problems(other) == []
    rgb = Figure(figsize=(3, 3), layout="constrained")
    rgb.subplots().imshow(np.zeros((4, 4, 3)))                        # a picture needs no colorbar
    assert figure_problems(rgb) == []


def test_ticks_outside_the_view_do_not_count():
    fig = Figure(figsize=(4, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set_xticks(range(-5, 50))                                       # most of them far outside the limits
    ax.set_xlim(0, 1)
    assert figure_problems(fig) == []


def test_a_planted_bad_figure_fails_the_save_in_error_mode_and_warns_otherwise(tmp_path, monkeypatch):
    fig = _good()
    fig.axes[0].set_title("a title far too long for a figure this narrow, running off both sides of it")
    monkeypatch.setenv("LGD_FIGURE_CHECK", "error")
    with pytest.raises(FigureProblem, match="bad.png: text 'a title far too long"):
        save_figure(fig, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
    monkeypatch.setenv("LGD_FIGURE_CHECK", "warn")
    with pytest.warns(UserWarning, match="cut off"):
        save_figure(fig, tmp_path / "bad.png")
    assert (tmp_path / "bad.png").exists()
    monkeypatch.setenv("LGD_FIGURE_CHECK", "off")
    assert check_figure(fig) == []
    monkeypatch.setenv("LGD_FIGURE_CHECK", "loud")
    with pytest.raises(ValueError, match="LGD_FIGURE_CHECK must be one of"):
        check_figure(fig)


def test_a_figure_saved_twice_from_the_same_data_has_the_same_bytes_and_no_version_chunk(tmp_path):
    """Re-rendering a shipped figure from the same results must show no diff: no varying PNG metadata."""
    first = save_figure(_good(), tmp_path / "a.png").read_bytes()
    second = save_figure(_good(), tmp_path / "b.png").read_bytes()
    assert first == second
    assert b"Software" not in first and b"Matplotlib" not in first
