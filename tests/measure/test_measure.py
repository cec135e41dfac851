"""Objects (nuclei, cells, cytoplasm) and CellProfiler measurements from cp_measure, on images with known answers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cp_measure", reason="cp_measure not installed (pip install 'chadavit[cellprofiler]')")

from chadavit.measure import (  # noqa: E402
    MeasureError,
    cellprofiler_columns,
    crop_objects,
    measure_objects,
    segment_field,
    to_unit,
)
from chadavit.measure.objects import NoNuclearStainError  # noqa: E402


def disk(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def two_cells(shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    """DNA: two nuclei (r 8); Actin: two cell bodies (r 18) around them; 16-bit."""
    rng = np.random.default_rng(0)
    dna = rng.normal(300, 20, shape)
    act = rng.normal(300, 20, shape)
    for cy, cx in ((48, 36), (48, 92)):
        dna[disk(shape, cy, cx, 8)] += 3000
        act[disk(shape, cy, cx, 18)] += 1500
    return np.stack([dna, act]).clip(0, 65535).astype(np.uint16)


def test_field_objects_nest_and_cytoplasm_is_cell_minus_nucleus():
    img = to_unit(two_cells())
    obj = segment_field(img, ["DNA", "Actin"])
    named = obj.named()
    assert list(named) == ["Nuclei", "Cells", "Cytoplasm"]
    nuc, cells, cyto = named["Nuclei"], named["Cells"], named["Cytoplasm"]
    assert sorted(np.unique(nuc[nuc > 0])) == [1, 2]
    for k in (1, 2):
        assert np.all(cells[nuc == k] == k)  # a nucleus lies in its own cell
        assert (cells == k).sum() > 3 * (nuc == k).sum()  # the cell body is much larger (r 18 vs 8)
        assert not np.any((cyto == k) & (nuc > 0))
        assert (cyto == k).sum() == (cells == k).sum() - (nuc == k).sum()


def test_measurements_are_named_as_cellprofiler_and_equal_direct_computation():
    raw = two_cells()
    img = to_unit(raw)
    names = ["DNA", "Actin"]
    obj = segment_field(img, names).named()
    df, reasons = measure_objects(img, names, obj)
    assert reasons == {}
    assert list(df.index) == [1, 2]
    assert list(df.columns) == cellprofiler_columns(names, list(obj))
    nuc = obj["Nuclei"]
    for k in (1, 2):
        assert df.loc[k, "cp_Nuclei_AreaShape_Area"] == (nuc == k).sum()
        assert df.loc[k, "cp_Nuclei_Intensity_MeanIntensity_DNA"] == pytest.approx(img[0][nuc == k].mean())
        assert df.loc[k, "cp_Cells_Intensity_IntegratedIntensity_Actin"] == pytest.approx(
            img[1][obj["Cells"] == k].sum())
    for col in ("cp_Cytoplasm_Texture_Contrast_Actin_3_00_16", "cp_Cells_Granularity_1_DNA",
                "cp_Nuclei_RadialDistribution_FracAtD_DNA_1of4", "cp_Cells_Correlation_Correlation_DNA_Actin",
                "cp_Cells_Correlation_Manders_Actin_DNA", "cp_Nuclei_AreaShape_Zernike_0_0",
                "cp_Nuclei_AreaShape_MaxFeretDiameter"):
        assert col in df.columns and np.isfinite(df[col]).all(), col
    assert not any("Location" in c or "Center_" in c for c in df.columns)  # position is not a cell property
    assert all(c.startswith(("cp_Nuclei_", "cp_Cells_", "cp_Cytoplasm_")) for c in df.columns)


def test_one_pixel_object_gets_a_reason_and_nan_not_zero():
    img = to_unit(two_cells())
    labels = np.zeros(img.shape[1:], np.int32)
    labels[disk(labels.shape, 48, 36, 8)] = 1
    labels[10, 10] = 2  # a 1-pixel object
    df, reasons = measure_objects(img, ["DNA", "Actin"], {"Nuclei": labels})
    assert "1 pixel" in reasons[2] and "too small" in reasons[2]
    assert df.loc[2].isna().all()  # never a row of zeros
    assert np.isfinite(df.loc[1, "cp_Nuclei_AreaShape_Area"])


def test_nucleus_touching_the_border_is_measured_on_its_visible_part():
    img = np.zeros((1, 64, 64))
    lab = np.zeros((64, 64), np.int32)
    m = disk((64, 64), 0, 30, 10)  # half outside the field
    lab[m] = 1
    img[0][m] = 0.5
    df, reasons = measure_objects(img, ["DNA"], {"Nuclei": lab})
    assert reasons == {} and df.loc[1, "cp_Nuclei_AreaShape_Area"] == m.sum()


def test_no_nuclear_stain_is_a_named_error_for_fields_and_a_documented_choice_for_crops():
    img = to_unit(two_cells())
    with pytest.raises(NoNuclearStainError, match="no nuclear stain among the channels"):
        segment_field(img, ["GFP", "Actin"])
    crop = crop_objects(img[:, 16:80, 4:68], ["GFP", "Actin"])  # single-cell crop: the central object
    assert crop.primary == "Cells" and list(crop.named()) == ["Cells"]
    with pytest.raises(MeasureError, match="unknown measurement families"):
        measure_objects(img, ["DNA", "Actin"], {"Nuclei": np.zeros(img.shape[1:], np.int32)}, families=["nope"])


def test_crop_objects_take_the_cell_nearest_the_centre():
    img = to_unit(two_cells())
    crop = img[:, 16:80, 60:124]  # centred on the right cell (48, 92)
    obj = crop_objects(crop, ["DNA", "Actin"]).named()
    nuc = obj["Nuclei"]
    ys, xs = np.nonzero(nuc)
    assert abs(ys.mean() - 32) < 2 and abs(xs.mean() - 32) < 2
    assert obj["Cells"].sum() > 3 * nuc.sum()


def test_the_whole_crop_as_image_gets_image_level_measurements_only():
    img = to_unit(two_cells())[:, 16:80, 4:68]
    named = crop_objects(img, ["DNA", "Actin"]).named(image=True)
    df, _ = measure_objects(img, ["DNA", "Actin"], named)
    image_cols = [c for c in df.columns if c.startswith("cp_Image_")]
    assert "cp_Image_Intensity_MeanIntensity_Actin" in image_cols and "cp_Image_Granularity_1_DNA" in image_cols
    assert not any("AreaShape" in c or "_Correlation_Correlation_" in c for c in image_cols)
    assert df.loc[1, "cp_Image_Intensity_MeanIntensity_Actin"] == pytest.approx(img[1].mean())
