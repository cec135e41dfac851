"""Model specs: one string names any encoder, for ``--model`` in ``embed``, ``eval`` and experiments.

``DIR``                               one of our checkpoints (``model.safetensors`` + ``config.json``)
``RUN_DIR`` / ``RUN_DIR/checkpoint.pt`` a ``chadavit pretrain`` run: its ``backbone/`` (teacher), or the
                                      teacher in the training checkpoint when the run has not finished
``official:PATH[:teacher|:student]``  an official ChAda-ViT ``.ckpt`` or backbone ``.safetensors`` (student by default)
``PATH.ckpt`` / ``PATH.safetensors``  the same, student
``...,num_heads=N,final_norm_eps=E``  settings of an official checkpoint that its tensors do not record
                                      (e.g. ``official:ChAdaViT.ckpt:teacher,num_heads=2``)
``hf:OWNER/NAME[@REVISION]``         a model on the Hugging Face Hub (ours or the official release)
``random:PRESET[,key=value...]``      a preset at random initialisation (seeded), with config overrides,
                                      e.g. ``random:fixed_channel_vit_tiny,in_chans=3``
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chadavit.errors import ChadavitError

OFFICIAL_SUFFIXES = (".ckpt", ".safetensors", ".pth", ".pt")
OFFICIAL_OPTIONS = ("num_heads", "final_norm_eps")
TRAINING_CHECKPOINT = "checkpoint.pt"  # written by chadavit pretrain (chadavit.pretrain.trainer.CHECKPOINT_NAME)
_OPTION = re.compile(r",\s*(num_heads|final_norm_eps)\s*=\s*([^,]*)\s*$")

log = logging.getLogger(__name__)


class ModelSpecError(ChadavitError, ValueError):
    """A model spec names nothing loadable; the message says what forms are accepted."""


def _parse_value(v: str) -> object:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def split_official_options(spec: str) -> tuple[str, dict[str, Any]]:
    """``"official:X.ckpt:teacher,num_heads=2"`` -> ``("official:X.ckpt:teacher", {"num_heads": 2})``."""
    opts: dict[str, Any] = {}
    while m := _OPTION.search(spec):
        key, raw = m.group(1), m.group(2).strip()
        try:
            opts[key] = int(raw) if key == "num_heads" else float(raw)
        except ValueError:
            raise ModelSpecError(f"model spec {spec!r}: {key}={raw!r} is not a number") from None
        spec = spec[: m.start()]
    return spec, opts


def is_official(spec: str) -> bool:
    """Whether a spec (without options) names an official checkpoint, the only kind without stored settings."""
    path = Path(spec)
    training = path.name == TRAINING_CHECKPOINT and (path.parent / "config.yaml").is_file()
    return spec.startswith("official:") or (path.suffix.lower() in OFFICIAL_SUFFIXES and not training)


def with_official_options(spec: str, num_heads: int | None = None, final_norm_eps: float | None = None) -> str:
    """Add command-line ``--num-heads`` / ``--final-norm-eps`` to a spec that does not set them itself."""
    base, have = split_official_options(spec.strip())
    if not is_official(base):
        return spec  # our checkpoints and presets record their settings
    for key, value in (("num_heads", num_heads), ("final_norm_eps", final_norm_eps)):
        if value is not None and key not in have:
            spec += f",{key}={value}"
    return spec


def load_official(path: str | Path, opts: dict[str, Any], teacher: bool = False) -> nn.Module:
    """An official checkpoint, saying every time which head count and final-norm eps are assumed."""
    from chadavit.models.io import CheckpointError
    from chadavit.models.official import DEFAULT_FINAL_NORM_EPS, DEFAULT_NUM_HEADS, load_official_checkpoint

    if not Path(path).is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    heads = opts.get("num_heads", DEFAULT_NUM_HEADS)
    eps = opts.get("final_norm_eps", DEFAULT_FINAL_NORM_EPS)
    assumed = [k for k in OFFICIAL_OPTIONS if k not in opts]
    how = (f"{', '.join(assumed)} assumed (not stored in the file; set with --num-heads / --final-norm-eps or "
           f"',num_heads=N,final_norm_eps=E' in the model spec if it was trained otherwise, see docs/models.md)"
           if assumed else "as given")
    (log.warning if assumed else log.info)("official checkpoint %s: num_heads=%s, final_norm_eps=%g (%s)",
                                           path, heads, eps, how)
    return load_official_checkpoint(path, num_heads=heads, final_norm_eps=eps, teacher=teacher)


def _load_training_checkpoint(path: Path) -> nn.Module:
    """The teacher backbone of a ``chadavit pretrain`` training checkpoint (what ``backbone/`` holds at the end).

    The model is rebuilt from the encoder config the trainer stores in the checkpoint (``backbone_config``):
    the pretraining YAML cannot say it, since ``channel_vocab: auto`` and ``dataset`` statistics are resolved
    from the training data when the run starts. Checkpoints written before that key existed are rebuilt from the
    YAML with their stored statistics; a vocabulary that cannot be recovered is reported, never guessed.
    """
    from chadavit.models.catalog import build_model
    from chadavit.models.config import ChadaViTConfig
    from chadavit.models.io import CheckpointError, strict_load

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read the training checkpoint ({type(exc).__name__}: {exc})") from exc
    cfg = state.get("config", {}) if isinstance(state, dict) else {}
    if "teacher" not in state or "model" not in cfg:
        raise CheckpointError(f"{path}: not a chadavit pretrain checkpoint (no teacher weights and model config)")
    if "backbone_config" in state:
        model = build_model(ChadaViTConfig.from_dict(state["backbone_config"]))
    else:
        model = _model_from_legacy_checkpoint(path, cfg, state)
    prefix = "backbone."
    strict_load(model, {k[len(prefix):]: v for k, v in state["teacher"].items() if k.startswith(prefix)}, str(path))
    log.info("%s: using the teacher backbone of the training checkpoint (step %s)", path, state.get("step", "?"))
    return model.eval()


def _model_from_legacy_checkpoint(path: Path, cfg: dict[str, Any], state: dict[str, Any]) -> nn.Module:
    """A checkpoint without ``backbone_config``: the YAML's model, its statistics, and no guessed vocabulary."""
    from chadavit.models.factory import create_model
    from chadavit.models.io import CheckpointError

    overrides = dict(cfg["model"].get("overrides", {}))
    if overrides.get("channel_vocab") == "auto":
        raise CheckpointError(f"{path}: this checkpoint predates stored encoder configs and its channel vocabulary "
                              "was 'auto' (taken from the training data), so it cannot be rebuilt safely; resume the "
                              "run for a step with this version of chadavit, or use the run's backbone/ folder")
    model = create_model(cfg["model"]["name"], **overrides)
    norm = cfg.get("data", {}).get("normalization", "auto")
    stats = state.get("normalization_stats")
    if stats:
        model.config = model.config.replace(normalization="dataset", normalization_stats=stats)
    elif norm != "auto":
        model.config.normalization = norm
    return model


