"""embed's --model goes through load_encoder: a frozen encoder as loaded; reference names are refused clearly."""

from __future__ import annotations

import pytest

from chadavit.embed.model_spec import load_model
from chadavit.embed.output import EmbedError
from chadavit.models import Encoder


def test_embed_gets_a_frozen_encoder() -> None:
    enc = load_model("random:chada_vit_nano,depth=1")
    assert isinstance(enc, Encoder) and not enc.training
    assert not any(p.requires_grad for p in enc.parameters())


@pytest.mark.parametrize("spec", ["raw_pixels", "cellprofiler", "pixels", "hybrid:random:chada_vit_nano"])
def test_reference_names_are_not_models_to_embed_with(spec: str) -> None:
    with pytest.raises(EmbedError, match="--features cellprofiler"):
        load_model(spec)


def test_a_bad_spec_names_the_option() -> None:
    with pytest.raises(EmbedError, match="^--model: .*unknown preset"):
        load_model("random:no_such_model")
