"""The official ChAda-ViT fixture: our loader must compute exactly what the official code computes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from chadavit import ChannelBatch, load_official_checkpoint
from chadavit.cli.main import main as cli
from chadavit.models import CheckpointError, load_pretrained

TOL = 1e-4


@pytest.fixture(scope="module")
def fixture_dir(shared_dir):
    return shared_dir / "fixtures" / "official_chadavit"


@pytest.fixture(scope="module")
def reference(fixture_dir):
    return dict(np.load(fixture_dir / "reference_io.npz"))


def run_reference_batch(model, reference, b):
    pixels, counts = reference[f"{b}_pixels_uint8"], reference[f"{b}_num_channels"]
    images = np.split(pixels, np.cumsum(counts)[:-1])
    with torch.no_grad():
        return model(ChannelBatch.from_images(images, normalize="dtype_range"))


@pytest.mark.parametrize("teacher", [False, True])
@pytest.mark.parametrize("b", ["b0", "b1"])
def test_lightning_checkpoint_matches_official_outputs(fixture_dir, reference, teacher, b):
    model = load_official_checkpoint(fixture_dir / "official_training.ckpt", num_heads=12, final_norm_eps=1e-5,
                                     teacher=teacher)
    out = run_reference_batch(model, reference, b)
    who = "teacher" if teacher else "student"
    np.testing.assert_allclose(out.cls.numpy(), reference[f"{b}_{who}_cls"], atol=TOL, rtol=0)
    if f"{b}_{who}_patch_tokens" in reference:
        tokens = torch.cat([t.reshape(-1, t.shape[-1]) for t in out.patch_tokens]).numpy()
        np.testing.assert_allclose(tokens, reference[f"{b}_{who}_patch_tokens"], atol=TOL, rtol=0)


@pytest.mark.parametrize("b", ["b0", "b1"])
def test_backbone_safetensors_matches_official_outputs(fixture_dir, reference, b):
    model = load_official_checkpoint(fixture_dir / "official_backbone.safetensors")
    out = run_reference_batch(model, reference, b)
    np.testing.assert_allclose(out.cls.numpy(), reference[f"{b}_student_cls"], atol=TOL, rtol=0)
    tokens = torch.cat([t.reshape(-1, t.shape[-1]) for t in out.patch_tokens]).numpy()
    np.testing.assert_allclose(tokens, reference[f"{b}_student_patch_tokens"], atol=TOL, rtol=0)


def test_config_is_read_from_the_keys(fixture_dir):
    cfg = json.loads((fixture_dir / "config.json").read_text())
    model = load_official_checkpoint(fixture_dir / "official_backbone.safetensors")
    assert model.config.depth == cfg["depth"] == 2
    assert model.config.embed_dim == 192 and model.config.num_slots == 10 and model.config.block == "legacy"
    assert len(model.state_dict()) == 31


def test_wrong_head_count_changes_the_features(fixture_dir, reference):
    # shapes cannot tell 2 heads from 12: the parameter matters and is not guessed
    out = run_reference_batch(load_official_checkpoint(fixture_dir / "official_backbone.safetensors", num_heads=2),
                              reference, "b0")
    assert np.abs(out.cls.numpy() - reference["b0_student_cls"]).max() > 1e-2


def test_missing_and_unexpected_keys_are_named(fixture_dir, tmp_path):
    state = load_file(str(fixture_dir / "official_backbone.safetensors"))
    broken = dict(state)
    del broken["blocks.1.linear2.bias"]
    broken["blocks.0.extra_thing"] = torch.zeros(3)
    save_file(broken, str(tmp_path / "broken.safetensors"))
    with pytest.raises(CheckpointError, match=r"blocks\.0\.extra_thing"):
        load_official_checkpoint(tmp_path / "broken.safetensors")
    del broken["blocks.0.extra_thing"]
    save_file(broken, str(tmp_path / "missing.safetensors"))
    with pytest.raises(CheckpointError, match=r"blocks\.1\.mlp\.fc2\.bias"):
        load_official_checkpoint(tmp_path / "missing.safetensors")


def test_teacher_needs_a_training_checkpoint(fixture_dir):
    with pytest.raises(CheckpointError, match="teacher"):
        load_official_checkpoint(fixture_dir / "official_backbone.safetensors", teacher=True)


def test_pickled_objects_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"backbone.cls_token": torch.zeros(1)}, "obj": Evil()}, path)
    with pytest.raises(CheckpointError, match="not a loadable tensor checkpoint"):
        load_official_checkpoint(path)


def test_convert_official_command_round_trip(fixture_dir, reference, tmp_path, capsys):
    out_dir = tmp_path / "converted"
    assert cli(["convert-official", str(fixture_dir / "official_training.ckpt"), str(out_dir), "--teacher",
                "--num-heads", "12"]) == 0
    assert "31 tensors" in capsys.readouterr().out
    model = load_pretrained(out_dir)
    assert model.config.normalization == "dtype_range"
    out = run_reference_batch(model, reference, "b1")
    np.testing.assert_allclose(out.cls.numpy(), reference["b1_teacher_cls"], atol=TOL, rtol=0)
