"""Weights on the Hugging Face Hub: ``hf:OWNER/NAME[@REVISION]`` loads, ``push_to_hub`` publishes.

Two layouts load:

* ours (``save_pretrained``: ``config.json`` with a ``config`` section, ``model.safetensors``), which
  is also what :func:`push_folder` publishes, so a pushed model loads back the same way;
* the official release (``nicoboou/chadavit16-moyen``: a flat ``config.json`` with ``embed_dim``,
  ``num_heads``, ``depth`` ... and ``model.safetensors`` with the official key names under any prefix).

Files come through ``huggingface_hub.hf_hub_download``, so its cache, revision pinning and
``HF_HUB_OFFLINE`` / ``HF_ENDPOINT`` / ``HF_HUB_CACHE`` / ``HF_TOKEN`` apply. The environment is read
at call time (``huggingface_hub`` reads it once at import), so setting a variable in a running
program takes effect. The resolved commit is recorded in the model config (``source``, ``revision``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chadavit.errors import ChadavitError
from chadavit.models.catalog import build_model
from chadavit.models.io import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, load_config, read_safetensors, strict_load
from chadavit.models.io import save_pretrained as _save_folder
from chadavit.models.official import convert_official_state, official_config
from chadavit.net import unreachable

HF_PREFIX = "hf:"
# OWNER/NAME as the Hub spells them: letters, digits, '-', '_', '.', not starting or ending with '-' or '.'
_NAME = r"[A-Za-z0-9_](?:[\w.\-]{0,94}[A-Za-z0-9_])?"
_REPO_RX = re.compile(rf"^{_NAME}/{_NAME}$")
_REVISION_RX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")
# official config.json keys that may carry the final LayerNorm eps (the class default is 1e-5)
_EPS_KEYS = ("final_norm_eps", "norm_eps", "layer_norm_eps", "eps")
_TRUE = {"1", "on", "yes", "true"}


_SAID_CACHED: set[tuple[str, str | None]] = set()
log = logging.getLogger(__name__)


class HubError(ChadavitError, ValueError):
    """A Hub model cannot be found, downloaded or read; the message names the repository and file."""


class HubExtraMissing(HubError, ImportError):
    """``huggingface_hub`` is not installed."""


def check_revision(revision: str | None, where: str) -> str | None:
    """``revision`` if it is a branch, tag or commit name: ``/``-separated plain segments, no ``..``.

    huggingface_hub writes ``refs/<revision>`` in its cache, so ``main/../../../x`` would overwrite a
    file outside the cache with a commit id.
    """
    if revision is None:
        return None
    if not _REVISION_RX.match(revision) or ".." in revision or revision.endswith((".lock", "/")) or \
            any(seg in (".", "") for seg in revision.split("/")) or len(revision) > 255:
        raise HubError(f"{where}: revision {revision!r} is not a branch, tag or commit name (letters, digits, "
                       "'.', '_', '-', segments joined by '/'; no '..', no leading '/')")
    return revision


def parse_hf_spec(spec: str) -> tuple[str, str | None]:
    """``hf:OWNER/NAME[@REVISION]`` (the ``hf:`` prefix optional) -> ``(repo_id, revision or None)``."""
    body = spec.strip().removeprefix(HF_PREFIX)
    repo, _, revision = body.partition("@")
    if not _REPO_RX.match(repo) or ".." in repo:
        raise HubError(f"model spec {spec!r}: expected hf:OWNER/NAME[@REVISION], e.g. hf:nicoboou/chadavit16-moyen")
    return repo, check_revision(revision or None, f"model spec {spec!r}")


def _hub() -> Any:
    try:
        import huggingface_hub
        import huggingface_hub.constants
        import huggingface_hub.errors
    except ImportError as exc:
        raise HubExtraMissing("hf: models need huggingface_hub: pip install 'chadavit[hub]' "
                              "(or pip install huggingface_hub)") from exc
    return huggingface_hub


def hub_settings() -> dict[str, Any]:
    """Endpoint, cache folder, offline flag and token from the environment as it is now."""
    hub = _hub()
    const = hub.constants
    cache = os.environ.get("HF_HUB_CACHE") or (
        str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME") else const.HF_HUB_CACHE)
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE or bool(const.HF_HUB_OFFLINE)
    return {"endpoint": os.environ.get("HF_ENDPOINT") or const.ENDPOINT, "cache_dir": cache,
            "offline": offline, "token": os.environ.get("HF_TOKEN") or None}


def download_file(repo_id: str, filename: str, revision: str | None = None) -> Path:
    """One file of a model repository, from the cache or the endpoint; errors name repo, revision and file."""
    hub = _hub()
    s = hub_settings()
    where = f"hf:{repo_id}{'@' + revision if revision else ''} {filename}"
    check_revision(revision, where)
    why = None if s["offline"] else unreachable(s["endpoint"])
    try:
        path = hub.hf_hub_download(repo_id, filename, revision=revision, cache_dir=s["cache_dir"],
                                   local_files_only=s["offline"] or why is not None, endpoint=s["endpoint"],
                                   token=s["token"])
    except hub.errors.LocalEntryNotFoundError:
        hint = ("HF_HUB_OFFLINE is set and the file is not in the cache" if s["offline"]
                else f"the endpoint {s['endpoint']} cannot be reached ({why or 'no answer'}) and the file is not "
                     "in the cache")
        raise HubError(f"{where}: {hint} ({s['cache_dir']})") from None
    except hub.errors.HFValidationError as exc:
        raise HubError(f"{where}: not a valid repository name or revision ({exc})") from None
    except hub.errors.RevisionNotFoundError as exc:
        raise HubError(f"{where}: revision {revision!r} not found") from exc
    except hub.errors.EntryNotFoundError as exc:
        raise HubError(f"{where}: no such file in the repository") from exc
    except hub.errors.RepositoryNotFoundError as exc:
        raise HubError(f"{where}: repository not found (or private: set HF_TOKEN)") from exc
    except (OSError, hub.errors.HfHubHTTPError) as exc:
        raise HubError(f"{where}: download failed ({type(exc).__name__}: {exc})") from exc
    if why is not None and (repo_id, revision) not in _SAID_CACHED:
        _SAID_CACHED.add((repo_id, revision))  # one line per model, not one per file
        log.warning("hf:%s: %s; using the cached copy in %s", repo_id, why, s["cache_dir"])
    return Path(path)


def _commit_of(path: Path) -> str:
    """The commit a cached file belongs to: the cache lays files out as ``snapshots/<commit>/<file>``."""
    return path.parent.name if path.parent.parent.name == "snapshots" else ""


def strip_official_prefix(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Official backbone keys whatever they sit under (``model.``, ``backbone.``, ``chada_vit.``, none)."""
    anchors = [k for k in state if k == "cls_token" or k.endswith(".cls_token")]
    if len(anchors) != 1:
        raise CheckpointError(f"{source}: expected exactly one '*cls_token' tensor, found {anchors or 'none'}; "
                              "not a ChAda-ViT backbone")
    prefix = anchors[0][: -len("cls_token")]
    outside = sorted(k for k in state if not k.startswith(prefix))
    if outside:
        raise CheckpointError(f"{source}: keys outside the backbone prefix {prefix!r}: {outside}")
    return {k[len(prefix):]: v for k, v in state.items()}


