"""Grouped train/test splits: every cell of one group (a field, or a spatial block of it) stays on one side.

Neighbouring crops overlap and share a field's staining and focus, so a per-cell random split lets a
probe memorise the field; splitting by group measures what transfers to unseen fields.
"""

from __future__ import annotations

import numpy as np


def grouped_split_indices(groups: np.ndarray, seed: int, test_fraction: float = 0.3,
                          labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of whole groups; about ``test_fraction`` of the cells go to test.

    Groups are taken in a seeded random order until the test side holds ``test_fraction`` of the cells. With
    class ``labels``, up to 50 draws are tried and the first whose two sides both contain every class is kept
    (else the draw with the most classes on the smaller side), so a rare class is not absent from training.
    """
    g = np.asarray(groups).astype(str)
    uniq = np.unique(g)
    if len(uniq) < 2:
        raise ValueError(f"a grouped split needs at least 2 groups, got {len(uniq)}")
    rng = np.random.default_rng(seed)
    counts = {u: int((g == u).sum()) for u in uniq}
    classes = np.unique(labels) if labels is not None else None
    best, best_score = None, -1
    for _ in range(50 if labels is not None else 1):
        order = rng.permutation(uniq)
        test_groups, n_test = [], 0
        for u in order[:-1]:  # at least one group stays in train
            if n_test >= test_fraction * len(g):
                break
            test_groups.append(u)
            n_test += counts[u]
        is_test = np.isin(g, test_groups)
        tr, te = np.nonzero(~is_test)[0], np.nonzero(is_test)[0]
        if classes is None:
            return tr, te
        lab = np.asarray(labels)
        score = min(len(np.unique(lab[tr])), len(np.unique(lab[te])))
        if score == len(classes):
            return tr, te
        if score > best_score:
            best, best_score = (tr, te), score
    assert best is not None
    return best
