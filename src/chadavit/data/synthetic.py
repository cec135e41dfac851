"""Seeded synthetic fluorescence-like single-cell images with known labels.

Why: pretraining, tests and evaluation need multi-channel microscopy images with *any* channel
set and ground-truth phenotypes, on a machine with no downloads. Every image is one cell centred in
a ``size x size`` crop, rendered per channel from one shared cell geometry, then turned into raw
``uint16`` camera counts with background, uneven illumination, Poisson shot noise and read noise.

Channels (``SYNTHETIC_CHANNELS``) and what they show:

=============  ===================================================================
DNA            nucleus with chromatin texture; its size/brightness/shape follow the stage
cytoplasm      diffuse cytoplasmic stain
membrane       bright ring at the plasma membrane
mitochondria   puncta scattered in the cytoplasm
ER             reticular network, denser around the nucleus
protein        protein of interest: pattern given by ``localisation`` + a diffuse pool with
               nuclear:cytoplasmic ratio ``translocation``
actin          cortical ring plus oriented stress fibres
golgi          compact perinuclear cluster
nucleoli       1-4 blobs inside the nucleus
brightfield    phase-contrast-like texture: bright background, dark edge, halo, granules
=============  ===================================================================

Labels (one row per image in ``cells.labels``):

- ``localisation`` (int): 0 nuclear, 1 cytoplasmic, 2 membrane, 3 punctate, 4 ER-like, 5 nucleolar
  (names in ``LOCALISATIONS``); visible only in the ``protein`` channel.
- ``stage`` (int): cell-cycle-like stage 0 G1, 1 S, 2 G2, 3 M (``STAGES``); visible mostly in DNA.
- ``translocation`` (float): nuclear:cytoplasmic intensity ratio of the protein's diffuse pool
  (log-uniform in [0.25, 4]; shifted by compounds).
- ``compound``, ``moa``, ``batch`` (str): with ``n_compounds > 0`` each image is treated with one
  compound; each compound belongs to one mechanism of action (MoA) whose phenotype shift it applies
  with its own potency; ``batch`` adds a nuisance shift (per-channel gain, background, illumination).
  With ``n_compounds == 0`` they are ``"none"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

SYNTHETIC_CHANNELS: tuple[str, ...] = (
    "DNA", "cytoplasm", "membrane", "mitochondria", "ER", "protein", "actin", "golgi", "nucleoli", "brightfield",
)
LOCALISATIONS: tuple[str, ...] = ("nuclear", "cytoplasmic", "membrane", "punctate", "ER", "nucleolar")
STAGES: tuple[str, ...] = ("G1", "S", "G2", "M")
STAGE_PROBS = np.array([0.4, 0.25, 0.2, 0.15])

# phenotype axes a mechanism of action can shift (standard deviations of the shift in brackets)
_PHENO = ("cell_size", "nuc_size", "dna_int", "mito_count", "mito_int", "er_int", "ruggedness",
          "log_transloc", "actin_int", "golgi_spread", "mitotic")
_N_PHENO = len(_PHENO)

# channel brightness (signal counts at full scale) and camera background, by channel
_GAIN = {"DNA": 9000, "cytoplasm": 3500, "membrane": 5000, "mitochondria": 7000, "ER": 4000, "protein": 6000,
         "actin": 5000, "golgi": 6000, "nucleoli": 5000, "brightfield": 12000}


@dataclass
class SyntheticCells:
    """Result of :func:`generate_cells`."""

    images: list[np.ndarray]
    channel_names: tuple[str, ...]
    labels: pd.DataFrame

    def __len__(self) -> int:
        return len(self.images)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return f / (f.std() + 1e-8)


def _soft(d: np.ndarray, edge: float = 0.8) -> np.ndarray:
    """Soft inside-mask from a signed distance-like value (positive inside)."""
    return 1.0 / (1.0 + np.exp(-np.clip(d / edge, -30, 30)))


def _puncta(rng: np.random.Generator, weight: np.ndarray, count: int, sigma: float) -> np.ndarray:
    """``count`` gaussian spots placed with probability proportional to ``weight``."""
    p = weight.ravel().astype(np.float64)
    s = p.sum()
    out = np.zeros_like(weight, dtype=np.float32)
    if count <= 0 or s <= 0:
        return out
    idx = rng.choice(p.size, size=count, p=p / s)
    np.add.at(out.ravel(), idx, rng.uniform(0.6, 1.4, count).astype(np.float32))
    out = ndimage.gaussian_filter(out, sigma)
    return out / (out.max() + 1e-8)


@dataclass
class _Setting:
    """Study-level constants: compound table, MoA shift vectors, batch nuisances."""

    moa_of: list[int]
    compound_shift: np.ndarray  # (n_compounds, _N_PHENO)
    batch_gain: np.ndarray  # (n_batches, len(SYNTHETIC_CHANNELS))
    batch_bg: np.ndarray  # (n_batches,)
    batch_illum: np.ndarray  # (n_batches, 2) illumination gradient direction * strength


def _setting(seed: int, n_compounds: int, n_moa: int, n_batches: int) -> _Setting:
    rng = np.random.default_rng([seed, 7_000_001])
    moa_dirs = rng.standard_normal((max(n_moa, 1), _N_PHENO))
    moa_dirs /= np.linalg.norm(moa_dirs, axis=1, keepdims=True)
    moa_of = [i % max(n_moa, 1) for i in range(n_compounds)]
    rng.shuffle(moa_of)
    shifts = np.zeros((n_compounds, _N_PHENO))
    for c in range(n_compounds):
        potency = rng.uniform(0.8, 1.6)
        own = rng.standard_normal(_N_PHENO) * 0.25
        shifts[c] = potency * (moa_dirs[moa_of[c]] + own)
    gain = np.exp(rng.normal(0, 0.15, (n_batches, len(SYNTHETIC_CHANNELS))))
    bg = rng.uniform(80, 220, n_batches)
    illum = rng.normal(0, 0.12, (n_batches, 2))
    return _Setting(moa_of, shifts, gain, bg, illum)


@dataclass
class _Cell:
    """One cell's geometry, shared by all its channels, and the planes that several channels reuse.

    The reused planes (nucleoli, mitochondria, ER, DNA) are drawn from ``rng`` the first time a channel asks
    for them, so the random stream, and hence every image, depends on the order of ``channels``.
    """

    rng: np.random.Generator
    s: int
    yy: np.ndarray
    xx: np.ndarray
    ph: dict[str, float]
    stage: int
    mitotic: bool
    rc: float  # cell radius
    r: np.ndarray  # distance from the cell centre (in the cell's elliptic frame)
    rcell: np.ndarray  # the cell boundary's radius at each pixel's angle
    cell: np.ndarray
    ny: float
    nx: float
    nuc: np.ndarray
    cyto: np.ndarray
    memb: np.ndarray
    cache: dict[str, np.ndarray]

    def noise(self, sigma: float) -> np.ndarray:
        return _smooth_noise(self.rng, (self.s, self.s), sigma)

    def nucleoli(self) -> np.ndarray:
        if "nucleoli" not in self.cache:
            n = 0 if self.mitotic else int(self.rng.integers(1, 5))
            self.cache["nucleoli"] = _puncta(self.rng, self.nuc**4, n, sigma=max(1.0, 0.07 * self.rc)) * self.nuc
        return self.cache["nucleoli"]

    def mito(self) -> np.ndarray:
        if "mito" not in self.cache:
            n = int(max(4, self.rc * 1.3 * np.exp(0.3 * self.ph["mito_count"])))
            self.cache["mito"] = _puncta(self.rng, self.cyto * (0.3 + self.cell), n, sigma=0.9)
        return self.cache["mito"]

    def er(self) -> np.ndarray:
        if "er" not in self.cache:
            f = self.noise(1.6)
            ridge = np.exp(-((f / 0.35) ** 2))
            dist_nuc = np.sqrt((self.yy - self.ny) ** 2 + (self.xx - self.nx) ** 2) / max(self.rc, 1.0)
            self.cache["er"] = ridge * self.cyto * np.exp(-1.2 * dist_nuc) * 1.8
        return self.cache["er"]

    def dna(self) -> np.ndarray:
        tex = 1 + 0.25 * self.noise(1.0)
        if self.stage == 1:  # replication foci
            tex = tex + 0.8 * _puncta(self.rng, self.nuc, int(self.rc), 0.8)
        level = (0.55, 0.75, 1.0, 1.4)[self.stage] * np.exp(0.2 * self.ph["dna_int"])
        return np.clip(self.nuc * tex * level * (1 - 0.4 * self.nucleoli() if not self.mitotic else 1), 0, None)


def _outline(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, s: int, ph: dict[str, float],
             mitotic: bool) -> tuple[float, float, float, np.ndarray, np.ndarray]:
    """The cell's centre, radius and ruggedly bounded outline: ``(cy, cx, rc, r, rcell)``."""
    cy, cx = s / 2 + rng.normal(0, s * 0.03, 2)
    rc = min(s * rng.uniform(0.27, 0.35) * np.exp(0.12 * ph["cell_size"]) * (0.82 if mitotic else 1.0), s * 0.44)
    alpha = rng.uniform(0, np.pi)
    ecc = 1.0 if mitotic else rng.uniform(1.0, 1.35)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(alpha) + dy * np.sin(alpha)) / ecc
    v = -dx * np.sin(alpha) + dy * np.cos(alpha)
    r = np.sqrt(u * u + v * v) + 1e-6
    th = np.arctan2(v, u)
    rug = max(0.0, 1.0 + 0.5 * ph["ruggedness"]) * (0.3 if mitotic else 1.0)
    bound = np.ones_like(r)
    for k in (2, 3, 5):
        bound += rug * rng.uniform(0, 0.07) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    return cy, cx, rc, r, rc * bound


