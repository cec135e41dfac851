"""``create_model``: a preset at random initialisation, or weights from a folder or the Hub.

Top of the models package: it imports the catalog (presets), io (our checkpoints) and hub (``hf:``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from chadavit.models.catalog import build_model, get_config, list_models
from chadavit.models.hub import HF_PREFIX, load_from_hub
from chadavit.models.io import CheckpointError, load_pretrained

# fields that must agree between a preset and pretrained weights loaded under its name
_SHAPE_FIELDS = ("embed_dim", "depth", "num_heads", "patch_size")


def create_model(name: str, pretrained: str | os.PathLike[str] | None = None, **overrides: Any) -> nn.Module:
    """Build preset ``name``; with ``pretrained`` load weights instead (eval mode).

    ``pretrained`` is a ``save_pretrained`` folder or ``hf:OWNER/NAME[@REVISION]`` (the released model:
    ``create_model("chada_vit_moyen", pretrained="hf:nicoboou/chadavit16-moyen")``). The weights'
    own config wins (e.g. the official "legacy" block arithmetic), but its sizes must match the preset
    when ``name`` is a registered preset (any other name is only a label).
    ``overrides`` replace preset fields (e.g. ``depth=4``) and cannot be combined with ``pretrained``.
    """
    if pretrained is None:
        return build_model(get_config(name, **overrides))
    if overrides:
        raise ValueError("config overrides cannot be combined with pretrained weights")
    spec = str(pretrained)
    model = load_from_hub(spec) if spec.startswith(HF_PREFIX) else load_pretrained(Path(spec))
    if name not in list_models():
        return model
    preset, got = get_config(name), model.config
    diff = [f"{k}: preset {getattr(preset, k)} vs weights {getattr(got, k)}" for k in _SHAPE_FIELDS
            if getattr(preset, k) != getattr(got, k)]
    if preset.architecture != got.architecture:
        diff.insert(0, f"architecture: preset {preset.architecture} vs weights {got.architecture}")
    if diff:
        raise CheckpointError(f"{spec}: the weights do not fit preset {name!r} ({'; '.join(diff)})")
    return model
