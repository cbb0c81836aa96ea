"""The `lgd` command: one argparse tree, every subcommand answers --help, flags mean the same everywhere."""

import argparse
import subprocess
import sys

import pytest

from lgd_tutorial import cli


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _all_parsers(parser, path=()):
    """(command path, parser) for the root and every sub-command, depth first."""
    yield path, parser
    for name, sub in _subparsers(parser).items():
        yield from _all_parsers(sub, path + (name,))


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert f"    {name}" in out


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "commands" in capsys.readouterr().out


def test_unknown_subcommand_is_rejected_by_name(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["trian"])
    assert exc.value.code == 2
    assert "'trian'" in capsys.readouterr().err


def test_every_leaf_command_has_something_to_run():
    for path, parser in _all_parsers(cli.build_parser()):
        if path and not _subparsers(parser):
            assert callable(parser.get_default("run")), f"lgd {' '.join(path)} has no run()"


@pytest.mark.parametrize("flag,meaning", [("--out", "folder"), ("--device", "auto cpu cuda")])
def test_shared_flags_mean_the_same_everywhere(flag, meaning):
    """--out is always a folder, --device always chooses among auto, cpu and cuda; --batch is never used."""
    for path, parser in _all_parsers(cli.build_parser()):
        for action in parser._actions:
            assert "--batch" not in action.option_strings, f"lgd {' '.join(path)}: use --batch-size"
            if flag not in action.option_strings:
                continue
            if flag == "--out":
                default = str(action.default or "")
                assert not default.endswith((".csv", ".json", ".png")), f"lgd {' '.join(path)} --out {default}"
                assert "folder" in (action.help or ""), f"lgd {' '.join(path)}: --out help must say it is a folder"
            else:
                assert tuple(action.choices) == tuple(meaning.split()), f"lgd {' '.join(path)} --device"


def test_choices_typed_in_the_cli_match_where_they_are_defined():
    """The few choices the light CLI modules spell out (to keep --help fast) agree with their sources."""
    from lgd_tutorial.cli import prepare, study, workbook
    from lgd_tutorial.data.prepare import VERSIONS
    from lgd_tutorial.notebooks import PROFILES
    from lgd_tutorial.experiments.study import VARIANTS

    assert prepare.KINETICS == tuple(VERSIONS)
    assert study.VARIANTS == tuple(VARIANTS)
    assert workbook.PROFILES == PROFILES


def test_python_m_lgd_tutorial_is_the_lgd_command():
    result = subprocess.run([sys.executable, "-m", "lgd_tutorial", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "summary" in result.stdout and "workbook" in result.stdout


@pytest.mark.parametrize("name", cli.COMMANDS)
def test_every_subcommand_answers_help(name):
    result = subprocess.run([sys.executable, "-m", "lgd_tutorial", name, "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"lgd {name}" in result.stdout


def test_help_does_not_import_torch():
    code = "import sys; from lgd_tutorial import cli; cli.build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_clear_one_line_errors_for_an_out_file_a_missing_fine_tune_start_and_a_truncated_checkpoint(tmp_path, capsys,
                                                                                                     monkeypatch):
    import torch

    from lgd_tutorial.cli import main as lgd

    existing = tmp_path / "predictions"
    existing.write_text("a file, not a folder")
    for command in (["predict", "--pretrained", "lgd3d_tiny_beacon_both", str(tmp_path)],
                    ["viz", "--demo"], ["evaluate", "--checkpoint", str(tmp_path / "x.pt")]):
        assert lgd([*command, "--out", str(existing)]) == 2
        err = capsys.readouterr().err
        assert f"--out {existing} is an existing file" in err and "Traceback" not in err
    monkeypatch.chdir(tmp_path)
    assert lgd(["train", "--config", "ucf101_finetune"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lgd train: error: runs/k400_full/best.pt: no such checkpoint (model.init_from=")
    assert not (tmp_path / "data").exists()                              # nothing written before it stops
    damaged = tmp_path / "damaged.pt"
    torch.save({"model": {"w": torch.zeros(1000)}}, damaged)
    damaged.write_bytes(damaged.read_bytes()[:500])
    assert lgd(["predict", "--checkpoint", str(damaged), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unreadable checkpoint, truncated or damaged (" in err and err.rstrip().endswith(")")


def test_no_progress_bars_where_nobody_sees_them(monkeypatch):
    import io
    import sys

    from lgd_tutorial.utils import progress

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())                    # a log file or a pipe
    items = [1, 2, 3]
    assert progress(items) is items and progress(None, total=3) is None

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = progress(items, leave=False)
    assert bar is not items and list(bar) == items


def test_generating_the_synthetic_set_says_where_and_why(tmp_path, caplog):
    import logging

    from lgd_tutorial.data import synthetic

    with caplog.at_level(logging.INFO, logger="lgd_tutorial.data.synthetic"):
        synthetic.generate(tmp_path / "set", videos_per_class=1, val_per_class=0, size=32, frames=4, progress=False,
                           workers=1)
        synthetic.generate(tmp_path / "set", videos_per_class=1, val_per_class=0, size=32, frames=4, progress=False,
                           workers=1)                                    # already there: no second message
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "generating the synthetic set (4 videos" in messages[0]
    assert str((tmp_path / "set").resolve()) in messages[0]


def test_lgd_models_lists_architectures_and_shipped_checkpoints_and_predict_notes_a_teaching_model(tmp_path, capsys):
    import json

    from lgd_tutorial.cli import main as lgd
    from lgd_tutorial.models import list_models, list_pretrained

    assert lgd(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in list_models()) and all(name in out for name in list_pretrained())
    assert lgd(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert set(listed["pretrained"]) == set(list_pretrained()) and set(listed["architectures"]) == set(list_models())
    assert lgd(["predict", "--pretrained", "lgd3d_tiny_beacon_both", str(tmp_path / "none.mp4")]) == 0
    err = capsys.readouterr().err
    assert "note: lgd3d_tiny_beacon_both was trained on the workbook's synthetic beacon videos; it knows only 4" in err


def test_every_option_has_help_and_every_sub_command_a_description():
    import argparse

    from lgd_tutorial.cli import build_parser

    missing = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if not sub.description:
                        missing.append(" ".join(path + [name]) + ": no description")
                    walk(sub, path + [name])
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}: no help")

    walk(build_parser(), ["lgd"])
    assert missing == []
