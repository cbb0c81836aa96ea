"""Every file the README, the notebooks, the recipes and the code name is in the repository."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = ("notebooks", "lgd_tutorial", "data", "figures", "tests", ".ci")
PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./-]*\w\.(?:md|py|ipynb|yaml|yml|sbatch|png|gif|csv|txt|json|pt|toml))"
                  % "|".join(re.escape(t) for t in TOP))
# Folders that hold what commands write (generated data, user videos, runs, executed notebooks): a path there
# names an output, not a file the repository ships.
OUTPUTS = ("data/synthetic", "data/videos", "data/subsets/", "notebooks/executed", "runs/")
LOOSE = re.compile(r"(?<![\w/.-])(PAPER|DESIGN|STYLE)\.md")


def sources() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    keep = (".py", ".md", ".yaml", ".sbatch", ".toml", ".yml")
    return [ROOT / p for p in tracked.splitlines()
            if p.endswith(keep) and not p.startswith(("notebooks/exercises/", "tests/")) and (ROOT / p).is_file()]


def test_every_named_repository_file_exists():
    missing = []
    for source in sources():
        for n, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
            for path in PATH.findall(line):
                if path.startswith(OUTPUTS) or any(c in path for c in "{}*<>"):
                    continue
                if not (ROOT / path).exists():
                    missing.append(f"{source.relative_to(ROOT)}:{n}: {path}")
    assert not missing, "named but not in the repository:\n  " + "\n  ".join(missing)


def test_no_reference_to_a_page_outside_the_repository():
    """Design notes that live outside the repository must not be pointed at; the paper page is notebooks/PAPER.md."""
    stray = []
    for source in sources():
        for n, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
            for match in LOOSE.finditer(line):
                if not line[:match.start()].endswith("notebooks/"):
                    stray.append(f"{source.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not stray, "references that do not resolve inside the repository:\n  " + "\n  ".join(stray)
    assert (ROOT / "notebooks" / "PAPER.md").is_file()
