"""``features: per_channel`` in evaluation: each channel's mean patch token, in the dataset's channel order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chadavit.evaluation.data import EvalData, EvalInputError
from chadavit.evaluation.features import extract_features, load_model_spec, per_channel_matrix


def _data() -> EvalData:
    rng = np.random.default_rng(0)
    imgs = [rng.random((2, 32, 32)).astype(np.float32) for _ in range(4)] + [rng.random((1, 32, 32), np.float32)]
    names = [("DNA", "protein")] * 4 + [("protein",)]
    return EvalData("t", imgs, names, pd.DataFrame({"y": np.arange(5)}), {})


def test_per_channel_features_are_keyed_by_channel_name() -> None:
    lm = load_model_spec("random:chada_vit_nano,img_size=32,depth=1")
    data = _data()
    f = extract_features(lm, data, ("per_channel", "patch_mean"), progress=False)
    d = 64
    assert f["per_channel"].shape == (5, 2 * d)
    # the mean of the two channel blocks is the mean patch token (equal patch counts)
    np.testing.assert_allclose(f["per_channel"][:4].reshape(4, 2, d).mean(1), f["patch_mean"][:4], atol=1e-5)
    # the 1-channel image: its protein vector sits in the protein block, zeros in the DNA block
    assert not f["per_channel"][4, :d].any() and f["per_channel"][4, d:].any()
    alone = extract_features(lm, data.subset(np.array([4])), ("per_channel",), progress=False)["per_channel"]
    np.testing.assert_allclose(alone[0], f["per_channel"][4, d:], atol=1e-5)


def test_per_channel_matrix_and_unknown_kind() -> None:
    rows = [{"a": np.ones(2)}, {"b": np.full(2, 2.0), "a": np.zeros(2)}]
    np.testing.assert_array_equal(per_channel_matrix(rows), [[1, 1, 0, 0], [0, 0, 2, 2]])
    with pytest.raises(EvalInputError, match="unknown feature kind"):
        extract_features(load_model_spec("pixels"), _data(), ("per_chan",), progress=False)