def _nucleus(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, rc: float,
             stage: int, ph: dict[str, float]) -> tuple[float, float, np.ndarray]:
    """The nucleus' centre and soft mask ``(ny, nx, nuc)``; in mitosis a metaphase plate."""
    nuc_frac = (0.40, 0.45, 0.50, 0.0)[stage] * np.exp(0.1 * ph["nuc_size"])
    off = rng.normal(0, 0.08 * rc, 2)
    ny, nx = cy + off[0], cx + off[1]
    beta = rng.uniform(0, np.pi)
    ndy, ndx = yy - ny, xx - nx
    nu = ndx * np.cos(beta) + ndy * np.sin(beta)
    nv = -ndx * np.sin(beta) + ndy * np.cos(beta)
    if stage == 3:  # metaphase plate: a bright elongated bar, no nuclear envelope
        return ny, nx, _soft(1.0 - np.sqrt((nu / (0.42 * rc)) ** 2 + (nv / (0.11 * rc)) ** 2), 0.08)
    rn = rc * nuc_frac
    ne = rng.uniform(1.0, 1.2)
    nr = np.sqrt((nu / ne) ** 2 + nv**2) + 1e-6
    nth = np.arctan2(nv, nu)
    nb = 1 + rng.uniform(0, 0.05) * np.cos(2 * nth + rng.uniform(0, 6.3))
    return ny, nx, _soft(rn * nb - nr)


