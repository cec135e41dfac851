"""Speckle children per parent (EnhanceOrSuppressFeatures + IdentifyPrimaryObjects + RelateObjects) and the
crop's Background object, on synthetic images where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cp_measure", reason="cp_measure not installed (pip install 'chadavit[cellprofiler]')")

from chadavit.measure import Objects, cellprofiler_columns, measure_objects  # noqa: E402
from chadavit.measure.children import (  # noqa: E402
    Speckles,
    children_columns,
    identify_speckles,
    robust_background_threshold,
)

from .test_measure import disk  # noqa: E402

DOTS = ((26, 26), (26, 38), (38, 32))  # in the left nucleus
DOT_2 = ((32, 90),)  # in the right nucleus


def two_nuclei_with_dots(noise: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(2, 64, 128) image: DNA (two flat nuclei, r 14) and Foci (3 dots of r 2 in nucleus 1, 1 in nucleus 2,
    on a dim nuclear haze), both with Gaussian noise; labels of the nuclei 1 and 2."""
    shape = (64, 128)
    rng = np.random.default_rng(0)
    lab = np.zeros(shape, np.int32)
    lab[disk(shape, 32, 32, 14)] = 1
    lab[disk(shape, 32, 96, 14)] = 2
    dna = np.where(lab > 0, 0.5, 0.05) + noise * rng.standard_normal(shape)
    foci = np.where(lab > 0, 0.1, 0.02) + noise * rng.standard_normal(shape)
    for cy, cx in DOTS + DOT_2:
        foci[disk(shape, cy, cx, 2)] = 0.8
    return np.stack([dna, foci]).clip(0, 1), lab


def test_three_dots_in_a_nucleus_count_three_and_one_dot_counts_one():
    img, lab = two_nuclei_with_dots()
    df, reasons = measure_objects(img, ["DNA", "Foci"], {"Nuclei": lab}, families=["speckles"])
    assert reasons == {}
    assert list(df.columns) == children_columns("Nuclei", "DNA") + children_columns("Nuclei", "Foci")
    assert df.loc[1, "cp_Nuclei_Children_FociSpeckles_Count"] == 3
    assert df.loc[2, "cp_Nuclei_Children_FociSpeckles_Count"] == 1
    # a dot of 13 px, smoothed (sigma 1) before the threshold as IdentifyPrimaryObjects does: a wider object
    area = df.loc[1, "cp_Nuclei_Mean_FociSpeckles_AreaShape_Area"]
    assert disk((9, 9), 4, 4, 2).sum() <= area <= 4 * 13
    mean = df.loc[1, "cp_Nuclei_Mean_FociSpeckles_Intensity_MeanIntensity_Foci"]
    assert 0.1 < mean < 0.8
    one = df.loc[2, [f"cp_Nuclei_Mean_FociSpeckles_{m}" for m in ("AreaShape_Area", "Intensity_MeanIntensity_Foci",
                                                                   "Intensity_IntegratedIntensity_Foci")]]
    assert one.iloc[2] == pytest.approx(one.iloc[0] * one.iloc[1])  # one child: its own area x mean


def test_dots_survive_noise_and_children_relate_to_every_parent_set():
    img, lab = two_nuclei_with_dots(noise=0.01)
    cells = np.zeros_like(lab)
    cells[disk(lab.shape, 32, 32, 22)] = 1
    cells[disk(lab.shape, 32, 96, 22)] = 2
    cells[lab > 0] = lab[lab > 0]
    named = Objects(lab, cells).named()
    df, _ = measure_objects(img, ["DNA", "Foci"], named, families=["speckles"])
    for obj in ("Nuclei", "Cells"):
        # Robust Background (mean + 2 SD) lets some smoothed noise through: at least the dots, few more
        assert 3 <= df.loc[1, f"cp_{obj}_Children_FociSpeckles_Count"] <= 5, obj
    big = identify_speckles(img[1], cells > 0)
    ys, xs = zip(*(DOTS + DOT_2))
    assert len(set(big[ys, xs].tolist()) - {0}) == 4  # each dot is its own object
    assert df.loc[1, "cp_Cells_Children_FociSpeckles_Count"] >= df.loc[1, "cp_Nuclei_Children_FociSpeckles_Count"]


def test_a_child_goes_to_the_parent_it_overlaps_most():
    labels = np.zeros((10, 10), np.int32)
    labels[2:5, 2:6] = 1  # one child across two parents: 3 px in parent 1, 9 px in parent 2
    parents = np.zeros((10, 10), np.int32)
    parents[:, :3] = 1
    parents[:, 3:] = 2
    sp = Speckles(labels, np.array([[12.0, 0.5, 6.0]]))
    out = sp.per_parent(parents)
    assert out[:, 0].tolist() == [0, 1]
    assert np.isnan(out[0, 1]) and out[1, 1] == 12.0


def test_robust_background_threshold_drops_outliers():
    vals = np.concatenate([np.full(90, 1.0), np.full(5, 0.0), np.full(5, 100.0)])
    assert robust_background_threshold(vals) == pytest.approx(1.0)  # outliers gone, SD 0


def test_background_of_a_constant_offset_image_is_the_offset():
    shape = (48, 48)
    lab = disk(shape, 24, 24, 10).astype(np.int32)
    img = np.full((1, *shape), 0.125)
    img[0][lab > 0] += 0.5
    assert list(Objects(lab).named(image=True)) == ["Nuclei", "Image"]  # the evaluation's vector: no Background
    named = Objects(lab).named(image=True, background=True)
    assert list(named) == ["Nuclei", "Image", "Background"]
    assert not np.any((named["Background"] > 0) & (lab > 0))
    df, reasons = measure_objects(img, ["DNA"], named, families=["intensity"])
    assert reasons == {}
    assert df.loc[1, "cp_Background_Intensity_MeanIntensity_DNA"] == pytest.approx(0.125)
    assert df.loc[1, "cp_Background_Intensity_MedianIntensity_DNA"] == pytest.approx(0.125)
    assert df.loc[1, "cp_Nuclei_Intensity_MeanIntensity_DNA"] == pytest.approx(0.625)
    assert not any("Edge" in c or "MassDisplacement" in c for c in df.columns if "_Background_" in c)
    assert list(df.columns) == cellprofiler_columns(["DNA"], list(named), ["intensity"])


def test_an_object_filling_the_crop_leaves_background_nan_without_an_error():
    img = np.random.default_rng(1).random((1, 32, 32))
    named = Objects(np.ones((32, 32), np.int32)).named(image=True, background=True)
    df, reasons = measure_objects(img, ["DNA"], named, families=["intensity", "speckles"])
    assert reasons == {}  # the cell was measured; only its surroundings are missing
    assert df.filter(like="cp_Background_").isna().all(axis=None)
    assert np.isfinite(df.loc[1, "cp_Nuclei_Intensity_MeanIntensity_DNA"])
    assert list(df.columns) == cellprofiler_columns(["DNA"], list(named), ["intensity", "speckles"])


def test_speckle_enhancement_is_a_white_top_hat():
    from skimage.morphology import disk as sk_disk
    from skimage.morphology import white_tophat

    from chadavit.measure.children import enhance_speckles

    plane = np.random.default_rng(2).random((40, 50))
    np.testing.assert_allclose(enhance_speckles(plane, 10), white_tophat(plane, sk_disk(5)))
