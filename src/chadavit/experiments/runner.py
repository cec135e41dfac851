"""Running an experiment: each run pretrains, evaluates its teacher backbone and writes ``metrics.json`` last.

Run directory ``OUT/runs/NAME/``:

``run.json``        the run as resolved from the experiment file
``config.yaml``     the resolved pretraining config (also in ``pretrain/config.yaml`` and the checkpoint)
``suite.yaml``      the resolved evaluation suite
``provenance.json`` package version, git commit, library versions, seeds, hardware (written at the start,
                    rewritten at the end with the wall times)
``pretrain/``       the trainer's outputs (checkpoint, backbone, metrics.jsonl, summary.json)
``eval/``           the suite's outputs (results.md, summary.csv, results_per_seed.csv, feature cache)
``metrics.json``    the evaluation summary + parameter count + provenance; written atomically, last: a run is
                    finished exactly when this file exists, and a re-run skips it.

An interrupted run resumes: the trainer continues from ``pretrain/checkpoint.pt`` and cached features are reused.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from chadavit.atomic import write_text_atomic
from chadavit.experiments.spec import Experiment, ExperimentError, RunSpec, pretrain_overrides

log = logging.getLogger(__name__)
METRICS = "metrics.json"


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str))


def is_finished(exp: Experiment, run: RunSpec, out: str | os.PathLike[str] | None = None) -> bool:
    return (exp.run_dir(run, out) / METRICS).is_file()


def load_suite_for(exp: Experiment) -> Any:
    """The experiment's evaluation suite (preset, file next to the experiment file, or inline mapping)."""
    from chadavit.evaluation.suite import Suite, load_suite

    ev = exp.evaluation
    spec = ev["suite"]
    variables = {str(k): str(v) for k, v in (ev.get("variables") or {}).items()}
    if isinstance(spec, dict):
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(spec, f)
        try:
            suite: Suite = load_suite(f.name, variables)
        finally:
            os.unlink(f.name)
        suite.source = f"{exp.source} (evaluation.suite)"
    else:
        suite = load_suite(exp.resolve_file(str(spec)), variables)
    if "seeds" in ev:
        suite.seeds = [int(s) for s in ev["seeds"]]
    if "batch_size" in ev:
        suite.batch_size = int(ev["batch_size"])
    return suite


def pretrain_config(exp: Experiment, run: RunSpec, out: str | os.PathLike[str] | None = None,
                    progress: bool = True) -> Any:
    from chadavit.pretrain.config import ConfigError, load_config

    try:
        return load_config(exp.resolve_file(exp.pretrain_config),
                           pretrain_overrides(exp, run, exp.run_dir(run, out), progress))
    except ConfigError as exc:
        raise ExperimentError(f"{exp.source}: run {run.name!r}: {exc}") from exc


def evaluation_model(run: RunSpec, backbone_dir: Path) -> Any:
    """The trained backbone as a frozen :class:`LoadedModel` labelled by the run (``eval_model`` applied)."""
    import re

    from chadavit.evaluation.features import LoadedModel, weights_hash
    from chadavit.models import load_encoder
    from chadavit.models.config import ModelConfigError

    try:
        model = load_encoder(str(backbone_dir), overrides=run.eval_model or None)
    except (ModelConfigError, TypeError) as exc:
        raise ExperimentError(f"run {run.name!r}: eval_model: {exc}") from exc
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", run.name)[:60] + "-" + weights_hash(model)
    return LoadedModel(spec=str(backbone_dir), label=run.label, model=model, key=key)


def count_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def untrained_backbone(cfg: Any, rdir: Path) -> dict[str, Any]:
    """Save the run's model at its seeded random initialisation (the trainer's first draw) as the backbone."""
    import torch

    from chadavit.models import save_pretrained
    from chadavit.pretrain.trainer import build_backbone

    torch.manual_seed(cfg.train.seed)
    path = save_pretrained(build_backbone(cfg), rdir / "pretrain" / "backbone")
    return {"backbone": str(path), "steps": 0, "total_steps": 0}


