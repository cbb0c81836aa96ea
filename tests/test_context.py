"""Squeeze-excitation, global-context and non-local blocks beside LGD (``models.context``), their budget, their
measurements in the reach study and the global-context exercise."""

import pandas as pd
import pytest
import torch

from lgd_tutorial.exercises import ExerciseError, check_global_context
from lgd_tutorial.models import build_model, load_pretrained, parameter_breakdown
from lgd_tutorial.models.context import CONTEXTS, GlobalContext, NonLocal, SqueezeExcitation
from lgd_tutorial.models.pretrained import save_pretrained
from lgd_tutorial.viz.causal import attention_distances, fix_context, js_distance, mean_context_term

TINY = {"se": "se_p3d_tiny", "gc": "gc_p3d_tiny", "nonlocal": "nonlocal_p3d_tiny"}
R50 = {"se": "se_p3d_r50", "gc": "gc_p3d_r50", "nonlocal": "nonlocal_p3d_r50"}


def _with_plain_weights(name):
    torch.manual_seed(0)
    plain = build_model("p3d_tiny", 3, pooled_global_head=True).eval()
    model = build_model(name, 3, pooled_global_head=True).eval()
    result = model.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == [] and all(".context." in k for k in result.missing_keys)
    return plain, model


@pytest.mark.parametrize("context", CONTEXTS)
def test_each_block_starts_as_the_identity_so_the_network_starts_as_the_plain_one(context):
    plain, model = _with_plain_weights(TINY[context])
    clip = torch.randn(2, 3, 8, 32, 48)
    with torch.no_grad():
        assert torch.equal(model(clip), plain(clip))


@pytest.mark.parametrize("context", CONTEXTS)
def test_a_trained_looking_block_changes_the_output(context):
    plain, model = _with_plain_weights(TINY[context])
    with torch.no_grad():
        for block in model.blocks():
            if block.context is not None:
                for p in block.context.parameters():
                    p.normal_(0, 0.3)
    clip = torch.randn(2, 3, 8, 32, 48)
    with torch.no_grad():
        assert not torch.allclose(model(clip), plain(clip))


def _placed(name):
    return {n: type(b.context).__name__ for n, b in build_model(name, 3).named_lgd_blocks() if b.context is not None}


def test_blocks_sit_where_their_papers_put_them():
    blocks = [n for n, _ in build_model("p3d_r50", 3).named_lgd_blocks()]
    assert _placed("se_p3d_r50") == dict.fromkeys(blocks, "SqueezeExcitation")
    assert _placed("gc_p3d_r50") == dict.fromkeys(blocks, "GlobalContext")
    # non-local: res3 and res4 (layer2, layer3), every other block from the stage's last: 2 + 3 = 5
    assert _placed("nonlocal_p3d_r50") == dict.fromkeys(["layer2.1", "layer2.3", "layer3.1", "layer3.3", "layer3.5"],
                                                        "NonLocal")
    assert _placed("nonlocal_p3d_tiny") == {"layer2.0": "NonLocal", "layer3.0": "NonLocal"}
    assert len(_placed("se_p3d_tiny")) == 4


def test_taps_carry_what_each_block_contributed_with_its_documented_shape():
    clip = torch.randn(2, 3, 8, 32, 48)
    for context, name in TINY.items():
        _, _, taps = build_model(name, 3).eval().forward_features(clip, return_taps=True)
        for tap in taps:
            if tap.context is None:
                continue
            if context == "nonlocal":
                assert tap.context.shape == tap.local.shape
            else:
                assert tap.context.shape == (2, tap.local.shape[1], 1, 1, 1)
    _, _, taps = build_model("p3d_tiny", 3).eval().forward_features(clip, return_taps=True)
    assert all(t.context is None for t in taps)


def test_non_local_attention_rows_are_distributions_over_the_subsampled_positions():
    block = NonLocal(16).eval()
    block.keep_attention = True
    x = torch.randn(2, 16, 2, 6, 8)
    block(x)
    assert block.attention.shape == (2, 2 * 6 * 8, 2 * 3 * 4)
    assert torch.allclose(block.attention.sum(-1), torch.ones(2, 96))


def test_squeeze_excitation_gate_starts_at_one_and_stays_within_zero_and_two():
    block = SqueezeExcitation(16)
    x = torch.randn(2, 16, 2, 4, 4)
    out, gate = block.contribute(x)
    assert torch.equal(gate, torch.ones_like(gate)) and torch.equal(out, x)
    with torch.no_grad():
        block.expand.weight.normal_(0, 10)
    _, gate = block.contribute(x)
    assert (gate > 0).all() and (gate < 2).all() and gate.std() > 0.1


def test_global_context_adds_one_vector_to_every_position():
    block = GlobalContext(16)
    with torch.no_grad():
        block.expand.weight.normal_(0, 1)
    x = torch.randn(2, 16, 2, 4, 4)
    out, term = block.contribute(x)
    added = out - x
    assert torch.allclose(added, added[:, :, :1, :1, :1].expand_as(added), atol=1e-6)


def test_bad_context_is_rejected_naming_the_choices():
    with pytest.raises(ValueError, match="context must be None or one of"):
        build_model("p3d_tiny", 3, context="attention")


def test_parameter_breakdown_counts_context_blocks_as_their_own_part_and_sums_to_the_total():
    for name in TINY.values():
        counts = parameter_breakdown(build_model(name, 10))
        assert counts["context blocks"] > 0
        assert sum(v for k, v in counts.items() if k != "total") == counts["total"]
    assert "context blocks" not in parameter_breakdown(build_model("lgd3d_tiny", 10))