def _load_run_folder(path: Path) -> nn.Module | None:
    """A pretraining run folder: ``backbone/`` when training finished, else the training checkpoint."""
    from chadavit.models.io import load_pretrained

    if (path / "backbone" / "config.json").is_file():
        log.info("%s is a pretraining run: using %s", path, path / "backbone")
        return load_pretrained(path / "backbone")
    if (path / TRAINING_CHECKPOINT).is_file():
        return _load_training_checkpoint(path / TRAINING_CHECKPOINT)
    return None


def load_model_from_spec(spec: str, num_heads: int | None = None, seed: int = 0, allow_bare_preset: bool = False,
                         final_norm_eps: float | None = None) -> nn.Module:
    """Build the model ``spec`` names (see the module docstring); weights in eval mode.

    ``allow_bare_preset`` accepts ``PRESET`` for ``random:PRESET``; tools that produce features for
    users keep it off, so that nobody embeds a plate with random weights by accident. ``num_heads``
    and ``final_norm_eps`` apply to official checkpoints (options in the spec take precedence).
    """
    from chadavit.models.catalog import list_models
    from chadavit.models.factory import create_model
    from chadavit.models.io import load_pretrained

    spec = spec.strip()
    if spec.startswith("hf:"):
        from chadavit.models.hub import load_from_hub

        return load_from_hub(spec)
    if spec.startswith("random:") or (allow_bare_preset and spec.split(",")[0] in list_models()):
        name, *opts = spec.removeprefix("random:").split(",")
        if name not in list_models():
            raise ModelSpecError(f"unknown preset {name!r} in model spec {spec!r}; presets: {', '.join(list_models())}")
        overrides = {}
        for opt in opts:
            if "=" not in opt:
                raise ModelSpecError(f"model spec {spec!r}: override {opt!r} is not key=value")
            key, value = opt.split("=", 1)
            overrides[key.strip()] = _parse_value(value.strip())
        from chadavit.models.config import ModelConfigError

        torch.manual_seed(seed)
        try:
            return create_model(name, **overrides).eval()
        except ModelConfigError as exc:
            raise ModelSpecError(f"model spec {spec!r}: {exc}") from None
    merged = with_official_options(spec, num_heads, final_norm_eps)
    if not spec.startswith("random:") and not is_official(split_official_options(spec)[0]) and (
            num_heads is not None or final_norm_eps is not None):
        log.warning("--num-heads / --final-norm-eps apply to official checkpoints only; %s records its own "
                    "settings, so they are ignored", spec)
    spec, opts = split_official_options(merged)
    if spec.startswith("official:"):
        rest, teacher = spec[len("official:"):], False
        for role in ("teacher", "student"):
            if rest.endswith(f":{role}"):
                rest, teacher = rest[: -len(role) - 1], role == "teacher"
        if not Path(rest).is_file():
            raise ModelSpecError(f"model spec {spec}: official checkpoint {rest} not found")
        return load_official(rest, opts, teacher=teacher)
    path = Path(spec)
    if path.is_dir():
        if (path / "config.json").is_file():
            return load_pretrained(path)
        run = _load_run_folder(path)
        if run is not None:
            return run
        raise ModelSpecError(f"model spec {spec}: folder has no config.json (expected a save_pretrained checkpoint "
                             f"or a pretraining run with backbone/ or {TRAINING_CHECKPOINT})")
    if path.is_file():
        if path.name == "model.safetensors" and (path.parent / "config.json").is_file():
            return load_pretrained(path.parent)
        if path.name == TRAINING_CHECKPOINT and (path.parent / "config.yaml").is_file():
            return _load_training_checkpoint(path)
        if path.suffix.lower() in OFFICIAL_SUFFIXES:
            return load_official(path, opts)
        raise ModelSpecError(f"model spec {spec}: unsupported file type {path.suffix!r} "
                             f"(use {', '.join(OFFICIAL_SUFFIXES)})")
    if spec.split(",")[0] in list_models():
        raise ModelSpecError(f"model spec {spec} is a preset without weights; write random:{spec} to use a randomly "
                             "initialised model (useful only as a baseline), or give a checkpoint")
    raise ModelSpecError(f"model spec {spec}: no such checkpoint folder or file; use DIR, official:PATH[:teacher], "
                         "PATH.ckpt|.safetensors or random:PRESET")
