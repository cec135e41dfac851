"""Experiments: one YAML file lists pretraining + evaluation runs; ``run`` executes them, ``report`` tabulates them.

    chadavit experiment run src/chadavit/configs/experiments/small_study.yaml
    chadavit experiment run study.yaml --index 3        # one run (Slurm/HTCondor array jobs)
    chadavit experiment report study.yaml --out report/

See ``docs/experiments.md``.
"""

from chadavit.experiments.spec import Experiment, ExperimentError, RunSpec, load_experiment

__all__ = ["Experiment", "ExperimentError", "RunSpec", "load_experiment"]
