"""Evaluation of frozen encoders: dataset adapters, protocols, suites, tables and figures.

``run_suite(suite, model_specs, out_dir)`` is the Python entry point behind ``chadavit eval``.
"""

from chadavit.evaluation.adapters import ADAPTERS, LAYOUTS, load_dataset
from chadavit.evaluation.data import DatasetLayoutError, EvalData
from chadavit.evaluation.features import extract_features, load_model_spec
from chadavit.evaluation.protocols import knn_classify, linear_probe, linear_regression, moa_nn_accuracy, moa_retrieval
from chadavit.evaluation.reconstruction import ChannelDecoder, channel_reconstruction, decoder_param_count
from chadavit.evaluation.suite import list_suites, load_suite, run_suite
from chadavit.evaluation.tables import wide_table

__all__ = [
    "ADAPTERS",
    "LAYOUTS",
    "ChannelDecoder",
    "DatasetLayoutError",
    "EvalData",
    "channel_reconstruction",
    "decoder_param_count",
    "extract_features",
    "knn_classify",
    "linear_probe",
    "linear_regression",
    "list_suites",
    "load_dataset",
    "load_model_spec",
    "load_suite",
    "moa_nn_accuracy",
    "moa_retrieval",
    "run_suite",
    "wide_table",
]
