"""``hf:OWNER/NAME[@REVISION]``: the real huggingface_hub download code against a local Hub mirror."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from chadavit.cli.main import main as cli
from chadavit.errors import ChadavitError
from chadavit.models import HubError, create_model, load_from_hub, load_pretrained, save_pretrained
from chadavit.models.spec import load_model_from_spec
from tests.hub.conftest import official_model, official_repo_files
from tests.models.helpers import random_batch

REPO = "nicoboou/chadavit16-moyen"


def cls_of(model: torch.nn.Module, size: int = 32) -> torch.Tensor:
    with torch.no_grad():
        return model(random_batch([1, 3, 5], size=size)).cls


def test_official_layout_loads_with_heads_and_eps_from_config(mirror):
    ref = official_model(num_heads=4, final_norm_eps=1e-5)
    commit = mirror.add(REPO, official_repo_files(ref, prefix="model."))
    model = load_from_hub(f"hf:{REPO}")
    assert model.config.num_heads == 4 and model.config.final_norm_eps == 1e-5  # not the default 12 heads
    assert model.config.block == "legacy"
    assert (model.config.source, model.config.revision) == (f"hf:{REPO}", commit)
    torch.testing.assert_close(cls_of(model), cls_of(ref), rtol=0, atol=0)
    assert ("HEAD", f"/{REPO}/resolve/main/model.safetensors") in mirror.requests


@pytest.mark.parametrize("prefix", ["", "backbone.", "chada_vit.model."])
def test_keys_convert_whatever_their_prefix(mirror, prefix):
    ref = official_model(final_norm_eps=1e-6)
    mirror.add("me/m", official_repo_files(ref, prefix=prefix, layer_norm_eps=1e-6))
    model = load_from_hub("hf:me/m")
    assert model.config.final_norm_eps == 1e-6
    torch.testing.assert_close(cls_of(model), cls_of(ref), rtol=0, atol=0)


def test_strict_load_names_stray_keys(mirror):
    files = official_repo_files(official_model())
    from safetensors.torch import load as load_bytes
    from safetensors.torch import save as save_bytes

    state = load_bytes(files["model.safetensors"])
    state["model.extra_head.weight"] = torch.zeros(2)
    mirror.add("me/bad", {**files, "model.safetensors": save_bytes(state)})
    with pytest.raises(ChadavitError, match="extra_head"):
        load_from_hub("hf:me/bad")


def test_revision_pinning_and_branches(mirror):
    first, second = official_model(seed=1), official_model(seed=2)
    c1 = mirror.add("me/m", official_repo_files(first))
    c2 = mirror.add("me/m", official_repo_files(second))
    mirror.add("me/m", official_repo_files(first), branch="v1")
    torch.testing.assert_close(cls_of(load_from_hub("hf:me/m")), cls_of(second))
    old = load_from_hub(f"hf:me/m@{c1}")
    assert old.config.revision == c1
    torch.testing.assert_close(cls_of(old), cls_of(first))
    assert load_from_hub(f"hf:me/m@{c2}").config.revision == c2
    torch.testing.assert_close(cls_of(load_from_hub("hf:me/m@v1")), cls_of(first))
    with pytest.raises(HubError, match="revision 'nope' not found"):
        load_from_hub("hf:me/m@nope")


def test_offline_uses_the_cache_and_never_the_network(mirror, monkeypatch):
    ref = official_model()
    mirror.add("me/m", official_repo_files(ref))
    load_from_hub("hf:me/m")
    n = len(mirror.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.testing.assert_close(cls_of(load_from_hub("hf:me/m")), cls_of(ref))
    assert len(mirror.requests) == n
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set and the file is not in the cache"):
        load_from_hub("hf:me/other")


def test_prefilled_cache_offline(tmp_path, monkeypatch):
    """A cache laid out by hand as huggingface_hub lays it out (e.g. copied to an air-gapped cluster)."""
    ref = official_model()
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = tmp_path / "cache" / "models--nicoboou--chadavit16-moyen"
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    for name, data in official_repo_files(ref).items():
        (snap / name).write_bytes(data)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: any request would fail
    model = load_from_hub(f"hf:{REPO}")
    assert model.config.revision == commit
    torch.testing.assert_close(cls_of(model), cls_of(ref), rtol=0, atol=0)


def test_one_line_released_model(mirror):
    """The README's first line, on a model of the released size (D 192, depth 12, 12 heads, MLP 2048)."""
    with torch.device("meta"):  # shapes only: random values below are much cheaper than a model's init
        ref = official_model(embed_dim=192, depth=12, num_heads=12, mlp_dim=2048, img_size=224)
    gen = torch.Generator().manual_seed(0)
    theirs = {k: torch.randn(v.shape, generator=gen) for k, v in ref.state_dict().items()}
    ref.load_state_dict(theirs, assign=True)
    mirror.add(REPO, official_repo_files(ref))
    model = create_model("chada_vit_moyen", pretrained=f"hf:{REPO}")
    assert sum(p.numel() for p in model.parameters()) == 11_341_632
    ours = model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_weights_must_fit_the_named_preset(mirror):
    mirror.add("me/m", official_repo_files(official_model()))
    with pytest.raises(ChadavitError, match="do not fit preset 'chada_vit_nano'.*embed_dim: preset 64 vs weights 32"):
        create_model("chada_vit_nano", pretrained="hf:me/m")


