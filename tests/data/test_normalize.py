import numpy as np
import pytest
import torch

from chadavit.data.normalize import as_stats_dtype, normalize_planes


def test_dtype_range_matches_official_pixels_over_255():
    img = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    out = normalize_planes(img, "dtype_range")
    torch.testing.assert_close(out, torch.from_numpy(img.astype(np.float32) / 255.0))
    assert normalize_planes(np.full((1, 4, 4), 65535, np.uint16), "dtype_range").max() == 1.0


def test_percentile_scaling_is_per_channel_and_dtype_agnostic():
    rng = np.random.default_rng(0)
    dim = rng.integers(100, 200, (64, 64))  # a dim 12-bit channel
    bright = rng.integers(2000, 4000, (64, 64))
    img = np.stack([dim, bright]).astype(np.uint16)
    out = normalize_planes(img, "percentile")
    assert out.min() == 0 and out.max() == 1
    for c in range(2):  # each channel spans [0, 1] on its own
        assert out[c].quantile(0.5) == pytest.approx(0.5, abs=0.05)
    out8 = normalize_planes((img // 16).astype(np.uint8), "percentile")
    # the same picture in uint8 (the dim channel quantised to 7 levels) gives about the same input
    assert (out8 - out).abs().mean() < 0.04


def test_percentile_is_robust_to_hot_pixels_and_constant_planes():
    img = np.full((2, 64, 64), 10, np.uint16)
    img[0, :32] = 20
    img[0, 0, 0] = 65535  # one hot pixel
    out = normalize_planes(img, "percentile")
    assert out[0, 40].max() == 0 and out[0, 10, 10] == 1
    assert (out[1] == 0).all()  # constant plane


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize_planes(np.zeros((1, 2, 2)), "zscore")


def test_dtype_range_scales_12_bit_uint16_by_its_bit_depth(caplog):
    """A 12-bit camera image in a uint16 file must not look ~16x too dark (issue 12); warned once."""
    import chadavit.data.normalize as N

    N._warned_bit_depth.clear()
    img = np.array([[[0, 1000], [2000, 4095]]], np.uint16)
    with caplog.at_level("WARNING"):
        out = normalize_planes(img, "dtype_range")
        normalize_planes(img, "dtype_range")
    assert float(out.max()) == 1.0 and float(out[0, 0, 1]) == pytest.approx(1000 / 4095)
    assert sum("12-bit" in r.message for r in caplog.records) == 1
    full = normalize_planes(np.array([[[0, 40000]]], np.uint16), "dtype_range")
    assert float(full.max()) == pytest.approx(40000 / 65535)  # a real 16-bit image keeps / 65535


def test_dataset_normalisation_keeps_absolute_intensity_between_images():
    """Per-image percentile maps a dim and a 2x brighter nucleus to the same range; dataset stats do not."""
    from chadavit.data.normalize import plane_stats

    dim = np.zeros((1, 32, 32), np.uint16)
    dim[0, 8:24, 8:24] = 1000
    bright = dim * 2
    stats = {"DNA": [0.0, 4000 / 65535]}
    per = [plane_stats(["DNA"], 1, stats)] * 2
    a, b = (normalize_planes(x, "dataset", stats=s) for x, s in zip((dim, bright), per))
    assert float(b.max()) == pytest.approx(2 * float(a.max()), rel=1e-5)
    pa, pb = normalize_planes(dim, "percentile"), normalize_planes(bright, "percentile")
    assert float(pa.max()) == float(pb.max()) == 1.0
    # a channel without statistics falls back to percentile
    fb = normalize_planes(dim, "dataset", stats=plane_stats(["GFP"], 1, stats))
    torch.testing.assert_close(fb, pa)


def test_channel_stats_over_a_dataset(tmp_path):
    from chadavit.data.dataset import DatasetWriter, open_dataset
    from chadavit.data.stats import ALL_CHANNELS, channel_stats

    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "d") as w:
        for i in range(6):
            planes = [rng.integers(0, 1000 * (i + 1), (16, 16)), rng.integers(0, 50, (16, 16))]
            w.add(np.stack(planes).astype(np.uint16), f"im{i}", ["DNA", "GFP"])
    st = channel_stats([open_dataset(tmp_path / "d")])
    assert set(st) == {"DNA", "GFP", ALL_CHANNELS}
    assert st["DNA"][1] > 3000 / 65535 > st["GFP"][1]  # one range per stain, over all images
    assert st["DNA"][0] < st["DNA"][1]


def test_model_make_batch_follows_the_model_normalisation():
    from chadavit.models import create_model

    img = np.linspace(0, 51, 32 * 32).round().astype(np.uint8).reshape(1, 32, 32)
    official_like = create_model("chada_vit_nano", img_size=32, normalization="dtype_range")
    batch = official_like.make_batch([img], channel_names=[["DNA"]])
    assert float(batch.planes.max()) == pytest.approx(51 / 255)  # pixels / 255, not percentile-stretched to 1
    assert float(create_model("chada_vit_nano", img_size=32).make_batch([img]).planes.max()) == 1.0


def test_dtype_range_scales_every_integer_source(tmp_path, caplog):
    """Issue 22 item 5: uint32, int16 with a negative pixel and mixed uint8/uint16 channel files were unscaled."""
    import tifffile

    from chadavit.data.readers import group_channel_files, read_image_file

    rng = np.random.default_rng(0)
    u32 = rng.integers(0, 3200, (2, 32, 32)).astype(np.uint32)
    tifffile.imwrite(tmp_path / "u32.tif", u32, photometric="minisblack")
    i16 = rng.integers(-5, 3200, (2, 32, 32)).astype(np.int16)
    i16[0, 0, 0] = -5
    tifffile.imwrite(tmp_path / "i16.tif", i16, photometric="minisblack")
    (tmp_path / "mixed").mkdir()
    tifffile.imwrite(tmp_path / "mixed" / "a_w1.tif", np.full((32, 32), 255, np.uint8))
    tifffile.imwrite(tmp_path / "mixed" / "a_w2.tif", rng.integers(0, 60000, (32, 32)).astype(np.uint16))
    got = {"u32": read_image_file(tmp_path / "u32.tif"), "i16": read_image_file(tmp_path / "i16.tif"),
           "mixed": group_channel_files(tmp_path / "mixed", "{i}_{channel}.tif")[0].read()[0]}
    assert got["u32"].dtype == np.uint16 and np.array_equal(got["u32"], u32)  # lossless, 12-bit detection applies
    for name, arr in got.items():
        x = normalize_planes(arr, "dtype_range")
        assert 0 <= float(x.min()) and float(x.max()) <= 1.0, name
    assert float(normalize_planes(got["mixed"], "dtype_range")[0].max()) == 1.0  # uint8 255 -> 1
    assert "do not fit uint16" in caplog.text and "channel files of different types" in caplog.text


def test_dataset_normalisation_puts_12_bit_and_8_bit_files_of_one_stain_on_one_scale(tmp_path, caplog):
    """Issue 22 item 6: one range per stain, shared by 8-bit and 12-bit-in-uint16 studies, sent the 12-bit
    images to the model at ~0.03; statistics are now also kept per dtype when a stain comes in several."""
    from chadavit.data.dataset import DatasetWriter, open_dataset
    from chadavit.data.normalize import plane_stats
    from chadavit.data.stats import channel_stats

    rng = np.random.default_rng(1)
    with DatasetWriter(tmp_path / "d") as w:
        for k in range(8):
            twelve = rng.integers(100, 4000, (1, 48, 48)).astype(np.uint16)  # study A: a 12-bit camera
            w.add(twelve, f"twelve{k}", ["DNA"])
            eight = rng.integers(6, 250, (1, 48, 48)).astype(np.uint8)  # study B: 8-bit files of the same stain
            w.add(eight, f"eight{k}", ["DNA"])
    stats = channel_stats([open_dataset(tmp_path / "d")])
    assert {"DNA", "DNA|uint8", "DNA|uint16", "*"} <= set(stats) and "several dtypes" in caplog.text
    a = normalize_planes(twelve, "dataset", stats=plane_stats(["DNA"], 1, stats, twelve.dtype))
    b = normalize_planes(eight, "dataset", stats=plane_stats(["DNA"], 1, stats, eight.dtype))
    assert float(a.mean()) > 0.3 and abs(float(a.mean()) - float(b.mean())) < 0.05
    # the stats of a model trained before (no per-dtype entry) still apply as they did
    assert plane_stats(["DNA"], 1, {"DNA": [0.0, 0.5]}, np.uint16) == [[0.0, 0.5]]
    # one dtype per stain: no extra entries, the config stays as it was
    with DatasetWriter(tmp_path / "one") as w:
        w.add(twelve, "t", ["DNA"])
    assert set(channel_stats([open_dataset(tmp_path / "one")])) == {"DNA", "*"}


def test_dataset_normalisation_stretches_a_plane_wholly_below_the_training_range(caplog):
    """8-bit values in a 16-bit file (the DSB crops) fall below a 16-bit stain's whole range: they would be
    blanked to zeros, so the plane is scaled on its own percentiles and the scale change is said once."""
    lo, hi = 326 / 65535, 1966 / 65535  # DNA in 16-bit camera counts over the uint16 range
    rng = np.random.default_rng(0)
    eight_bit = rng.integers(0, 232, size=(1, 32, 32)).astype(np.uint16)
    with caplog.at_level("WARNING", logger="chadavit.data.normalize"):
        out = normalize_planes(eight_bit, "dataset", stats=[[lo, hi]])
    assert float(out.max()) == 1.0 and float(out.std()) > 0.1  # not blanked
    assert "wholly below" in caplog.text
    dim = rng.integers(300, 700, size=(1, 32, 32)).astype(np.uint16)  # same camera, a dim cell: absolute scale kept
    np.testing.assert_allclose(normalize_planes(dim, "dataset", stats=[[lo, hi]]).numpy(),
                               np.clip((dim / 65535 - lo) / (hi - lo), 0, 1), rtol=1e-5, atol=1e-6)
    blank = np.zeros((1, 32, 32), np.uint16)  # an empty plane stays empty
    assert float(normalize_planes(blank, "dataset", stats=[[lo, hi]]).abs().max()) == 0.0


def test_8_bit_values_in_a_16_bit_file_use_the_stains_8_bit_statistics():
    """The DSB crops: uint16 arrays holding 0-231. With per-dtype DNA statistics they take the uint8 entry."""
    from chadavit.batch import ChannelBatch

    stats = {"DNA|uint16": [326 / 65535, 1966 / 65535], "DNA|uint8": [10 / 255, 200 / 255], "DNA": [0.0, 1.0]}
    img = np.random.default_rng(1).integers(0, 232, size=(1, 16, 16)).astype(np.uint16)
    wide = ChannelBatch.from_images([img], channel_names=[("DNA",)], normalize="dataset", stats=stats).planes
    narrow = ChannelBatch.from_images([img.astype(np.uint8)], channel_names=[("DNA",)], normalize="dataset",
                                      stats=stats).planes
    torch.testing.assert_close(wide, narrow)  # same numbers as the 8-bit image, absolute scale kept
    only16 = {"DNA|uint16": stats["DNA|uint16"], "DNA": [0.0, 1.0]}  # no 8-bit data in training: left as it is
    assert as_stats_dtype(img, only16).dtype == np.uint16
