"""A normal (non-editable) install works outside the repository: every data file the package reads ships in the wheel."""

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


@pytest.mark.slow
def test_the_wheel_installed_in_a_fresh_venv_has_its_class_lists_recipes_and_checkpoints(tmp_path):
    # Build from a copy of the tracked files, so the build leaves nothing in the checkout.
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
    # The package comes from the wheel; its dependencies (PyTorch and the rest) from this interpreter's
    # environment, added after the fresh site-packages, so nothing is downloaded.
    fresh_site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                     capture_output=True, text=True, check=True).stdout.strip())
    (fresh_site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    result = subprocess.run([python, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok") and str(env_dir) in result.stdout