def test_errors_name_the_repository(mirror):
    with pytest.raises(HubError, match="hf:me/missing config.json: repository not found"):
        load_from_hub("hf:me/missing")
    mirror.add("me/noweights", {"config.json": b"{}"})
    with pytest.raises(HubError, match="hf:me/noweights model.safetensors: no such file"):
        load_from_hub("hf:me/noweights")
    with pytest.raises(HubError, match="expected hf:OWNER/NAME"):
        load_from_hub("hf:not a repo")


def _fake_upload(mirror, monkeypatch):
    """Route HfApi uploads into the mirror (the upload protocol itself is huggingface_hub's business)."""
    import huggingface_hub

    calls = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, *, repo_id, folder_path, allow_patterns=None, **kw):
        from pathlib import Path

        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()
                 if p.is_file() and (allow_patterns is None or p.name in allow_patterns)}
        calls.append(("upload_folder", repo_id, sorted(files)))
        return type("Info", (), {"commit_url": f"{mirror.url}/{repo_id}/commit/{mirror.add(repo_id, files)}"})()

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return calls


def test_save_pretrained_push_to_hub_loads_back(mirror, monkeypatch, tmp_path):
    calls = _fake_upload(mirror, monkeypatch)
    torch.manual_seed(0)
    model = create_model("chada_vit_nano", depth=2, img_size=32).eval()
    save_pretrained(model, tmp_path / "m", push_to_hub="me/nano")
    assert calls[-1] == ("upload_folder", "me/nano", ["config.json", "model.safetensors"])
    again = load_model_from_spec("hf:me/nano")
    assert again.config.source == "hf:me/nano" and again.config.block == "prenorm"
    torch.testing.assert_close(cls_of(again), cls_of(model), rtol=0, atol=0)


def test_push_cli_and_convert_official_from_hub(mirror, monkeypatch, tmp_path, capsys, cli_error):
    calls = _fake_upload(mirror, monkeypatch)
    ref = official_model(num_heads=8)
    commit = mirror.add(REPO, official_repo_files(ref))
    assert cli(["convert-official", f"hf:{REPO}@{commit}", str(tmp_path / "conv")]) == 0
    saved = json.loads((tmp_path / "conv" / "config.json").read_text())
    assert saved["config"]["num_heads"] == 8 and saved["config"]["revision"] == commit
    assert saved["config"]["source"] == f"hf:{REPO}"
    assert cli(["push", str(tmp_path / "conv"), "me/converted"]) == 0
    assert "load it with --model hf:me/converted" in capsys.readouterr().out
    assert calls[0][:2] == ("create_repo", "me/converted")
    back = load_from_hub("hf:me/converted")
    torch.testing.assert_close(cls_of(back), cls_of(load_pretrained(tmp_path / "conv")), rtol=0, atol=0)
    shutil.rmtree(tmp_path / "conv")
    assert "not a save_pretrained folder" in cli_error(["push", tmp_path / "conv", "me/x"])


