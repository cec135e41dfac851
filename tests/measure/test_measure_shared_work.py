"""The measurements whose label-only / image-only work is shared (granularity, radial, Zernike) or vectorised
(texture) give cp_measure's numbers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cp_measure", reason="cp_measure not installed")

from cp_measure.bulk import get_core_measurements  # noqa: E402

from chadavit.measure.granularity import granularity_sets  # noqa: E402
from chadavit.measure.radial import RadialGeometry, ZernikeBasis  # noqa: E402


def blobs(shape: tuple[int, int], n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured image, ``n`` disk-ish labels ``1..n`` (some touching the border) and a ring set around them."""
    from skimage.segmentation import expand_labels

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    for k in range(1, n + 1):
        cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(2, 9)
        labels[((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (labels == 0)] = k
    from cp_measure._sanitize import sanitize_masks

    labels = np.asarray(sanitize_masks(labels)[0], np.int32)
    ring = np.where(labels > 0, 0, expand_labels(labels, 3)).astype(np.int32)
    img = rng.gamma(2.0, 0.1, shape) + 0.5 * (labels > 0)
    img[: shape[0] // 3, : shape[1] // 4] = 0.0  # a dark corner: objects whose mean is 0 (masked-array edge cases)
    return img / img.max(), labels, np.asarray(sanitize_masks(ring)[0], np.int32)


@pytest.mark.parametrize("shape,n", [((64, 64), 4), ((200, 160), 25)])
def test_shared_granularity_radial_and_zernike_equal_cp_measure(shape: tuple[int, int], n: int) -> None:
    fns = get_core_measurements(sanitize=False)
    img, labels, ring = blobs(shape, n, seed=n)
    for got, lab in zip(granularity_sets(img, [labels, ring]), [labels, ring]):
        want = fns["granularity"](lab, img)
        assert list(got) == list(want)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    for lab in (labels, ring):
        basis, geo = ZernikeBasis.of(lab), RadialGeometry.of(lab)
        for got, want in ((basis.shape(), fns["zernike"](lab, None)),
                          (basis.intensity(img), fns["radial_zernikes"](lab, img)),
                          (geo.measure(img), fns["radial_distribution"](lab, img))):
            assert list(got) == list(want)
            for k in want:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-15, equal_nan=True, err_msg=k)


def test_granularity_of_an_image_too_small_to_subsample_is_nan_not_zero() -> None:
    lab = np.ones((6, 6), np.int32)
    (res,) = granularity_sets(np.random.default_rng(0).random((6, 6)), [lab])
    assert len(res) == 16 and all(np.isnan(v).all() for v in res.values())


@pytest.mark.parametrize("gray_levels", [16, 256])
def test_vectorised_texture_equals_cp_measure(gray_levels: int) -> None:
    from chadavit.measure.texture import texture

    fns = get_core_measurements(sanitize=False)
    img, labels, ring = blobs((120, 100), 12, seed=3)  # radii 2-9: some objects too thin for pairs 3 px apart
    line = np.zeros((20, 20), np.int32)
    line[5, 2:12] = 1  # a horizontal line: no vertical pair, so every texture feature is undefined
    nan_seen = False
    for lab in (labels, ring, line):
        if lab is line:
            img = np.random.default_rng(0).random(line.shape)
        want = fns["texture"](lab, img, gray_levels=gray_levels)
        got = texture(lab, img, gray_levels=gray_levels)
        assert list(got) == list(want)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=k)
        nan_seen |= any(np.isnan(v).any() for v in want.values())
    assert nan_seen  # the NaN rule was exercised


def test_a_family_with_no_column_for_these_channels_gives_an_empty_table_not_an_error() -> None:
    from chadavit.measure import measure_objects

    img, labels, _ = blobs((64, 64), 4, seed=4)
    df, reasons = measure_objects(img[None], ["DNA"], {"Nuclei": labels}, ["pearson"])  # no channel pair
    assert df.shape == (int(labels.max()), 0) and reasons == {}
    df, _ = measure_objects(img[None], ["DNA"], {"Nuclei": labels}, ["pearson", "intensity"])
    assert df.shape[0] == int(labels.max()) and all(c.startswith("cp_Nuclei_Intensity_") for c in df.columns)
