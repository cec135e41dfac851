"""The synthetic cell generator: shapes, dtypes, determinism, labels, multi-study datasets."""

from __future__ import annotations

import numpy as np
import pytest

from chadavit.data.dataset import open_dataset
from chadavit.data.synthetic import (
    LOCALISATIONS,
    STAGES,
    SYNTHETIC_CHANNELS,
    generate_cells,
    random_channel_sets,
    write_synthetic_dataset,
)


def test_shapes_dtypes_and_labels():
    cells = generate_cells(n=24, channels=("DNA", "protein", "membrane"), size=48, seed=0)
    assert len(cells.images) == 24 and cells.channel_names == ("DNA", "protein", "membrane")
    for img in cells.images:
        assert img.shape == (3, 48, 48) and img.dtype == np.uint16
        assert img.max() > 1000  # a bright cell above the camera background
    lab = cells.labels
    assert list(lab.columns) == ["localisation", "stage", "translocation", "compound", "moa", "batch"]
    assert len(lab) == 24
    assert lab.localisation.between(0, len(LOCALISATIONS) - 1).all()
    assert lab.stage.between(0, len(STAGES) - 1).all()
    assert (lab.translocation > 0).all()
    assert set(lab.compound) == {"none"}


def test_every_channel_renders_and_differs():
    cells = generate_cells(n=2, channels=SYNTHETIC_CHANNELS, size=32, seed=3)
    img = cells.images[0].astype(np.float32)
    assert img.shape == (10, 32, 32)
    flat = img.reshape(10, -1)
    corr = np.corrcoef(flat)
    assert (np.abs(corr[np.triu_indices(10, 1)]) < 0.999).all()


def test_determinism_by_seed_and_prefix():
    a = generate_cells(n=5, seed=11, size=32)
    b = generate_cells(n=8, seed=11, size=32)
    c = generate_cells(n=5, seed=12, size=32)
    for x, y in zip(a.images, b.images):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a.images, c.images))
    assert a.labels.equals(b.labels.iloc[:5].reset_index(drop=True))


def test_compounds_moa_batch():
    cells = generate_cells(n=60, channels=("DNA", "mitochondria"), size=32, seed=1, n_compounds=6)
    lab = cells.labels
    assert lab.compound.str.startswith("cpd").all() and lab.batch.str.startswith("batch").all()
    # every compound belongs to exactly one MoA
    assert (lab.groupby("compound").moa.nunique() == 1).all()
    assert lab.moa.nunique() >= 2


def test_localisation_visible_in_protein_channel():
    cells = generate_cells(n=60, channels=("DNA", "protein"), size=48, seed=0)
    # nuclear protein correlates with DNA more than membrane protein does
    corr = [np.corrcoef(im[0].ravel().astype(float), im[1].ravel().astype(float))[0, 1] for im in cells.images]
    corr = np.array(corr)
    loc = cells.labels.localisation.to_numpy()
    assert corr[loc == 0].mean() > corr[loc == 2].mean() + 0.2


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown synthetic channel"):
        generate_cells(n=1, channels=("DNA", "GFP"))
    with pytest.raises(ValueError):
        generate_cells(n=1, channels=())


def test_multi_study_dataset(tmp_path):
    sets = random_channel_sets(5, seed=0)
    assert all(1 <= len(s) <= 10 for s in sets)
    path = write_synthetic_dataset(tmp_path / "syn", studies=[("DNA",), ("DNA", "protein", "ER")], images_per_study=4,
                                   size=32)
    ds = open_dataset(path)
    assert len(ds) == 8
    assert sorted(ds.manifest.n_channels.unique().tolist()) == [1, 3]
    assert {"localisation", "stage", "study"} <= set(ds.manifest.columns)
    img = ds.read(5)
    assert img.shape == (3, 32, 32) and img.dtype == np.uint16
    assert ds.channel_names(5) == ["DNA", "protein", "ER"]