def test_a_saved_context_model_loads_back_with_its_blocks(tmp_path):
    model = build_model("gc_p3d_tiny", 2, pooled_global_head=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    save_pretrained(model, tmp_path, "gc", {"classes": ["a", "b"], "frames": 8, "size": 32})
    loaded, info = load_pretrained("gc", tmp_path)
    assert info["build_args"]["context"] == "gc" and loaded.context == "gc"
    clip = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(clip), model.eval()(clip))


def test_js_distance_is_zero_for_equal_and_one_for_disjoint_distributions():
    p = torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    q = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    assert js_distance(p, p).item() == pytest.approx(0.0, abs=1e-6)
    assert js_distance(p, q).item() == pytest.approx(1.0, abs=1e-6)


def test_attention_distances_tell_query_independent_from_query_dependent_attention():
    torch.manual_seed(0)
    model = build_model("nonlocal_p3d_tiny", 2).eval()
    clips = torch.randn(6, 3, 8, 32, 48)
    with torch.no_grad():
        for block in model.blocks():
            if isinstance(block.context, NonLocal):
                block.context.theta.weight.zero_()            # every query scores the keys alike
    flat = attention_distances(model, clips, pairs=64)
    assert set(flat) == {"layer2.0", "layer3.0"}
    assert all(within < 1e-6 for within, _ in flat.values())              # one map for every query
    with torch.no_grad():
        for block in model.blocks():
            if isinstance(block.context, NonLocal):
                block.context.theta.weight.normal_(0, 3)
                block.context.phi.weight.normal_(0, 3)
    sharp = attention_distances(model, clips, pairs=64)
    assert all(within > 0.1 and across > 0.1 for within, across in sharp.values())
    assert all(b.context is None or b.context.attention is None for b in model.blocks())   # nothing kept after


def test_fixing_the_context_term_at_its_mean_or_at_identity():
    torch.manual_seed(0)
    model = build_model("se_p3d_tiny", 2).eval()
    with torch.no_grad():
        for block in model.blocks():
            block.context.expand.weight.normal_(0, 1)
    clips = torch.randn(4, 3, 8, 32, 48)
    means = mean_context_term(model, clips)
    assert all(m.shape[1:] == (1, 1, 1) for m in means)
    with torch.no_grad():
        intact = model(clips)
        with fix_context(model, means) as hooks:
            fixed = model(clips)
        assert hooks == 4 and not torch.allclose(fixed, intact)
        with fix_context(model, [torch.ones_like(m) for m in means]):
            ungated = model(clips)
        plain = build_model("p3d_tiny", 2).eval()
        plain.load_state_dict(model.state_dict(), strict=False)
        assert torch.allclose(ungated, plain(clips), atol=1e-6)
        assert torch.equal(model(clips), intact)                          # the hooks are gone


def _gc_answer(block, x, pool="attention", norm=True, add=True):
    flat = x.flatten(2)
    if pool == "attention":
        weights = torch.softmax(block.key(flat.transpose(1, 2)).squeeze(-1), -1)
        context = torch.einsum("ncl,nl->nc", flat, weights)
    else:
        context = flat.mean(-1)
    hidden = block.reduce(context)
    term = block.expand(torch.relu(block.norm(hidden) if norm else hidden))[:, :, None, None, None]
    return x + term if add else x * term


def test_the_global_context_check_passes_the_equation_and_names_each_slip():
    assert check_global_context(_gc_answer)
    for kwargs, fragment in (({"pool": "mean"}, "plain average"), ({"norm": False}, "LayerNorm"),
                             ({"add": False}, "multiplies the map")):
        with pytest.raises(ExerciseError, match=fragment) as error:
            check_global_context(lambda b, x: _gc_answer(b, x, **kwargs))
        assert error.value.credit == 0.5
    with pytest.raises(ExerciseError, match="shape"):
        check_global_context(lambda b, x: x.mean((2, 3, 4)))


def test_the_global_context_check_draws_other_shapes_for_hidden_cases():
    from lgd_tutorial.exercises import checks

    shapes = []
    for seed in (0, 5):
        checks.CASE_SEED = seed
        try:
            shapes.append(tuple(checks._reference_global_context()[1].shape))
        finally:
            checks.CASE_SEED = 0
    assert shapes[0] != shapes[1]


def test_budget_on_the_teaching_size_writes_a_table_and_its_report(tmp_path):
    from lgd_tutorial.experiments.context_budget import report, run

    table = run(tmp_path, sizes=("8x112",), repeats=2, log=None)
    assert list(table["model"]) == ["p3d_tiny", "lgd3d_tiny", "se_p3d_tiny", "gc_p3d_tiny", "nonlocal_p3d_tiny"]
    assert table.loc[0, "added_params"] == 0 and (table["added_params"][1:] > 0).all()
    assert table.loc[0, "time_ratio"] == 1.0
    assert (table["ratio_low"] <= table["time_ratio"]).all() and (table["time_ratio"] <= table["ratio_high"]).all()
    text = report(tmp_path)
    assert "`nonlocal_p3d_tiny` | non-local" in text and "at commit" in text
    assert pd.read_csv(tmp_path / "budget.csv").shape[0] == 5


def test_the_readme_shows_the_shipped_budget_table():
    from pathlib import Path

    from lgd_tutorial.experiments.context_budget import report

    root = Path(__file__).resolve().parents[1]
    table = pd.read_csv(root / "figures" / "context_budget" / "budget.csv")
    assert set(table["size"]) == {"16x224", "8x112"} and len(table) == 10
    assert (table["repeats"] >= 7).all() and (table["ratio_low"] <= table["ratio_high"]).all()
    assert " ".join(report(root / "figures" / "context_budget").split()) in " ".join((root / "README.md").read_text()
                                                                                     .split())