def _geometry(rng: np.random.Generator, s: int, stage: int, ph: dict[str, float]) -> _Cell:
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    cy, cx, rc, r, rcell = _outline(rng, yy, xx, s, ph, stage == 3)
    cell = _soft(rcell - r)
    ny, nx, nuc = _nucleus(rng, yy, xx, cy, cx, rc, stage, ph)
    nuc = nuc * cell
    cyto = np.clip(cell - nuc, 0, 1)
    memb = np.exp(-(((r - rcell) / 1.2) ** 2)) * (0.5 + 0.5 * _soft(rcell + 3 - r))
    return _Cell(rng, s, yy, xx, ph, stage, stage == 3, rc, r, rcell, cell, ny, nx, nuc, cyto, memb, {})


def _protein(c: _Cell, loc: int, transloc: float) -> np.ndarray:
    """The protein of interest: its localisation pattern plus a diffuse nuclear/cytoplasmic pool."""
    if loc == 0:
        pat = c.nuc * (1 - 0.6 * c.nucleoli()) * (1 + 0.15 * c.noise(1.0))
    elif loc == 1:
        pat = c.cyto * (0.8 + 0.2 * c.noise(2.5))
    elif loc == 2:
        pat = c.memb
    elif loc == 3:
        pat = _puncta(c.rng, c.cyto, int(max(5, c.rc * 0.6)), sigma=1.1) * 1.3
    elif loc == 4:
        pat = c.er()
    else:
        pat = c.nucleoli() * 1.3 if not c.mitotic else _puncta(c.rng, c.cell, 3, 1.5)
    t = transloc * np.exp(0.3 * c.ph["log_transloc"])
    diffuse = 0.2 * (c.nuc * np.sqrt(t) + c.cyto / np.sqrt(t))
    return np.clip(pat, 0, None) + diffuse


