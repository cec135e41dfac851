"""cp_measure's Zernike shape, radial Zernike and radial distribution features with the object geometry
computed once per object set instead of once per channel.

In cp_measure (0.3) ``get_zernike``, ``get_radial_zernikes`` and ``get_radial_distribution`` each start from
the labels alone: the enclosing circles and the Zernike polynomials of every object pixel, or the distance of
every pixel to its object's edge and centre. Only the last step uses a channel's pixels. Here that geometry is
built once (:class:`ZernikeBasis`, :class:`RadialGeometry`) and every channel reuses it; the arithmetic is
cp_measure's, in the same order, so the numbers are the same (tests compare them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ZERNIKE_DEGREE = 9  # cp_measure's defaults (CellProfiler's)
BIN_COUNT = 4


@dataclass
class ZernikeBasis:
    """Per object pixel (in object order): its object row, the radial polynomial of each Zernike index and
    the powers of ``z`` they are multiplied by; ``radii`` of the enclosing circles, pixel ``counts``."""

    n: int
    indexes: np.ndarray
    keep: np.ndarray
    seg: np.ndarray
    radial: list[np.ndarray]
    z_pows: dict[int, np.ndarray]
    radii: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray) -> ZernikeBasis:
        from centrosome import zernike

        indexes = zernike.get_zernike_indexes(ZERNIKE_DEGREE + 1)
        n = 0 if labels.size == 0 else int(labels.max())
        centers, radii = zernike.minimum_enclosing_circle(labels, np.arange(1, n + 1))
        radii = np.asarray(radii, dtype=float)
        if n == 0:
            return cls(0, indexes, np.zeros(labels.shape, bool), np.zeros(0, int), [], {}, radii, np.zeros(0))
        seg_full = np.arange(-1, n)[labels]
        keep = seg_full >= 0
        rows, cols = np.nonzero(keep)
        seg = seg_full[keep]
        counts = np.bincount(seg, minlength=n).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            ym = (rows - centers[seg, 0]) / radii[seg]
            xm = (cols - centers[seg, 1]) / radii[seg]
        coeffs = zernike.construct_zernike_lookuptable(indexes)
        r_square = xm * xm + ym * ym
        z = ym + 1j * xm
        z_pows, zp = {}, z
        for m in range(1, int(indexes[:, 1].max()) + 1):
            z_pows[m] = zp
            zp = zp * z
        radial = []
        for idx, (zn, zm) in enumerate(indexes):
            s = np.zeros_like(xm)
            for c in coeffs[idx, : (zn - zm) // 2 + 1]:
                s *= r_square
                s += c
            s[r_square > 1] = 0
            radial.append(s)
        return cls(n, indexes, keep, seg, radial, z_pows, radii, counts)

    def sums(self, weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Real and imaginary moment sums per object ``(n, K)`` (cp_measure's ``_zernike_scores``)."""
        k = len(self.indexes)
        real, imag = np.zeros((self.n, k)), np.zeros((self.n, k))
        if self.n == 0:
            return real, imag
        w = None if weight is None else weight[self.keep].astype(float)
        for idx, (_, zm) in enumerate(self.indexes):
            s = self.radial[idx] if w is None else self.radial[idx] * w
            if zm == 0:
                real[:, idx] = np.bincount(self.seg, weights=s, minlength=self.n)
            else:
                zf = s * self.z_pows[zm]
                real[:, idx] = np.bincount(self.seg, weights=zf.real, minlength=self.n)
                imag[:, idx] = np.bincount(self.seg, weights=zf.imag, minlength=self.n)
        return real, imag

    def shape(self) -> dict[str, np.ndarray]:
        """``Zernike_n_m`` shape features (cp_measure ``get_zernike``)."""
        real, imag = self.sums()
        areas = np.pi * self.radii * self.radii
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.sqrt(real**2 + imag**2) / areas[:, np.newaxis]
        return {f"Zernike_{n}_{m}": score[:, i] for i, (n, m) in enumerate(self.indexes)}

    def intensity(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """``RadialDistribution_ZernikeMagnitude/Phase_n_m`` of one channel (``get_radial_zernikes``)."""
        vr, vi = self.sums(pixels)
        magnitude = np.sqrt(vr * vr + vi * vi) / self.counts[:, np.newaxis]
        phase = np.arctan2(vr, vi)
        out = {}
        for i, (n, m) in enumerate(self.indexes):
            out[f"RadialDistribution_ZernikeMagnitude_{n}_{m}"] = magnitude[:, i]
            out[f"RadialDistribution_ZernikePhase_{n}_{m}"] = phase[:, i]
        return out


@dataclass
class RadialGeometry:
    """Each object pixel's scaled distance bin and octant around its object's centre (cp_measure
    ``get_radial_distribution`` with ``scaled=True, bin_count=4``, before the pixels are used)."""

    n: int
    good: np.ndarray
    labels_good: np.ndarray
    bins: np.ndarray
    radial_index: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray) -> RadialGeometry:
        import centrosome.cpmorphology
        import centrosome.propagate

        from cp_measure.core.measureobjectintensitydistribution import _maximum_position_of_labels

        n = int(labels.max())
        d_to_edge = centrosome.cpmorphology.distance_to_edge(labels)
        i, j = _maximum_position_of_labels(d_to_edge, labels, n)
        center_labels = np.zeros(labels.shape, int)
        center_labels[i, j] = labels[i, j]
        colors = centrosome.cpmorphology.color_labels(labels)
        d_from_center = np.zeros(labels.shape)
        cl = np.zeros(labels.shape, int)
        for color in range(1, np.max(colors) + 1):
            mask = colors == color
            l_, d = centrosome.propagate.propagate(np.zeros(center_labels.shape), center_labels, mask, 1)
            d_from_center[mask] = d[mask]
            cl[mask] = l_[mask]
        good = cl > 0
        i_center, j_center = np.zeros(cl.shape), np.zeros(cl.shape)
        i_center[good] = i[cl[good] - 1]
        j_center[good] = j[cl[good] - 1]
        normalized = np.zeros(labels.shape)
        total = d_from_center + d_to_edge
        normalized[good] = d_from_center[good] / (total[good] + 0.001)
        bins = (normalized * BIN_COUNT).astype(int)
        bins[bins > BIN_COUNT] = BIN_COUNT
        ii, jj = np.mgrid[0 : labels.shape[0], 0 : labels.shape[1]]
        imask = ii[good] > i_center[good]
        jmask = jj[good] > j_center[good]
        absmask = abs(ii[good] - i_center[good]) > abs(jj[good] - j_center[good])
        radial_index = imask.astype(int) + jmask.astype(int) * 2 + absmask.astype(int) * 4
        return cls(n, good, labels[good], bins, radial_index)

    def measure(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """``RadialDistribution_FracAtD / MeanFrac / RadialCV_<k>of4`` of one channel."""
        n, good, bins = self.n, self.good, self.bins
        labels_and_bins = (self.labels_good - 1, bins[good])
        hist = _dense(pixels[good], labels_and_bins, (n, BIN_COUNT + 1))
        frac_at_d = hist / np.dstack([hist.sum(1)] * (BIN_COUNT + 1))[0]
        number = _dense(np.ones(int(good.sum())), labels_and_bins, (n, BIN_COUNT + 1))
        frac_at_bin = number / np.dstack([number.sum(1)] * (BIN_COUNT + 1))[0]
        mean_frac = frac_at_d / (frac_at_bin + np.finfo(float).eps)
        good_bins = bins[good]
        out: dict[str, np.ndarray] = {}
        for b in range(BIN_COUNT):
            sel = good_bins == b
            labels_and_radii = (self.labels_good[sel] - 1, self.radial_index[sel])
            values = _dense(pixels[good][sel], labels_and_radii, (n, 8))
            count = _dense(np.ones(int(sel.sum())), labels_and_radii, (n, 8))
            cv = _radial_cv(values, count)
            tag = f"{b + 1}of{BIN_COUNT}"
            out[f"RadialDistribution_FracAtD_{tag}"] = frac_at_d[:, b]
            out[f"RadialDistribution_MeanFrac_{tag}"] = mean_frac[:, b]
            out[f"RadialDistribution_RadialCV_{tag}"] = np.array(cv)
        return out


def _dense(values: np.ndarray, rows_cols: tuple[np.ndarray, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """``scipy.sparse.coo_matrix((values, rows_cols), shape).toarray()``: duplicates summed in the same order."""
    flat = rows_cols[0].astype(np.int64) * shape[1] + rows_cols[1]
    return np.bincount(flat, weights=values, minlength=shape[0] * shape[1]).reshape(shape)


def _radial_cv(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per object, the coefficient of variation of the mean intensity over the octants that have pixels
    (cp_measure computes it on masked arrays; the same sums in plain numpy, masked arrays kept for the rare
    objects whose mean is 0 or that have no octant, where masked division has its own rules)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _cv(values, count)


def _cv(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    empty = count == 0
    cnt = (~empty).sum(1)
    vals = np.where(empty, 0.0, values / np.where(empty, 1, count))
    mean = vals.sum(1) * 1.0 / cnt
    dev = np.where(empty, 0.0, vals - mean[:, None])
    cv = np.sqrt((dev * dev).sum(1) / cnt) / mean
    odd = (cnt == 0) | (mean == 0) | ~np.isfinite(cv)
    if odd.any():
        means = np.ma.MaskedArray(values[odd] / count[odd], empty[odd])
        cv[odd] = np.array(np.std(means, 1) / np.mean(means, 1))
    cv[cnt == 0] = 0
    return cv
