"""The experiment file: shared pretraining and evaluation settings plus a list of runs.

::

    name: my_study
    out: runs/my_study                      # results root (relative to the working directory)
    seed: 0                                 # default pretraining seed of every run
    pretrain:
      config: demo                          # pretraining preset or YAML file (relative to this file first)
      overrides: {train.epochs: 2}          # dotted keys (or a list of "key=value")
    evaluation:
      suite: my_suite.yaml                  # suite preset, file (relative to this file first) or inline mapping
      seeds: [0, 1, 2]                      # overrides the suite's seeds
      figures: false
      variables: {data_root: /data/benchmarks}   # ${data_root} etc. in the suite file
    runs:
      - name: chadavit                      # unique; the run directory is OUT/runs/NAME
        label: ChAda-ViT                    # row name in the report (default: name)
        family: ChAda-ViT                   # line in the scaling plot (default: model)
        model: chada_vit_nano               # model.name
        model_overrides: {embed_dim: 64}    # merged into model.overrides
        data: {filter: {n_channels: [3]}}   # any data.* keys (paths, filter, split_channels, synthetic...)
        pretrain: {optim.lr: 0.001}         # more dotted pretraining overrides
        seed: 1
        eval_model: {pooling: concat}       # model config changes for evaluation only (same weights)
        untrained: false                    # true: evaluate the model at its random initialisation (a reference)
        sweep:                              # optional: one run per entry, deep-merged, named NAME_<suffix>
          - {suffix: d32, model_overrides: {embed_dim: 32}}
    report:
      table3: {title: ..., runs: [...], columns: [{task: T, metric: top1, header: H}]}
      cls_vs_all: {runs: [...], pairs: [{title: T, cls: TASK, all_tokens: TASK}], metric: top1}
      scaling: {runs: [...], tasks: [TASK, ...], metric: top1}

Every value is checked when the file is loaded, so a misspelt key fails before any run starts.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from chadavit.config import ConfigError, load, merge, parse_override
from chadavit.errors import ChadavitError
from chadavit.experiments.config import ExperimentFile, ReportSection, RunEntry

T = TypeVar("T")


class ExperimentError(ChadavitError, ValueError):
    """The experiment file is malformed; the message names the file and the key."""


@dataclass
class RunSpec:
    """One pretraining + evaluation run, fully resolved from the experiment file."""

    index: int
    name: str
    label: str
    family: str
    model: str
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    pretrain: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    eval_model: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    untrained: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "label": self.label, "family": self.family,
                "model": self.model, "model_overrides": self.model_overrides, "data": self.data,
                "pretrain": self.pretrain, "seed": self.seed, "eval_model": self.eval_model, "tags": self.tags,
                "untrained": self.untrained}


@dataclass
class Experiment:
    name: str
    source: Path
    out: Path
    pretrain_config: str
    pretrain_overrides: dict[str, Any]
    evaluation: dict[str, Any]
    runs: list[RunSpec]
    report: dict[str, Any]
    description: str = ""

    def run_dir(self, run: RunSpec, out: str | os.PathLike[str] | None = None) -> Path:
        return Path(out or self.out) / "runs" / run.name

    def get(self, name: str) -> RunSpec:
        for r in self.runs:
            if r.name == name:
                return r
        raise ExperimentError(f"{self.source}: no run named {name!r}; runs: {', '.join(r.name for r in self.runs)}")

    def resolve_file(self, value: str) -> str:
        """A file named relative to the experiment file if it exists there, else the value unchanged (a preset)."""
        cand = self.source.parent / value
        return str(cand) if cand.is_file() else value


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _overrides(value: Any, where: str) -> dict[str, Any]:
    """Dotted overrides given as a mapping or as a list of ``key=value`` strings -> mapping."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        out = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ExperimentError(f"{where}: override {item!r} must look like key=value")
            key, parsed = parse_override(item)
            out[key] = parsed
        return out
    raise ExperimentError(f"{where}: give overrides as a mapping or a list of key=value, not {value!r}")


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    """``{"filter": {"n_channels": [3]}}`` under ``data`` -> ``{"data.filter.n_channels": [3]}``."""
    if isinstance(value, dict) and value and prefix.count(".") < 3:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(f"{prefix}.{k}", v))
        return out
    return {prefix: value}