def official_hub_model(cfg: dict[str, Any], weights: Path, source: str) -> nn.Module:
    """Build the legacy ChAda-ViT that the official ``config.json`` describes and load its weights strictly."""
    if "num_heads" not in cfg:
        raise CheckpointError(f"{source}: config.json has no num_heads")
    eps = next((float(cfg[k]) for k in _EPS_KEYS if k in cfg), 1e-5)
    raw = read_safetensors(weights)
    state = strip_official_prefix(raw, source)
    config = official_config(state, int(cfg["num_heads"]), eps, source)
    for key, ours in (("embed_dim", config.embed_dim), ("depth", config.depth)):
        if key in cfg and int(cfg[key]) != ours:
            raise CheckpointError(f"{source}: config.json says {key}={cfg[key]} but the weights have {ours}")
    model = build_model(config)
    strict_load(model, convert_official_state(state, source), source)
    return model


def load_from_hub(spec: str) -> nn.Module:
    """Load ``hf:OWNER/NAME[@REVISION]`` (either layout, see the module docstring), in eval mode."""
    repo_id, revision = parse_hf_spec(spec)
    cfg_path = download_file(repo_id, CONFIG_NAME, revision)
    weights = download_file(repo_id, WEIGHTS_NAME, revision)
    commit = _commit_of(weights) or revision or ""
    source = f"hf:{repo_id}"
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{source} {CONFIG_NAME}: not valid JSON ({exc})") from exc
    if isinstance(cfg, dict) and isinstance(cfg.get("config"), dict):  # our save_pretrained layout
        model = build_model(load_config(cfg_path))
        strict_load(model, read_safetensors(weights), f"{source} {WEIGHTS_NAME}")
    elif isinstance(cfg, dict):
        model = official_hub_model(cfg, weights, source)
    else:
        raise CheckpointError(f"{source} {CONFIG_NAME}: expected a JSON object")
    model.config = model.config.replace(source=source, revision=commit)
    return model.eval()


def push_folder(folder: str | os.PathLike[str], repo_id: str, revision: str | None = None, private: bool = False,
                commit_message: str = "Upload chadavit model") -> str:
    """Publish a ``save_pretrained`` folder (``config.json`` + ``model.safetensors``) to ``repo_id``.

    Returns the URL of the commit. The repository is created when missing. The files go up unchanged,
    so ``hf:repo_id`` loads back exactly what ``load_pretrained(folder)`` gives.
    """
    hub = _hub()
    folder = Path(folder)
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    if missing:
        raise HubError(f"{folder}: not a save_pretrained folder (missing {', '.join(missing)})")
    if not _REPO_RX.match(repo_id):
        raise HubError(f"repository {repo_id!r}: expected OWNER/NAME")
    check_revision(revision, f"push to {repo_id}")
    load_config(folder)  # refuse to publish a folder whose config does not load
    s = hub_settings()
    if s["offline"]:
        raise HubError(f"cannot push to {repo_id}: HF_HUB_OFFLINE is set")
    api = hub.HfApi(endpoint=s["endpoint"], token=s["token"])
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model", revision=revision,
                                 commit_message=commit_message, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, "README.md"])
    except (OSError, hub.errors.HfHubHTTPError) as exc:
        raise HubError(f"push of {folder} to {repo_id} failed ({type(exc).__name__}: {exc})") from exc
    return str(getattr(info, "commit_url", info))


def save_pretrained(model: nn.Module, out_dir: str | os.PathLike[str], extra: dict | None = None,
                    push_to_hub: str | None = None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (atomically); ``push_to_hub="OWNER/NAME"`` also publishes them.

    What is pushed loads back with ``create_model(NAME, pretrained="hf:OWNER/NAME")`` or ``--model hf:OWNER/NAME``.
    """
    out = _save_folder(model, out_dir, extra=extra)
    if push_to_hub:
        push_folder(out, push_to_hub)
    return out
