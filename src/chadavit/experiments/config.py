"""The experiment file's schema (plain dataclasses read by :func:`chadavit.config.load`); see ``spec.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PretrainSection:
    config: str = "demo"  # pretraining preset or YAML file (relative to the experiment file first)
    overrides: Any = None  # dotted keys: a mapping, or a list of "key=value"


@dataclass
class EvaluationSection:
    suite: Any = None  # suite preset, file (relative to the experiment file first) or inline mapping
    seeds: list[int] | None = None  # overrides the suite's seeds
    figures: bool = False
    batch_size: int | None = None
    variables: dict[str, Any] = field(default_factory=dict)  # ${name} values in the suite file


@dataclass
class ReportSection:
    """The report's layouts; a section given (even empty) is drawn."""

    table3: dict[str, Any] | None = None
    cls_vs_all: dict[str, Any] | None = None
    scaling: dict[str, Any] | None = None


@dataclass
class RunEntry:
    """One run as written, after its sweep entry is merged in (every key but ``sweep``)."""

    name: str = ""
    label: str | None = None
    family: str | None = None
    model: str = ""
    model_overrides: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    pretrain: Any = None  # dotted pretraining overrides: a mapping, or a list of "key=value"
    seed: int | None = None
    eval_model: dict[str, Any] | None = None
    tags: list[str] = field(default_factory=list)
    untrained: bool = False


@dataclass
class ExperimentFile:
    name: str | None = None
    description: str = ""
    out: str | None = None
    seed: int = 0
    pretrain: PretrainSection = field(default_factory=PretrainSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    runs: list[dict[str, Any]] = field(default_factory=list)  # each one checked as a RunEntry per sweep entry
    report: dict[str, Any] = field(default_factory=dict)  # sections checked as a ReportSection