def _find(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if p.is_file():
        return p
    from importlib import resources

    cand = Path(str(resources.files("chadavit") / "configs" / "experiments" / f"{path}.yaml"))
    if not cand.is_file():
        raise ExperimentError(f"experiment file {path} does not exist (nor a bundled experiment of that name)")
    return cand


def _checked(schema: type[T], data: dict[str, Any], where: str) -> T:
    """``data`` read into ``schema`` by the one config loader; its error becomes an :class:`ExperimentError`."""
    try:
        return merge(schema(), data)
    except ConfigError as exc:
        raise ExperimentError(f"{where}: {exc}") from exc


def _expand(r: Any, i: int, default_seed: int, p: Path) -> list[RunSpec]:
    """The runs of one ``runs:`` entry: one per sweep entry (deep-merged into it), or the entry itself."""
    if not isinstance(r, dict):
        raise ExperimentError(f"{p}: run {i} must be a mapping")
    for key in ("name", "model"):
        if key not in r:
            raise ExperimentError(f"{p}: run {i} lacks {key!r}")
    variants = r.get("sweep") or [{}]
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        raise ExperimentError(f"{p}: run {r['name']!r}: sweep must be a list of mappings")
    out = []
    for j, v in enumerate(variants):
        v = dict(v)
        suffix = str(v.pop("suffix", j if len(variants) > 1 else ""))
        if "name" in v or "sweep" in v:
            raise ExperimentError(f"{p}: run {r['name']!r} sweep entry {j} may not set 'name' or 'sweep'")
        name = f"{r['name']}_{suffix}" if suffix else str(r["name"])
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
            raise ExperimentError(f"{p}: run name {name!r} may only use letters, digits and _ . + -")
        where = f"{p}: run {name!r}"
        m = _checked(RunEntry, _deep_merge({k: val for k, val in r.items() if k != "sweep"}, v), where)
        label = str(v["label"]) if "label" in v else (str(r.get("label", r["name"])) + (f" {suffix}" if suffix else ""))
        out.append(RunSpec(index=0, name=name, label=label, family=m.family or m.model, model=m.model,
                           model_overrides=m.model_overrides or {}, data=m.data or {}, pretrain=_overrides(m.pretrain, where),
                           seed=default_seed if m.seed is None else m.seed, eval_model=m.eval_model or {}, tags=m.tags,
                           untrained=m.untrained))
    return out


def load_experiment(path: str | os.PathLike[str]) -> Experiment:
    """Read and check an experiment file; sweeps are expanded into runs (their order is the ``--index`` order).

    The file is read by the one config loader (:func:`chadavit.config.load`, so ``base:`` chains work) into the
    schema of :mod:`chadavit.experiments.config`; values are coerced to the field types.
    """
    p = _find(path)
    try:
        exp = load(ExperimentFile, p)
    except ConfigError as exc:
        raise ExperimentError(str(exc)) from exc
    if not exp.runs:
        raise ExperimentError(f"{p}: no runs (add a 'runs:' list)")
    if exp.evaluation.suite is None:
        raise ExperimentError(f"{p}: evaluation.suite is required (a suite preset, file or inline mapping)")
    runs = [run for i, r in enumerate(exp.runs) for run in _expand(r, i, exp.seed, p)]
    for k, run in enumerate(runs):
        run.index = k
    names = [r.name for r in runs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ExperimentError(f"{p}: duplicate run name(s) {dup}")
    _checked(ReportSection, exp.report, f"{p}: report")
    report = {k: v or {} for k, v in exp.report.items()}
    for section, cfg in report.items():
        for n in cfg.get("runs", []) or []:
            if n not in names:
                raise ExperimentError(f"{p}: report.{section} names unknown run {n!r}; runs: {', '.join(names)}")
    evaluation = {k: v for k, v in vars(exp.evaluation).items() if v is not None}
    return Experiment(name=exp.name or p.stem, source=p.resolve(), out=Path(exp.out or f"runs/{p.stem}"),
                      pretrain_config=exp.pretrain.config,
                      pretrain_overrides=_overrides(exp.pretrain.overrides, f"{p}: pretrain.overrides"),
                      evaluation=evaluation, runs=runs, report=report, description=exp.description)


def pretrain_overrides(exp: Experiment, run: RunSpec, run_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Dotted overrides (key -> value, no string round trip) turning the base pretraining config into this run's."""
    mapping: dict[str, Any] = dict(exp.pretrain_overrides)
    mapping["model.name"] = run.model
    mapping.update({f"model.overrides.{k}": v for k, v in run.model_overrides.items()})
    mapping.update(_flatten("data", run.data) if run.data else {})
    mapping.update(run.pretrain)
    mapping["train.seed"] = run.seed
    mapping["train.out_dir"] = str(run_dir / "pretrain")
    if not progress:
        mapping["train.progress"] = False
    return mapping
