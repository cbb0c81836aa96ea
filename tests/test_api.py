"""The public API: every exported name resolves, and importing the package stays cheap."""

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["lgd_tutorial", "lgd_tutorial.data", "lgd_tutorial.models", "lgd_tutorial.viz",
                                     "lgd_tutorial.exercises"])
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__, f"{package} exports nothing"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    assert set(module.__all__) <= set(dir(module))


def test_the_first_names_a_user_needs_come_from_the_top_level():
    from lgd_tutorial import (ClipDataset, build_model, evaluate, list_models, load_config, load_pretrained,
                              train)
    from lgd_tutorial.evaluation import evaluate as evaluate_function
    from lgd_tutorial.training import train as train_function

    assert train is train_function and evaluate is evaluate_function
    assert "lgd3d_r50" in list_models() and callable(build_model) and callable(load_config)
    assert ClipDataset.__name__ == "ClipDataset" and callable(load_pretrained)


def test_an_unknown_name_is_an_attribute_error():
    import lgd_tutorial

    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        lgd_tutorial.nothing_here  # noqa: B018


def test_importing_the_package_does_not_import_torch():
    code = "import sys, lgd_tutorial, lgd_tutorial.data, lgd_tutorial.viz; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_no_exported_name_is_shadowed_by_a_submodule_of_the_same_name():
    """``from lgd_tutorial import train`` must give the function whatever was imported before."""
    import pkgutil

    import lgd_tutorial

    submodules = {m.name for m in pkgutil.iter_modules(lgd_tutorial.__path__)}
    assert not set(lgd_tutorial.__all__) & submodules
