"""Saved configurations carry a schema version, and older ones load through the migrations."""

from pathlib import Path

import pytest
import torch
import yaml

from lgd_tutorial import config as config_module
from lgd_tutorial.builders import model_from_checkpoint
from lgd_tutorial.config import SCHEMA_VERSION, ConfigError, from_dict, load_config, migrate
from lgd_tutorial.models import build_model, list_pretrained, load_pretrained

V1 = Path(__file__).parent / "data" / "config_v1.yaml"      # a run's config.yaml as lgd train wrote it before versions


def test_a_saved_configuration_starts_with_its_schema_version():
    saved = load_config("tiny_synthetic_cpu").to_dict()
    assert list(saved)[0] == "schema_version" and saved["schema_version"] == SCHEMA_VERSION
    assert from_dict(saved) == load_config("tiny_synthetic_cpu")


def test_a_checkpoint_written_before_versions_loads(tmp_path):
    old = yaml.safe_load(V1.read_text())
    assert "schema_version" not in old
    assert from_dict(old) == load_config("tiny_synthetic_cpu")
    model = build_model(old["model"]["arch"], old["model"]["num_classes"])
    torch.save({"model": model.state_dict(), "config": old}, tmp_path / "old.pt")
    loaded, cfg = model_from_checkpoint(tmp_path / "old.pt")
    assert cfg.model.arch == old["model"]["arch"]
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


@pytest.mark.parametrize("name", list_pretrained())
def test_every_shipped_teaching_checkpoint_loads_as_shipped(name):
    """The teaching checkpoints store weights, their build arguments and a checksum in the manifest (no run
    configuration); they load unchanged through this version's builders."""
    model, info = load_pretrained(name)               # checks the file's sha256 against the manifest
    assert model.arch == info["arch"] and not model.training


def test_a_renamed_field_is_migrated_and_a_newer_version_is_refused(monkeypatch):
    """The mechanism a rename uses, on a made-up rename: as if version 2 had called optim.lr `learning_rate`
    and version 3 (this package, patched) renamed it `lr`; a version-2 dict then loads through the step."""
    saved = load_config("tiny_synthetic_cpu").to_dict()
    future = {**saved, "schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(ConfigError, match=f"schema_version {SCHEMA_VERSION + 1}, newer than"):
        migrate(future)

    def rename_back(data):
        data = {**data, "optim": dict(data["optim"])}
        data["optim"]["lr"] = data["optim"].pop("learning_rate")
        return data

    monkeypatch.setattr(config_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(config_module.MIGRATIONS, SCHEMA_VERSION, rename_back)
    older = {**saved, "optim": {**saved["optim"], "learning_rate": saved["optim"]["lr"]}}
    del older["optim"]["lr"]
    assert migrate(older)["optim"]["lr"] == saved["optim"]["lr"]
    with pytest.raises(ConfigError, match="schema_version"):
        migrate({**saved, "schema_version": 0})
