"""Saving and loading our own weights: ``model.safetensors`` plus ``config.json``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from chadavit.errors import ChadavitError
from chadavit.models.catalog import build_model
from chadavit.models.config import ChadaViTConfig, ModelConfigError
from chadavit.version import __version__

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class CheckpointError(ChadavitError, ValueError):
    """A weights file does not fit the model; the message lists the offending keys by name."""


def weights_digest(model: nn.Module) -> str:
    """SHA-256 over the model's state (names, dtypes, shapes and bytes, in name order), first 16 hex digits.

    What the features depend on, whatever file or repository the weights came from: a resumed or
    merged embedding compares it to refuse mixing two models in one table.
    """
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def strict_load(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with a message naming every missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                    for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if shapes:
            parts.append(f"shape mismatches {shapes}")
        raise CheckpointError(f"{source}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def save_pretrained(model: nn.Module, out_dir: str | os.PathLike[str], extra: dict | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors``; each file appears atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config: ChadaViTConfig = model.config  # type: ignore[assignment]
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = out / f".{WEIGHTS_NAME}.tmp-{os.getpid()}"
    save_file(state, str(tmp), metadata={"format": "pt", "architecture": config.architecture})
    os.chmod(tmp, 0o644)  # safetensors creates 0600 files; weights are shared like every other output
    os.replace(tmp, out / WEIGHTS_NAME)
    meta = {"chadavit_version": __version__, "config": config.to_dict(), **(extra or {})}
    tmp = out / f".{CONFIG_NAME}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, out / CONFIG_NAME)
    return out


def load_config(path: str | os.PathLike[str]) -> ChadaViTConfig:
    p = Path(path)
    cfg_path = p / CONFIG_NAME if p.is_dir() else p
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: no model config found (expected {CONFIG_NAME} from save_pretrained)")
    try:
        data = json.loads(cfg_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({exc}); an interrupted download or copy? "
                              "fetch or save the checkpoint again") from None
    if not isinstance(data, dict) or not isinstance(data.get("config", data), dict):
        raise CheckpointError(f"{cfg_path}: expected a JSON object with the model settings")
    try:
        return ChadaViTConfig.from_dict(data.get("config", data))
    except ModelConfigError as exc:
        raise CheckpointError(f"{cfg_path}: {exc}") from None


def read_safetensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file; a damaged (e.g. truncated) file is a :class:`CheckpointError`."""
    try:
        return load_file(str(path), device=device)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        raise CheckpointError(f"{path}: unreadable safetensors file ({type(exc).__name__}: {exc}); an interrupted "
                              "download or copy? fetch or save the checkpoint again") from None


def load_pretrained(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a ``save_pretrained`` folder, loading its weights strictly."""
    folder = Path(path)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS_NAME} found")
    model = build_model(load_config(folder))
    strict_load(model, read_safetensors(weights, device=str(map_location)), str(weights))
    return model.eval()
