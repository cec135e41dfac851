"""Image Data Resource (IDR): HTTP client, the IDRCell100k sampler (plan), builder, statistics."""

from chadavit.data.idr_client import DEFAULT_SERVER, IDRClient, IDRError, RetryPolicy

__all__ = ["DEFAULT_SERVER", "IDRClient", "IDRError", "RetryPolicy"]
