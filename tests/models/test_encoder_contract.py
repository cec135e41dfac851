"""The one Encoder contract and its one door, load_encoder: every encoder, trained or reference, offers config,
embed_dim, make_batch and a call giving an EncoderOutput; the references keep raw intensities and give their
vector as cls."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from chadavit.models import Encoder, load_encoder
from chadavit.models.config import ModelConfigError
from chadavit.models.references import REFERENCES
from chadavit.models.spec import ModelSpecError

SMALL = "random:chada_vit_nano,depth=1,img_size=32"


def _crops(n: int = 3, c: int = 2, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    disk = ((yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= 36)
    return [(np.where(disk, 3000, 200)[None].repeat(c, 0) + rng.integers(0, 100, (c, size, size))).astype(np.uint16)
            for _ in range(n)]


NAMES = [("DNA", "Actin")] * 3


@pytest.mark.parametrize("spec", [SMALL, "random:fixed_channel_vit_tiny,depth=1,in_chans=3,img_size=32",
                                  "raw_pixels", "handcrafted", "pixel_stats"])
def test_every_encoder_follows_the_contract(spec: str) -> None:
    enc = load_encoder(spec)
    assert isinstance(enc, Encoder)
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())  # frozen, eval mode
    for key in ("normalization", "normalization_stats", "embed_dim", "architecture", "pooling"):
        assert hasattr(enc.config, key), key
    out = enc(enc.make_batch(_crops(), NAMES))
    assert out.cls.shape[0] == 3 and len(out.patch_tokens) == 3
    if enc.embed_dim:
        assert out.cls.shape[1] == enc.embed_dim
    for kind in ("cls", "patch_mean", "all_tokens"):
        assert out.pooled(kind).shape[0] == 3 and out.pooled(kind).dtype == torch.float32
    assert len(out.pooled("per_channel")) == 3


def test_a_reference_keeps_raw_intensities_and_gives_its_vector_for_every_read_out() -> None:
    enc = load_encoder("handcrafted")
    batch = enc.make_batch(_crops(), NAMES)
    assert batch.raw is not None and batch.raw[0].dtype == np.uint16  # CellProfiler reads integers by their range
    out = enc(batch)
    assert torch.equal(out.pooled("patch_mean"), out.cls) and torch.equal(out.pooled("all_tokens"), out.cls)
    assert [list(d) for d in out.per_channel_by_name()] == [["all"]] * 3
    assert out.attentions is None
    direct = enc.vectors(_crops(), NAMES)
    assert np.array_equal(out.cls.numpy(), direct)


def test_raw_intensities_matter_to_the_cellprofiler_reference() -> None:
    pytest.importorskip("cp_measure", reason="cp_measure not installed")
    enc = load_encoder("cellprofiler")
    crops = _crops()
    a = enc(enc.make_batch(crops, NAMES)).cls
    b = enc(enc.make_batch([c.astype(np.float32) for c in crops], NAMES)).cls  # floats are taken as on 0-1
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_the_fixed_channel_model_fits_channels_in_its_own_make_batch() -> None:
    enc = load_encoder("random:fixed_channel_vit_tiny,depth=1,in_chans=3,img_size=32")
    batch = enc.make_batch(_crops(c=2), NAMES)
    assert batch.num_channels.tolist() == [3, 3, 3] and batch.channel_names[0] == ("DNA", "Actin", "empty0")
    assert torch.count_nonzero(batch.image(0)[2]) == 0  # the missing channel is a zero plane
    four = enc.make_batch(_crops(c=4), [("a", "b", "c", "d")] * 3)
    assert four.num_channels.tolist() == [3, 3, 3] and four.channel_names[0] == ("a", "b", "c")


def test_pixels_is_a_deprecated_name_of_pixel_stats(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        old = load_encoder("pixels")
    assert "pixel_stats" in caplog.text and "raw_pixels" in caplog.text
    new = load_encoder("pixel_stats")
    batch = new.make_batch(_crops(), NAMES)
    assert torch.equal(old(batch).cls, new(batch).cls)
    assert set(REFERENCES) >= {"raw_pixels", "cellprofiler", "handcrafted", "pixel_stats"}


def test_the_hybrid_is_cellprofiler_beside_the_models_cls() -> None:
    pytest.importorskip("cp_measure", reason="cp_measure not installed")
    hyb = load_encoder(f"hybrid:{SMALL}")
    inner, cp = hyb.inner, hyb.cellprofiler
    crops = _crops()
    got = hyb(hyb.make_batch(crops, NAMES)).cls
    want_cp = cp(cp.make_batch(crops, NAMES)).cls
    want_cls = inner(inner.make_batch(crops, NAMES)).cls
    assert torch.allclose(got, torch.cat([want_cp, want_cls], 1))


def test_a_bad_spec_is_one_clear_error() -> None:
    with pytest.raises(ModelSpecError, match="unknown preset"):
        load_encoder("random:no_such_model")
    with pytest.raises(ModelSpecError, match="random:chada_vit_nano"):
        load_encoder("chada_vit_nano")  # a bare preset only where allowed
    assert isinstance(load_encoder("chada_vit_nano,depth=1", allow_bare_preset=True), Encoder)


def test_overrides_change_the_config_and_keep_the_weights() -> None:
    base = load_encoder(SMALL)
    enc = load_encoder(SMALL, overrides={"pooling": "concat"})
    assert enc.config.pooling == "concat" and base.config.pooling != "concat"
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    for (k, a), (_, b) in zip(base.state_dict().items(), enc.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(ModelConfigError, match="no_such_key"):
        load_encoder(SMALL, overrides={"no_such_key": 1})
