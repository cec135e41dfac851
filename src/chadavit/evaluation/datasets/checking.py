"""`chadavit datasets check NAME DIR`: validate a layout (fetched or made by hand) without loading every image;
the first problem found is raised as a one-line-first `DatasetLayoutError` naming the file. Each dataset's check
lives in its module (``evaluation/datasets/<name>.py``) and is found through the registry."""

from __future__ import annotations

from pathlib import Path

from chadavit.data.readers import read_image_file
from chadavit.evaluation.data import DatasetLayoutError
from chadavit.evaluation.datasets.common import layout_error
from chadavit.evaluation.datasets.registry import get


def first_readable(name: str, layout: str, files: list[Path], channels: int | None = None) -> tuple[int, ...]:
    f = files[0]
    try:
        img = read_image_file(f)
    except (ValueError, OSError) as exc:
        raise layout_error(name, layout, f, f"cannot be read ({exc})") from None
    if channels is not None and img.shape[0] < channels:
        raise layout_error(name, layout, f, f"{img.shape[0]} channel(s), expected {channels}")
    return tuple(img.shape)


def check(name: str, path: str | Path) -> str:
    """A one-line summary of a valid layout; raises `DatasetLayoutError` at the first problem."""
    dataset = get(name)
    root = Path(path)
    if not root.is_dir():
        raise DatasetLayoutError(f"{name}: {root} is not a folder")
    return dataset.check(root)
