"""The solutions to the notebooks' "More exercises": one per item, and every standalone block runs."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "notebooks" / "solutions" / "more_exercises.md"
TEXT = SOLUTIONS.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python standalone\n(.*?)```", TEXT, flags=re.S)


def more_exercises(source: Path) -> int:
    """How many numbered items the notebook's "More exercises" list has."""
    tail = source.read_text(encoding="utf-8").split("**More exercises**", 1)[1]
    return len(re.findall(r"^# (\d+)\. ", tail, flags=re.M))


@pytest.mark.parametrize("source", sorted((ROOT / "notebooks" / "src").glob("0*.py")), ids=lambda p: p.stem)
def test_every_item_of_every_list_has_a_solution(source):
    number = int(source.stem[:2])
    section = TEXT.split(f"## Notebook {number}:", 1)[1].split("\n## ", 1)[0]
    answered = [int(n) for n in re.findall(r"^\*\*(\d+)\. ", section, flags=re.M)]
    assert answered == list(range(1, more_exercises(source) + 1))


def test_every_block_compiles():
    for block in re.findall(r"```python[^\n]*\n(.*?)```", TEXT, flags=re.S):
        compile(block, str(SOLUTIONS), "exec")


def test_the_solutions_have_standalone_blocks_to_run():
    """Outside the parametrised test below, which would run zero times (and pass) if no block were found."""
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_standalone_blocks_run(block):
    exec(compile(block, str(SOLUTIONS), "exec"), {"__name__": "solution"})


@pytest.mark.parametrize("source", sorted((ROOT / "notebooks" / "src").glob("0*.py")), ids=lambda p: p.stem)
def test_every_exercise_says_its_level(source):
    headings = re.findall(r"^# ### Exercise \d+(.*)$", source.read_text(encoding="utf-8"), flags=re.M)
    assert headings and all(re.match(r" \((warm-up|core|stretch)[,)]", h) for h in headings), headings
