"""lgd export: TorchScript and ONNX files whose logits match PyTorch's, for an RGB and a flow model."""

import pytest
import torch

from lgd_tutorial.cli import main as lgd
from lgd_tutorial.cli.export import FORMATS as CLI_FORMATS
from lgd_tutorial.export import FORMATS, example_clips, export, run_exported
from lgd_tutorial.models import load_pretrained


def test_the_command_offers_the_formats_the_module_writes():
    assert CLI_FORMATS == FORMATS


@pytest.mark.parametrize("name", ["lgd3d_tiny_beacon_both", "lgd3d_tiny_synthetic_flow"])
def test_exported_files_give_pytorch_s_logits_at_any_batch_size(name, tmp_path):
    model, info = load_pretrained(name)
    frames, size = info["frames"], info["size"]
    done = export(model, tmp_path, name, frames, size)
    assert set(done) == {"torchscript", "onnx"}
    for batch in (1, 4):                                        # traced with one clip; the batch size is free
        clips = example_clips(model, frames, size, batch=batch, seed=7)
        with torch.no_grad():
            reference = model(clips)
        for kind, (path, difference) in done.items():
            assert path.is_file() and difference < 1e-4
            torch.testing.assert_close(run_exported(path, clips), reference, atol=1e-4, rtol=1e-4)


def test_lgd_export_prints_the_contract_and_each_file_s_difference(tmp_path, capsys):
    assert lgd(["export", "--pretrained", "lgd3d_tiny_beacon_both", "--formats", "onnx", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "the batch size is free, frames and size are fixed; ONNX opset 18" in out
    assert "onnx" in out and (tmp_path / "lgd3d_tiny_beacon_both.onnx").is_file()
    assert lgd(["export", "--pretrained", "nothing_here", "--out", str(tmp_path)]) == 2
