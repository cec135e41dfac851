"""The hybrid rows of every report: CellProfiler measurements beside each trained model's compact vector.

The encoder is :class:`chadavit.models.references.HybridEncoder`; here it becomes a :class:`LoadedModel` whose
features are read from its two parts' cached features (the CellProfiler row's and the model's CLS), so no cell is
measured twice, neither within a run nor by a second run or the demo on the same data.
"""

from __future__ import annotations

from collections.abc import Sequence

from chadavit.evaluation.features import LoadedModel, load_model_spec, weights_hash
from chadavit.models.references import CellProfilerEncoder, HybridEncoder


def hybrid_models(models: Sequence[LoadedModel], baselines: Sequence[str]) -> list[LoadedModel]:
    """A hybrid ``CellProfiler + <model>`` for every trained model in ``models`` (not for baselines), reading the
    CellProfiler baseline's features when it is among ``models``."""
    cp = next((m for m in models if isinstance(m.model, CellProfilerEncoder)), None)
    out = []
    for lm in models:
        if lm.label in baselines or lm.one_vector:
            continue
        cp = cp or load_model_spec("cellprofiler")
        enc = HybridEncoder(lm.model, cp.model)  # type: ignore[arg-type]
        key = "hybrid-" + lm.key.rsplit("-", 1)[0][:50] + "-" + weights_hash(enc)
        out.append(LoadedModel(spec=f"hybrid:{lm.spec}", label=f"CellProfiler + {lm.label}", model=enc, key=key,
                               parts=(cp, lm)))
    return out
