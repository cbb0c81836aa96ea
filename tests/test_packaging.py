"""A normal (non-editable) install works outside the repository: every data file the package reads ships in the wheel."""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = r"""
import sys
from pathlib import Path
import lgd_tutorial
from lgd_tutorial import build_model, load_config, train, list_pretrained
from lgd_tutorial.data import load_classes, load_spec, SUBSETS_DIR

where = Path(lgd_tutorial.__file__).resolve()
assert sys.prefix in str(where), f"imported from {where}, not from the fresh environment {sys.prefix}"
assert callable(train) and callable(build_model)
classes = load_classes("kinetics400")
assert len(classes) == 400 and classes[0] == "abseiling", classes[:3]
assert len(load_classes("kinetics700")) == 700
cfg = load_config("tiny_synthetic_cpu")
assert cfg.model.arch == "lgd3d_tiny"
spec = load_spec(SUBSETS_DIR / "k400_50classes" / "subset.json")
assert spec.num_classes == 50
assert "lgd3d_tiny_beacon_both" in list_pretrained()
print("ok", where)
"""


RUN = r"""
import sys
from pathlib import Path
import lgd_tutorial
from lgd_tutorial.notebooks import run_notebook

assert sys.prefix in str(Path(lgd_tutorial.__file__).resolve())
run = run_notebook(sys.argv[1], out_dir=Path.cwd() / "executed", timeout=900)
print(run.ok, f"{run.seconds:.0f} s", run.error)
sys.exit(0 if run.ok else 1)
"""


def clean_env() -> dict:
    """This process's environment without what would point the fresh interpreter elsewhere (PYTHONPATH) or
    change where a notebook writes (LGD_*)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("LGD_")}


def fresh_install(tmp_path) -> Path:
    """Build the wheel from a copy of the tracked files (the build leaves nothing in the checkout), install it
    alone into a fresh venv, and return that venv's python. The package comes from the wheel; its dependencies
    (PyTorch and the rest) from this interpreter's environment, added after the fresh site-packages, so nothing
    is downloaded."""
    source = tmp_path / "source"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(source)], check=True, capture_output=True, timeout=600)
    wheel = next(wheels.glob("lgd_tutorial-*.whl"))

    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=600)
    fresh_site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                     capture_output=True, text=True, check=True).stdout.strip())
    (fresh_site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


@pytest.mark.slow
def test_the_wheel_installed_in_a_fresh_venv_has_its_class_lists_recipes_and_checkpoints(tmp_path):
    python = fresh_install(tmp_path)
    result = subprocess.run([python, "-c", CHECK], cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok") and str(tmp_path / "fresh") in result.stdout


@pytest.mark.slow
def test_notebooks_2_and_7_run_from_an_empty_folder_with_only_the_installed_wheel(tmp_path):
    """A student's copy of a notebook, in a folder of its own: the shipped checkpoints and results come from
    the package, and everything the run writes (figures, scratch) lands in that folder."""
    python = fresh_install(tmp_path)
    folder = tmp_path / "student"
    folder.mkdir()
    env = {**clean_env(), "MPLBACKEND": "Agg"}
    for name in ("02_building_blocks", "07_visualising_diffusion"):
        copy = folder / f"{name}.ipynb"
        copy.write_bytes((ROOT / "notebooks" / f"{name}.ipynb").read_bytes())
        result = subprocess.run([python, "-c", RUN, str(copy)], cwd=folder, env=env, capture_output=True,
                                text=True, timeout=1200)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert "figures/02_pool_broadcast.png" in written and "figures/07_dose_response.png" in written
    assert "executed/07_visualising_diffusion.ipynb" in written