def _actin(c: _Cell) -> np.ndarray:
    ang = c.rng.uniform(0, np.pi)
    f = ndimage.gaussian_filter(c.rng.standard_normal((c.s, c.s)).astype(np.float32), (0.6, 4.0))
    f = ndimage.rotate(f, np.degrees(ang), reshape=False, mode="wrap")
    fib = np.clip(f / (f.std() + 1e-8), 0, None) * 0.35
    return (c.memb * 0.7 + fib * c.cyto) * np.exp(0.25 * c.ph["actin_int"])


def _golgi(c: _Cell) -> np.ndarray:
    side = c.rng.uniform(0, 2 * np.pi)
    gy, gx = c.ny + np.sin(side) * c.rc * 0.5, c.nx + np.cos(side) * c.rc * 0.5
    spread = 0.18 * c.rc * np.exp(0.35 * c.ph["golgi_spread"])
    w = np.exp(-((c.yy - gy) ** 2 + (c.xx - gx) ** 2) / (2 * spread**2)) * c.cyto
    return _puncta(c.rng, w, int(c.rng.integers(4, 10)), 1.0)


def _brightfield(c: _Cell) -> np.ndarray:
    edge = np.exp(-(((c.r - c.rcell) / 1.5) ** 2))
    halo = np.exp(-(((c.r - c.rcell - 2.5) / 1.5) ** 2))
    gran = np.abs(c.noise(0.8)) * c.cyto * 0.15
    return 0.6 - 0.35 * edge + 0.15 * halo - gran - 0.05 * c.nuc


# the noiseless signal of each channel but ``protein`` (which also needs the labels), in [0, ~1.5]
_SIGNALS = {
    "DNA": _Cell.dna,
    "cytoplasm": lambda c: c.cyto * (0.5 + 0.15 * c.noise(2.0)) + 0.15 * c.nuc,
    "membrane": lambda c: c.memb * (0.8 + 0.2 * c.noise(1.5)),
    "mitochondria": lambda c: c.mito() * np.exp(0.25 * c.ph["mito_int"]),
    "ER": lambda c: c.er() * np.exp(0.25 * c.ph["er_int"]),
    "actin": _actin,
    "golgi": _golgi,
    "nucleoli": lambda c: c.nucleoli() + 0.1 * c.nuc,
    "brightfield": _brightfield,
}


def _camera(c: _Cell, sig: np.ndarray, name: str, batch_gain: np.ndarray, batch_bg: float,
            batch_illum: np.ndarray) -> np.ndarray:
    """Signal to ``uint16`` counts: channel gain, background, uneven illumination, shot and read noise."""
    s, rng = c.s, c.rng
    k = SYNTHETIC_CHANNELS.index(name)
    gain = _GAIN[name] * float(batch_gain[k]) * rng.uniform(0.8, 1.25)
    illum = 1 + batch_illum[0] * (c.yy / s - 0.5) + batch_illum[1] * (c.xx / s - 0.5)
    expected = batch_bg + np.clip(sig, 0, None) * gain * illum
    counts = rng.poisson(np.clip(expected, 0, None) / 2.0) * 2.0 + rng.normal(0, 6, (s, s))
    return np.clip(counts, 0, 65535).astype(np.uint16)


def _render(rng: np.random.Generator, size: int, channels: Sequence[str], loc: int, stage: int, transloc: float,
            shift: np.ndarray, batch_gain: np.ndarray, batch_bg: float, batch_illum: np.ndarray) -> np.ndarray:
    c = _geometry(rng, size, stage, dict(zip(_PHENO, shift)))
    planes = []
    for name in channels:
        if name == "protein":
            sig = _protein(c, loc, transloc)
        elif name in _SIGNALS:
            sig = _SIGNALS[name](c)
        else:
            raise ValueError(f"unknown synthetic channel {name!r}; choose from {', '.join(SYNTHETIC_CHANNELS)}")
        planes.append(_camera(c, sig, name, batch_gain, batch_bg, batch_illum))
    return np.stack(planes)


