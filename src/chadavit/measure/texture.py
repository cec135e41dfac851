"""CellProfiler's MeasureTexture (Haralick features) for all objects of a 2-D label image at once.

cp_measure 0.3 (``get_texture``) cuts each object out of the quantised image and calls mahotas' ``haralick`` on
it: a Python call and four co-occurrence matrices per object and channel, most of a field's measuring time.
Here every co-occurrence matrix of every object comes from one ``bincount`` per direction, and the 13 features
are computed on the stacked matrices with mahotas' formulas, including its quirks: a matrix is as wide as the
object's brightest grey level (feature 10, the variance of P(|x-y|), depends on that width), pairs with a
zero grey level are ignored, and an object with no pair in some direction gets NaN for every feature. Tests
compare with cp_measure.
"""

from __future__ import annotations

import numpy as np

SCALE = 3
_DELTAS = ((0, 1), (1, 1), (1, 0), (1, -1))  # mahotas' 2-D directions


def quantise(labels: np.ndarray, pixels: np.ndarray, gray_levels: int) -> np.ndarray:
    """cp_measure's grey levels: 8-bit, 0 outside the objects, rescaled from 0-255 to ``0..gray_levels-1``."""
    from skimage.exposure import rescale_intensity
    from skimage.util import img_as_ubyte

    q = img_as_ubyte(pixels, force_copy=True)
    q[labels == 0] = 0
    if gray_levels != 256:
        q = rescale_intensity(q, in_range=(0, 255), out_range=(0, gray_levels - 1)).astype(np.uint8)
    return q


def cooccurrence(labels: np.ndarray, q: np.ndarray, n: int, levels: int, scale: int = SCALE) -> np.ndarray:
    """Symmetric co-occurrence counts ``(4, n, levels, levels)`` of grey-level pairs ``scale`` pixels apart
    inside the same object, pairs with a zero level left out."""
    h, w = labels.shape
    out = np.zeros((len(_DELTAS), n, levels, levels), np.int64)
    for d, (dy, dx) in enumerate(_DELTAS):
        dy, dx = dy * scale, dx * scale
        ys, ye = 0, h - dy
        xs, xe = max(0, -dx), w - max(0, dx)
        if ye <= ys or xe <= xs:
            continue
        la, lb = labels[ys:ye, xs:xe], labels[ys + dy : ye + dy, xs + dx : xe + dx]
        a, b = q[ys:ye, xs:xe], q[ys + dy : ye + dy, xs + dx : xe + dx]
        ok = (la == lb) & (la > 0) & (a > 0) & (b > 0)
        obj, ga, gb = la[ok].astype(np.int64) - 1, a[ok].astype(np.int64), b[ok].astype(np.int64)
        flat = np.bincount(obj * levels * levels + ga * levels + gb, minlength=n * levels * levels)
        m = flat.reshape(n, levels, levels)
        out[d] = m + m.transpose(0, 2, 1)
    return out


def _entropy(p: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    return -(np.log2(np.where(p == 0, 1.0, p)) * p).sum(axis=axis)


def haralick(cmat: np.ndarray, width: np.ndarray) -> np.ndarray:
    """mahotas' 13 Haralick features of co-occurrence matrices ``(..., L, L)`` whose objects' matrices are
    ``width`` wide (the levels above are zero); NaN where a matrix is empty."""
    levels = cmat.shape[-1]
    t = cmat.sum(axis=(-2, -1)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = cmat / t[..., None, None]
    k = np.arange(levels, dtype=float)
    i, j = np.meshgrid(k, k, indexing="ij")
    px, py = p.sum(-2), p.sum(-1)
    ux, uy = px @ k, py @ k
    vx, vy = px @ (k * k) - ux**2, py @ (k * k) - uy**2
    sx, sy = np.sqrt(vx), np.sqrt(vy)
    flat = p.reshape(*p.shape[:-2], levels * levels)
    to_sum = np.eye(2 * levels)[(i + j).astype(int).ravel()]  # (L*L, 2L): P(x+y) and P(|x-y|) as products
    to_diff = np.eye(levels)[np.abs(i - j).astype(int).ravel()]
    plus, minus = flat @ to_sum, flat @ to_diff
    f = np.zeros((*p.shape[:-2], 13))
    f[..., 0] = (flat * flat).sum(-1)
    f[..., 1] = minus @ (k * k)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (1.0 / sx / sy) * ((flat @ (i * j).ravel()) - ux * uy)
    f[..., 2] = np.where((sx == 0) | (sy == 0), 1.0, corr)
    f[..., 3] = vx
    f[..., 4] = flat @ (1.0 / ((i - j) ** 2 + 1)).ravel()
    tk = np.arange(2 * levels, dtype=float)
    f[..., 5] = plus @ tk
    f[..., 7] = _entropy(plus, (-1,))
    f[..., 6] = plus @ (tk * tk) - f[..., 5] ** 2
    f[..., 8] = _entropy(flat, (-1,))
    wid = np.broadcast_to(width, f.shape[:-1])
    valid = k < wid[..., None]
    mean = np.where(valid, minus, 0).sum(-1) / wid
    f[..., 9] = np.where(valid, (minus - mean[..., None]) ** 2, 0).sum(-1) / wid
    f[..., 10] = _entropy(minus, (-1,))
    hx, hy = _entropy(px, (-1,)), _entropy(py, (-1,))
    cross = px[..., :, None] * py[..., None, :]
    cross = np.where(cross == 0, 1.0, cross).reshape(flat.shape)
    hxy1 = -(flat * np.log2(cross)).sum(-1)
    hxy2 = -(np.log2(cross) * cross).sum(-1)
    hmax = np.maximum(hx, hy)
    with np.errstate(divide="ignore", invalid="ignore"):
        f[..., 11] = np.where(hmax == 0, f[..., 8] - hxy1, (f[..., 8] - hxy1) / hmax)
    f[..., 12] = np.sqrt(np.maximum(0, 1 - np.exp(-2.0 * (hxy2 - f[..., 8]))))
    f[t == 0] = np.nan
    return f


def texture(labels: np.ndarray, pixels: np.ndarray, gray_levels: int = 256, scale: int = SCALE
            ) -> dict[str, np.ndarray]:
    """``Texture_<Feature>_<scale>_<direction>_<levels>`` per object (labels ``1..N``), as cp_measure's
    ``get_texture`` returns them."""
    from cp_measure.core.measuretexture import _pack

    n = int(labels.max()) if labels.size else 0
    q = quantise(labels, pixels, gray_levels)
    levels = int(q.max()) + 1
    width = _max_per_label(labels, q, n) + 1.0  # mahotas' matrix of an object: up to its brightest level
    cmat = cooccurrence(labels, q, n, levels, scale)  # (4, n, L, L)
    feats = haralick(cmat, width)  # (4, n, 13)
    feats[:, (cmat.sum(axis=(2, 3)) == 0).any(axis=0)] = np.nan  # an empty direction: mahotas raises, NaN
    return _pack(feats.transpose(0, 2, 1), scale, gray_levels)


def _max_per_label(labels: np.ndarray, q: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n + 1)
    np.maximum.at(out, labels.ravel(), q.ravel().astype(float))
    return out[1:]
