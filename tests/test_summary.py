"""`lgd summary`: parameters per part and FLOPs."""

import json

from lgd_tutorial.models import build_model
from lgd_tutorial.cli import main as lgd
from lgd_tutorial.models.summary import parameter_breakdown, summarize


def test_parts_add_up_to_the_total_and_lgd_parts_vanish_without_diffusion():
    for name in ("lgd3d_tiny", "p3d_tiny", "lgd2d_tiny"):
        params = parameter_breakdown(build_model(name, 10))
        parts = sum(v for k, v in params.items() if k != "total")
        assert parts == params["total"], name
    assert parameter_breakdown(build_model("p3d_tiny", 10))["LGD projections"] == 0
    assert parameter_breakdown(build_model("lgd3d_tiny", 10))["LGD projections"] > 0
    assert parameter_breakdown(build_model("lgd2d_tiny", 10))["temporal convs"] == 0


def test_flops_grow_with_the_clip():
    small = summarize("lgd3d_tiny", frames=8, size=64, num_classes=10)["gflops"]
    long = summarize("lgd3d_tiny", frames=16, size=64, num_classes=10)["gflops"]
    assert 1.9 < long / small < 2.1


def test_cli_prints_the_breakdown_and_flops(capsys):
    assert lgd(["summary", "lgd3d_tiny", "--frames", "8", "--size", "64", "--num-classes", "5"]) == 0
    out = capsys.readouterr().out
    for part in ("backbone convs", "temporal convs", "LGD projections", "classifier", "total", "FLOPs"):
        assert part in out
    assert lgd(["summary", "p3d_tiny", "--size", "64", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"]["LGD projections"] == 0 and data["gflops"] > 0