def generate_cells(n: int = 200, channels: Sequence[str] = ("DNA", "protein", "membrane"), size: int = 64,
                   seed: int = 0, n_compounds: int = 0, n_moa: int | None = None,
                   n_batches: int = 3) -> SyntheticCells:
    """``n`` single-cell images ``(len(channels), size, size)`` uint16 with labels; deterministic in ``seed``.

    Image ``i`` depends only on ``(seed, i)`` and the study setting, so a larger ``n`` extends a smaller one.
    ``n_moa`` defaults to ``max(2, n_compounds // 3)``.
    """
    channels = tuple(str(c) for c in channels)
    if not channels:
        raise ValueError("channels must name at least one channel")
    bad = [c for c in channels if c not in SYNTHETIC_CHANNELS]
    if bad:
        raise ValueError(f"unknown synthetic channel(s) {bad}; choose from {', '.join(SYNTHETIC_CHANNELS)}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    n_moa = max(2, n_compounds // 3) if n_moa is None else n_moa
    n_moa = min(n_moa, n_compounds) if n_compounds > 0 else 0
    st = _setting(seed, n_compounds, n_moa, max(1, n_batches))
    images, rows = [], []
    for i in range(int(n)):
        rng = np.random.default_rng([seed, i])
        loc = int(rng.integers(len(LOCALISATIONS)))
        transloc = float(np.exp(rng.uniform(np.log(0.25), np.log(4.0))))
        if n_compounds > 0:
            c = int(rng.integers(n_compounds))
            b = int(rng.integers(max(1, n_batches)))
            shift = st.compound_shift[c]
            probs = STAGE_PROBS * np.exp(np.array([0, 0, 0, 0.8 * shift[_PHENO.index("mitotic")]]))
            compound, moa, batch = f"cpd{c:02d}", f"moa{st.moa_of[c]}", f"batch{b}"
        else:
            b, shift, probs = 0, np.zeros(_N_PHENO), STAGE_PROBS
            compound = moa = batch = "none"
        stage = int(rng.choice(len(STAGES), p=probs / probs.sum()))
        img = _render(rng, size, channels, loc, stage, transloc, shift, st.batch_gain[b],
                      float(st.batch_bg[b]), st.batch_illum[b])
        t_eff = transloc * float(np.exp(0.3 * shift[_PHENO.index("log_transloc")]))
        images.append(img)
        rows.append({"localisation": loc, "stage": stage, "translocation": t_eff,
                     "compound": compound, "moa": moa, "batch": batch})
    labels = pd.DataFrame(rows, columns=["localisation", "stage", "translocation", "compound", "moa", "batch"])
    return SyntheticCells(images=images, channel_names=channels, labels=labels)


def random_channel_sets(n_studies: int, seed: int = 0, min_channels: int = 1,
                        max_channels: int = 10) -> list[tuple[str, ...]]:
    """Channel sets of ``n_studies`` studies, 1 to 10 channels each, in vocabulary order."""
    rng = np.random.default_rng([seed, 5_000_003])
    out = []
    for _ in range(n_studies):
        k = int(rng.integers(min_channels, max_channels + 1))
        idx = sorted(rng.choice(len(SYNTHETIC_CHANNELS), size=k, replace=False).tolist())
        out.append(tuple(SYNTHETIC_CHANNELS[j] for j in idx))
    return out


def write_synthetic_dataset(out: str | os.PathLike[str], studies: Sequence[Sequence[str]] | int = 6,
                            images_per_study: int = 100, size: int = 64, seed: int = 0,
                            n_compounds: int = 0) -> Path:
    """Write a multi-study chadavit dataset: every study has its own channel set.

    ``studies`` is a list of channel tuples or a count (channel sets drawn by :func:`random_channel_sets`).
    Label columns (``localisation``, ``stage``, ``translocation``, ``compound``, ``moa``, ``batch``) and
    ``study`` are stored as extra manifest columns; ``source`` is ``synthetic/<study>``.
    """
    from chadavit.data.dataset import DatasetWriter

    sets = random_channel_sets(studies, seed) if isinstance(studies, int) else [tuple(s) for s in studies]
    path = Path(out)
    with DatasetWriter(path, attrs={"generator": "chadavit.data.synthetic", "seed": seed}) as w:
        for k, chans in enumerate(sets):
            study = f"study{k:02d}"
            cells = generate_cells(images_per_study, chans, size=size, seed=seed * 1000 + k, n_compounds=n_compounds)
            for i, (img, row) in enumerate(zip(cells.images, cells.labels.itertuples(index=False))):
                image_id = f"syn-s{seed}-{study}-{i:05d}"
                if image_id in w:
                    continue
                w.add(img, image_id, chans, source=f"synthetic/{study}", imaging_method="synthetic fluorescence",
                      study=study, localisation=int(row.localisation), stage=int(row.stage),
                      translocation=float(row.translocation), compound=row.compound, moa=row.moa, batch=row.batch)
    return path
