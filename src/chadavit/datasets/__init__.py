"""The paper's evaluation datasets: catalogue, resumable downloads, extraction into the adapters' layouts, checks."""

from chadavit.datasets.catalog import CATALOG, DatasetInfo
from chadavit.datasets.check import check
from chadavit.datasets.download import ChecksumError, DownloadError, RetryPolicy, download
from chadavit.datasets.fetch import fetch

__all__ = ["CATALOG", "ChecksumError", "DatasetInfo", "DownloadError", "RetryPolicy", "check", "download", "fetch"]