def run_one(exp: Experiment, run: RunSpec, out: str | os.PathLike[str] | None = None, force: bool = False,
            progress: bool = True, say: Callable[[str], Any] = print) -> dict[str, Any] | None:
    """Pretrain + evaluate one run; returns its metrics (None when it was already finished and not ``force``)."""
    from chadavit.experiments.provenance import provenance
    from chadavit.experiments.pretraining import pretrain

    rdir = exp.run_dir(run, out)
    if (rdir / METRICS).is_file() and not force:
        say(f"[{run.index}] {run.name}: finished earlier ({rdir / METRICS}), skipped")
        return None
    cfg = pretrain_config(exp, run, out, progress)
    suite = load_suite_for(exp)
    rdir.mkdir(parents=True, exist_ok=True)
    (rdir / METRICS).unlink(missing_ok=True)
    t0 = time.time()
    prov = provenance()
    seeds = {"pretrain": cfg.train.seed, "synthetic_data": cfg.data.synthetic.seed, "evaluation": suite.seeds}
    write_json_atomic(rdir / "run.json", {"experiment": exp.name, "experiment_file": str(exp.source), **run.to_dict()})
    (rdir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    (rdir / "suite.yaml").write_text(yaml.safe_dump(
        {"name": suite.name, "source": suite.source, "seeds": suite.seeds, "batch_size": suite.batch_size,
         "datasets": suite.datasets, "tasks": [{"name": t.name, "dataset": t.dataset, "protocol": t.protocol,
                                                "label": t.label, "features": t.features, **t.params}
                                               for t in suite.tasks]}, sort_keys=False))
    write_json_atomic(rdir / "provenance.json", {**prov, "seeds": seeds, "status": "running",
                                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    if run.untrained:
        summary = untrained_backbone(cfg, rdir)
        say(f"[{run.index}] {run.name}: {run.model} at random initialisation (seed {cfg.train.seed}), no pretraining")
    else:
        say(f"[{run.index}] {run.name}: pretraining {run.model} -> {rdir / 'pretrain'}")
        summary = pretrain(cfg)
    t_pre = time.time() - t0
    lm = evaluation_model(run, Path(summary["backbone"]))
    n_params = count_parameters(lm.model)
    embed_dim = int(getattr(lm.model.config, "embed_dim", 0))
    say(f"[{run.index}] {run.name}: evaluating ({n_params:,} parameters, D {embed_dim}) on suite {suite.name}")
    from chadavit.evaluation.suite import run_suite

    t1 = time.time()
    ev = run_suite(suite, [lm], rdir / "eval", figures=bool(exp.evaluation.get("figures", False)), progress=progress,
                   say=say)
    t_eval = time.time() - t1
    wall = time.time() - t0
    import torch

    prov["hardware"]["torch_threads"] = torch.get_num_threads()
    pre_keys = ("steps", "total_steps", "steps_per_epoch", "final_loss", "skipped_images", "train_img_s",
                "world_size", "normalization")
    metrics = {
        "experiment": exp.name, "run": run.name, "index": run.index, "label": run.label, "family": run.family,
        "model": run.model, "tags": run.tags, "parameters": n_params, "embed_dim": embed_dim,
        "depth": int(getattr(lm.model.config, "depth", 0)),
        "pretrain": {k: summary.get(k) for k in pre_keys},
        "eval": [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                 for row in ev.to_dict(orient="records")],
        "primary": ev.attrs.get("primary", {}),
        "wall_s": {"pretrain": round(t_pre, 1), "eval": round(t_eval, 1), "total": round(wall, 1)},
        "seeds": seeds, "provenance": prov,
    }
    write_json_atomic(rdir / "provenance.json", {**prov, "seeds": seeds, "status": "finished",
                                                 "wall_s": metrics["wall_s"]})
    write_json_atomic(rdir / METRICS, metrics)
    say(f"[{run.index}] {run.name}: done in {wall:.0f} s (pretrain {t_pre:.0f} s, eval {t_eval:.0f} s)")
    return metrics


def run_experiment(exp: Experiment, index: int | None = None, out: str | os.PathLike[str] | None = None,
                   force: bool = False, progress: bool = True, say: Callable[[str], Any] = print) -> list[str]:
    """Every run in order (or only run ``index``); finished runs are skipped. Returns the names of runs executed."""
    if index is not None and not 0 <= index < len(exp.runs):
        raise ExperimentError(f"--index {index} out of range: {exp.source} has {len(exp.runs)} runs "
                              f"(0..{len(exp.runs) - 1})")
    todo = [exp.runs[index]] if index is not None else exp.runs
    for run in todo:  # fail on a bad config before spending time on the first run
        pretrain_config(exp, run, out, progress)
    load_suite_for(exp)
    done = []
    t0 = time.time()
    for run in todo:
        if run_one(exp, run, out, force=force, progress=progress, say=say) is not None:
            done.append(run.name)
    say(f"experiment {exp.name}: {len(done)} run(s) executed, {len(todo) - len(done)} already finished "
        f"({time.time() - t0:.0f} s)")
    return done