def test_embed_takes_an_hf_model(mirror, tmp_path):
    import numpy as np
    import pandas as pd
    import tifffile

    mirror.add("me/m", official_repo_files(official_model()))
    img = tmp_path / "imgs"
    img.mkdir()
    tifffile.imwrite(img / "A01_s1.tif", np.random.default_rng(0).integers(0, 4000, (2, 32, 32), dtype=np.uint16))
    out = tmp_path / "emb.parquet"
    assert cli(["embed", str(img), "--model", "hf:me/m", "--out", str(out), "--crops", "full",
                "--workers", "0", "--no-progress"]) == 0
    df = pd.read_parquet(out)
    assert len(df) == 1 and "cls_31" in df.columns


def test_official_fixture_through_the_hub_matches_official_outputs(mirror, shared_dir):
    """The official code's own weights and outputs (../shared fixture), served with a ``model.`` prefix."""
    import numpy as np
    from safetensors.torch import load_file
    from safetensors.torch import save as save_bytes

    from chadavit import ChannelBatch

    fx = shared_dir / "fixtures" / "official_chadavit"
    state = {f"model.{k}": v for k, v in load_file(str(fx / "official_backbone.safetensors")).items()}
    cfg = {"embed_dim": 192, "num_heads": 12, "depth": 2, "max_number_channels": 10, "in_chans": 1,
           "patch_size": 16, "img_size": [224]}
    mirror.add(REPO, {"config.json": json.dumps(cfg).encode(), "model.safetensors": save_bytes(state)})
    model = load_from_hub(f"hf:{REPO}")
    ref = dict(np.load(fx / "reference_io.npz"))
    images = np.split(ref["b0_pixels_uint8"], np.cumsum(ref["b0_num_channels"])[:-1])
    with torch.no_grad():
        out = model(ChannelBatch.from_images(images, normalize="dtype_range"))
    np.testing.assert_allclose(out.cls.numpy(), ref["b0_student_cls"], atol=1e-4, rtol=0)


def test_eval_takes_an_hf_model(mirror):
    from chadavit.evaluation.features import load_model_spec

    mirror.add("me/m", official_repo_files(official_model()))
    loaded = load_model_spec("hf:me/m@main")
    assert loaded.label == "hf:me/m@main" and loaded.model.config.source == "hf:me/m"


@pytest.mark.parametrize("revision", ["main/../../../../escaped", "../escaped", "/escaped", "a//b", "v1/."])
def test_revisions_that_leave_the_cache_are_refused(mirror, tmp_path, revision):
    """Issue 22 item 9: `hf:owner/name@../..` made huggingface_hub write a commit id outside its cache."""
    mirror.add("me/m", official_repo_files(official_model(seed=1)))
    with pytest.raises(HubError, match=r"is not a branch, tag or commit name"):
        load_from_hub(f"hf:me/m@{revision}")
    assert not [p for p in tmp_path.rglob("escaped*")]


def test_plain_revisions_pass_the_check():
    from chadavit.models.hub import check_revision, parse_hf_spec

    for ok in ("main", "v1.0", "refs/pr/1", "feature/x-y_z", "0123456789abcdef0123456789abcdef01234567"):
        assert parse_hf_spec(f"hf:me/m@{ok}") == ("me/m", ok) and check_revision(ok, "t") == ok
