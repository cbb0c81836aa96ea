"""Deterministic subsets of Kinetics: N classes x M clips per class, from any official CSV.

    subset = make_subset(read_annotations("kinetics-400_val.csv"), num_classes=50,
                         clips_per_class=20, seed=0)

Classes are chosen evenly over the sorted class list (every k-th label), by a
seeded draw, or by a list of names; clips within a class by a seeded draw.
The same inputs always give the same subset, on any machine.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from .kinetics import RESOURCES, AnnotationError, read_annotations, write_annotations

SUBSETS_DIR = RESOURCES / "subsets"          # the subset definitions shipped with the package


@dataclass
class SubsetSpec:
    """What defines a subset; stored next to it as ``subset.json``."""

    name: str
    source: str                      # the official CSV it was drawn from
    num_classes: int
    clips_per_class: int
    seed: int = 0
    choose: str = "even"             # "even" | "random" | "names"
    classes: list[str] = field(default_factory=list)   # for choose="names"


def choose_classes(labels: list[str], num_classes: int, choose: str = "even", seed: int = 0,
                   names: list[str] | None = None) -> list[str]:
    labels = sorted(set(labels))
    if choose == "names":
        unknown = [n for n in names or [] if n not in labels]
        if unknown:
            raise AnnotationError(f"classes not in the annotations: {unknown}")
        return sorted(names or [])
    if not 1 <= num_classes <= len(labels):
        raise ValueError(f"num_classes must be in 1..{len(labels)}, got {num_classes}")
    if choose == "even":
        step = len(labels) / num_classes
        return [labels[int(i * step)] for i in range(num_classes)]
    if choose == "random":
        return sorted(random.Random(f"classes-{seed}").sample(labels, num_classes))
    raise ValueError(f"choose must be 'even', 'random' or 'names', got {choose!r}")


def make_subset(annotations: pd.DataFrame, num_classes: int, clips_per_class: int, seed: int = 0,
                choose: str = "even", classes: list[str] | None = None) -> pd.DataFrame:
    """Rows of ``annotations`` for the chosen classes, at most ``clips_per_class`` each, sorted."""
    if clips_per_class < 1:
        raise ValueError(f"clips_per_class must be positive, got {clips_per_class}")
    labelled = annotations[annotations["label"].notna()]
    chosen = choose_classes(list(labelled["label"]), num_classes, choose, seed, classes)
    parts = []
    for label in chosen:
        rows = labelled[labelled["label"] == label].sort_values(["youtube_id", "time_start", "time_end"])
        keep = sorted(random.Random(f"clips-{seed}-{label}").sample(range(len(rows)), min(clips_per_class, len(rows))))
        parts.append(rows.iloc[keep])
    return pd.concat(parts).reset_index(drop=True)


def write_subset(spec: SubsetSpec, out_dir=None) -> Path:
    """Build the subset a spec describes; write ``annotations.csv``, ``classes.txt`` and ``subset.json``."""
    out_dir = Path(out_dir) if out_dir else Path("data") / "subsets" / spec.name
    annotations = read_annotations(spec.source)
    subset = make_subset(annotations, spec.num_classes, spec.clips_per_class, spec.seed, spec.choose,
                         spec.classes or None)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_annotations(subset, out_dir / "annotations.csv")
    (out_dir / "classes.txt").write_text("\n".join(sorted(set(subset["label"]))) + "\n", encoding="utf-8")
    record = asdict(spec)
    record["source"] = Path(spec.source).name
    (out_dir / "subset.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out_dir


def load_spec(path) -> SubsetSpec:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    unknown = set(data) - set(SubsetSpec.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    return SubsetSpec(**data)
