"""Shared test settings: small thread pools so the suite behaves on 2 cores."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "2")
# every figure a test saves (the notebooks, lgd viz, study, bench) is checked; a problem fails the test
os.environ.setdefault("LGD_FIGURE_CHECK", "error")

import torch  # noqa: E402

torch.set_num_threads(2)

import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory):
    """A factory for small synthetic datasets (64 px, 16 frames, one validation video per class), each written
    once per session: ``synthetic_set(seed=2, videos_per_class=2)`` returns the dataset's folder."""
    from lgd_tutorial.data import synthetic

    made = {}

    def make(**settings):
        settings = {"videos_per_class": 2, "val_per_class": 1, "size": 64, "frames": 16, "seed": 0, **settings}
        key = tuple(sorted(settings.items()))
        if key not in made:
            made[key] = synthetic.generate(tmp_path_factory.mktemp("synth"), workers=1, progress=False, **settings)
        return made[key]

    return make


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _git_status() -> str | None:
    """``git status --porcelain`` of the checkout (tracked and untracked, ignored files excluded); None outside git."""
    try:
        return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def pytest_sessionstart(session):
    session.config._git_status_before = _git_status()


def pytest_sessionfinish(session, exitstatus):
    """A test run must leave the checkout as it found it: no tracked file rewritten, no untracked file left."""
    before = getattr(session.config, "_git_status_before", None)
    after = _git_status()
    if before is None or after is None or before == after:
        return
    changed = sorted(set(after.splitlines()) - set(before.splitlines()))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = "the test run changed the checkout (git status):\n  " + "\n  ".join(changed or after.splitlines())
    if reporter is not None:
        reporter.write_line(message, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
