"""Issue 22 item 19: the README's Python snippets run as written, on a `plate`-style model of our own pretraining
(channel names, `dataset` normalisation, identity embeddings) and on the released model's layout, served by a
local Hub mirror standing in for huggingface.co."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
REPO = "nicoboou/chadavit16-moyen"


def python_snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def _plate_model(folder: Path) -> None:
    """What `chadavit pretrain --config plate` saves: named channels, per-stain statistics, a training scale."""
    from chadavit.models import create_model, save_pretrained

    torch.manual_seed(0)
    model = create_model("chada_vit_nano", depth=1, channel_embedding="identity",
                         channel_vocab=["DNA", "ER", "Mito"], normalization="dataset",
                         normalization_stats={"DNA": [0.0, 0.2], "ER": [0.0, 0.1], "Mito": [0.01, 0.3]}, crop_size=64)
    save_pretrained(model, folder)


def _dataset(folder: Path) -> None:
    from chadavit import DatasetWriter

    with DatasetWriter(folder) as w:
        w.add(np.zeros((2, 16, 16), np.uint16), "A01", ["DNA", "ER"])


@pytest.fixture()
def hub_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # yields the mirror
    pytest.importorskip("huggingface_hub")
    from tests.hub.conftest import official_model, official_repo_files
    from tests.hub.mirror import HubMirror

    with HubMirror() as mirror:
        monkeypatch.setenv("HF_ENDPOINT", mirror.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        with torch.device("meta"):  # the released sizes; random values are cheaper than a model's init
            ref = official_model(embed_dim=192, depth=12, num_heads=12, mlp_dim=2048, img_size=224)
        gen = torch.Generator().manual_seed(0)
        ref.load_state_dict({k: torch.randn(v.shape, generator=gen) * 0.02 for k, v in ref.state_dict().items()},
                            assign=True)
        mirror.add(REPO, official_repo_files(ref))
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.chdir(work)
        _plate_model(work / "runs" / "plate" / "backbone")
        _dataset(work / "data" / "plate1")
        yield mirror


def _run(code: str) -> dict:
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)  # noqa: S102 - our own README
    return scope


def test_readme_has_a_python_snippet() -> None:
    assert python_snippets(), "README.md lost its Python example"


def test_readme_python_runs_as_written_on_a_plate_model(hub_and_files) -> None:
    for code in python_snippets():
        scope = _run(code)
        model, out = scope["model"], scope["out"]
        assert model.config.channel_embedding == "identity" and not model.training
        assert out.cls.shape == (2, model.embed_dim) and torch.isfinite(out.cls).all()
        assert [a.shape[1] for a in out.attentions] == [3, 2]
        assert (Path("my_model") / "config.json").is_file() and len(scope["ds"]) == 1


def test_readme_python_runs_on_the_released_model(hub_and_files) -> None:
    for code in python_snippets():
        own = [line for line in code.splitlines() if "load_pretrained(" in line]
        scope = _run("\n".join(line for line in code.splitlines() if line not in own))
        model = scope["model"]
        assert model.config.source == f"hf:{REPO}" and not model.training
        assert scope["out"].cls.shape == (2, 192)
