"""The paper's selection: N images drawn uniformly at random from every Cell study with at least N images.

How a uniform sample is drawn without listing millions of image ids
-------------------------------------------------------------------
A study's images live in containers (Screen -> Plate -> Well -> field, or Project -> Dataset ->
Image). The planner first counts *slots* per container with one or two small requests each:
a dataset's image count (``omero:childCount``), a plate's ``wells x fields`` (``totalCount`` of its
well list and ``omero:wellsampleIndex``). Slots are numbered ``0 .. S-1`` across the study. A seeded
generator then yields distinct slot numbers uniformly at random (a permutation when S is small, else
rejection of repeats), and only the list pages that contain those slots are fetched (500 wells or
images per page, cached). A slot that holds no image (an empty well, a missing field) is skipped and
the next slot is drawn; the first N slots that hold images are the sample. Drawing without
replacement from slots and discarding empty ones gives every N-subset of the study's images the same
probability, so each image is equally likely. If the slots run out before N images are found, the
study has fewer than N images and is left out (this makes the "at least N" test exact even though
``wells x fields`` is only an upper bound).

The generator of a study is seeded by ``(seed, sha256(study name))``, so a study's sample does not
change when other studies appear or disappear.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chadavit.atomic import write_atomic
from chadavit.errors import ChadavitError
from chadavit.data.idr_client import IDRClient

log = logging.getLogger(__name__)

PAGE = 500  # list page size (omero-web maxLimit)
PERMUTE_BELOW = 1_000_000
PLAN_COLUMNS = ("group", "study", "container", "container_type", "container_id", "parent", "image_id", "image_name",
                "sample_type", "imaging_method", "study_type", "size_x", "size_y", "size_z", "size_c", "size_t",
                "pixel_type", "slot")


@dataclass
class Container:
    """A Screen or Project with its key/value annotations."""

    kind: str  # "screen" | "project"
    id: int
    name: str
    child_count: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def study(self) -> str:
        return self.name.split("/")[0]

    def get(self, key: str) -> str:
        for k, v in self.annotations.items():
            if k.strip().lower() == key.lower():
                return v
        return ""


@dataclass
class Block:
    """A plate (rows = wells, fields per well) or a dataset (rows = images, 1 field)."""

    container: Container
    kind: str  # "plate" | "dataset"
    id: int
    rows: int
    fields: int = 1

    @property
    def slots(self) -> int:
        return self.rows * self.fields



class PlanError(ChadavitError, ValueError):
    """A planning option or table that cannot be used (the message says which)."""


class PlanFileNotFoundError(ChadavitError, FileNotFoundError):
    """A plan or studies table that is not there."""


def study_rng(seed: int, study: str) -> np.random.Generator:
    h = int.from_bytes(hashlib.sha256(study.encode()).digest()[:8], "little")
    return np.random.default_rng([int(seed), h])


def candidate_slots(rng: np.random.Generator, total: int) -> Iterator[int]:
    """Distinct slot numbers in uniformly random order (lazy for huge ``total``)."""
    if total <= PERMUTE_BELOW:
        yield from (int(x) for x in rng.permutation(total))
        return
    seen: set[int] = set()
    while len(seen) < total:
        for x in rng.integers(0, total, size=4096):
            x = int(x)
            if x not in seen:
                seen.add(x)
                yield x


class StudyIndex:
    """Maps slot numbers of one study to images, fetching only the list pages that are needed."""

    def __init__(self, client: IDRClient, blocks: list[Block], workers: int = 4) -> None:
        self.client = client
        self.blocks = [b for b in blocks if b.slots > 0]
        self.starts = list(np.cumsum([0] + [b.slots for b in self.blocks]))
        self.total = int(self.starts[-1])
        self.workers = workers
        self._pages: dict[tuple[int, int], list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _locate(self, slot: int) -> tuple[int, int, int]:
        b = bisect.bisect_right(self.starts, slot) - 1
        local = slot - self.starts[b]
        blk = self.blocks[b]
        return b, local // blk.fields, local % blk.fields

    def _page(self, b: int, page: int) -> list[dict[str, Any]]:
        key = (b, page)
        with self._lock:
            if key in self._pages:
                return self._pages[key]
        blk = self.blocks[b]
        if blk.kind == "plate":
            items = self.client.plate_wells(blk.id, page * PAGE, PAGE)
        else:
            items = self.client.dataset_images(blk.id, page * PAGE, PAGE)
        with self._lock:
            self._pages[key] = items
        return items

    def resolve(self, slots: list[int]) -> dict[int, tuple[Block, dict[str, Any]] | None]:
        locs = {s: self._locate(s) for s in slots}
        pages = sorted({(b, row // PAGE) for b, row, _ in locs.values()})
        if self.workers > 1 and len(pages) > 1:
            with ThreadPoolExecutor(self.workers) as ex:
                list(ex.map(lambda k: self._page(*k), pages))
        out: dict[int, tuple[Block, dict[str, Any]] | None] = {}
        for s, (b, row, fld) in locs.items():
            items = self._page(b, row // PAGE)
            i = row % PAGE
            blk = self.blocks[b]
            img = None
            if i < len(items):
                item = items[i]
                if blk.kind == "plate":
                    samples = item.get("WellSamples") or []
                    if fld < len(samples):
                        img = samples[fld].get("Image")
                else:
                    img = item
            out[s] = (blk, img) if img else None
        return out


def discover(client: IDRClient, workers: int = 4) -> list[Container]:
    """Every non-empty Screen and Project with its key/value annotations."""
    conts = [Container("screen", int(d["@id"]), str(d.get("Name", "")), d.get("omero:childCount"))
             for d in client.screens()]
    conts += [Container("project", int(d["@id"]), str(d.get("Name", "")), d.get("omero:childCount"))
              for d in client.projects()]
    conts = [c for c in conts if c.child_count is None or int(c.child_count) > 0]

    for kind in ("screen", "project"):
        mine = [c for c in conts if c.kind == kind]
        anns = client.map_annotations_many(kind, [c.id for c in mine])
        for c in mine:
            c.annotations = anns.get(c.id, {})
    return conts


def container_blocks(client: IDRClient, c: Container, workers: int = 4) -> list[Block]:
    if c.kind == "screen":
        plates = client.screen_plates(c.id)
        with ThreadPoolExecutor(max(1, workers)) as ex:
            layouts = list(ex.map(lambda p: client.plate_layout(int(p["@id"])), plates))
        return [Block(c, "plate", int(p["@id"]), w, f) for p, (w, f) in zip(plates, layouts, strict=True)]
    return [Block(c, "dataset", int(d["@id"]), client.dataset_image_count(d)) for d in client.project_datasets(c.id)]


@dataclass
class StudyResult:
    study: str
    containers: list[Container]
    slots: int
    images_seen: int
    qualified: bool
    sample: list[dict[str, Any]]


def sample_study(client: IDRClient, study: str, containers: list[Container], n: int, seed: int,
                 workers: int = 4) -> StudyResult:
    """Draw ``n`` images uniformly at random from a study (see the module docstring)."""
    blocks = [b for c in containers for b in container_blocks(client, c, workers)]
    index = StudyIndex(client, blocks, workers)
    found: list[tuple[int, Block, dict[str, Any]]] = []
    if index.total < n:
        return StudyResult(study, containers, index.total, index.total, False, [])
    gen = candidate_slots(study_rng(seed, study), index.total)
    while len(found) < n:
        want = n - len(found)
        batch = list(islice(gen, want + max(8, want // 4)))
        if not batch:
            break
        res = index.resolve(batch)
        for s in batch:
            hit = res[s]
            if hit is not None:
                found.append((s, hit[0], hit[1]))
                if len(found) == n:
                    break
    if len(found) < n:  # every slot visited: the study has exactly len(found) images
        return StudyResult(study, containers, index.total, len(found), False, [])
    rows = []
    for slot, blk, img in found:
        c = blk.container
        px = img.get("Pixels") or {}
        ptype = px.get("Type")
        rows.append({
            "group": study, "study": c.study, "container": c.name, "container_type": c.kind, "container_id": c.id,
            "parent": f"{blk.kind}:{blk.id}", "image_id": int(img["@id"]), "image_name": str(img.get("Name", "")),
            "sample_type": c.get("Sample Type"), "imaging_method": c.get("Imaging Method"),
            "study_type": c.get("Study Type"),
            "size_x": px.get("SizeX"), "size_y": px.get("SizeY"), "size_z": px.get("SizeZ"),
            "size_c": px.get("SizeC"), "size_t": px.get("SizeT"),
            "pixel_type": (ptype.get("value") if isinstance(ptype, dict) else ptype) or "", "slot": slot,
        })
    return StudyResult(study, containers, index.total, len(found), True, rows)


@dataclass
class Plan:
    images: pd.DataFrame
    studies: pd.DataFrame

    def totals(self) -> dict[str, Any]:
        df = self.images
        q = self.studies[self.studies["qualified"]] if len(self.studies) else self.studies
        return {
            "unit": str(self.studies["unit"].iloc[0]) if len(self.studies) else "",
            "groups": int(len(q)),
            "groups_considered": int(len(self.studies)),
            "studies": int(df["study"].nunique()) if len(df) else 0,
            "containers": int(df["container"].nunique()) if len(df) else 0,
            "images": int(len(df)),
            "channels": int(pd.to_numeric(df["size_c"]).sum()) if len(df) else 0,
            "imaging_methods": int(df["imaging_method"].nunique()) if len(df) else 0,
        }


def make_plan(client: IDRClient, per_study: int = 1300, seed: int = 0, unit: str = "container",
              sample_type: str = "cell", workers: int = 4, progress: bool = False,
              say: Callable[[str], None] = lambda _: None) -> Plan:
    """Discover the Cell section and sample ``per_study`` images from each group that has enough.

    ``unit="container"``: every Screen/Project of the section is a group (what reproduces the paper's
    counts best, see docs/idr.md); ``unit="study"``: the containers of one ``idrNNNN`` study are pooled.
    """
    if unit not in ("container", "study"):
        raise PlanError(f"unit must be 'container' or 'study', got {unit!r}")
    from tqdm import tqdm

    say(f"listing the screens and projects of {client.base_url} and their annotations ...")
    conts = discover(client, workers)
    wanted = [c for c in conts if c.get("Sample Type").strip().lower() == sample_type.lower()]
    say(f"{len(conts)} non-empty containers, {len(wanted)} with Sample Type {sample_type}; sampling each")
    groups: dict[str, list[Container]] = {}
    for c in wanted:
        groups.setdefault(c.study if unit == "study" else c.name, []).append(c)
    rows: list[dict[str, Any]] = []
    srows: list[dict[str, Any]] = []
    for key in tqdm(sorted(groups), desc=f"planning ({unit}s)", unit=unit, disable=not progress):
        r = sample_study(client, key, groups[key], per_study, seed, workers)
        rows.extend(r.sample)
        srows.append({"group": key, "unit": unit, "study": key.split("/")[0],
                      "containers": ";".join(c.name for c in r.containers),
                      "n_containers": len(r.containers), "image_slots": r.slots,
                      "images_seen": r.images_seen, "qualified": r.qualified,
                      "imaging_method": "; ".join(sorted({c.get("Imaging Method") for c in r.containers}))})
    images = pd.DataFrame(rows, columns=list(PLAN_COLUMNS))
    _fill_missing_meta(client, images, workers)
    studies = pd.DataFrame(srows, columns=["group", "unit", "study", "containers", "n_containers", "image_slots",
                                           "images_seen", "qualified", "imaging_method"])
    return Plan(images.sort_values(["group", "image_id"]).reset_index(drop=True), studies)


def _fill_missing_meta(client: IDRClient, images: pd.DataFrame, workers: int) -> None:
    """Images listed without ``Pixels`` (e.g. in well samples) get their size from imgData."""
    if not len(images):
        return
    missing = images.index[images["size_c"].isna()].tolist()
    if not missing:
        return
    with ThreadPoolExecutor(max(1, workers)) as ex:
        metas = list(ex.map(lambda i: client.img_data(int(images.at[i, "image_id"])), missing))
    for i, m in zip(missing, metas, strict=True):
        images.loc[i, ["size_x", "size_y", "size_z", "size_c", "size_t"]] = [m.size_x, m.size_y, m.size_z,
                                                                              m.size_c, m.size_t]
        images.at[i, "pixel_type"] = m.pixel_type


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Parquet for ``*.parquet``, else CSV; written to a temporary name and renamed (never half-written)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == ".parquet":
        write_atomic(p, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        write_atomic(p, lambda tmp: df.to_csv(tmp, index=False))
    return p


def read_table(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise PlanFileNotFoundError(f"{p}: plan/table file not found")
    return pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)


# ---------------------------------------------------------------------------------------------- offline
BUNDLED_STUDIES = Path(__file__).with_name("data") / "idr_studies.tsv"


def _avg_channels(dim: str) -> float:
    try:
        return float(str(dim).split("x")[3].strip())
    except (IndexError, ValueError):
        return float("nan")


def release_rank(name: str) -> int:
    """Order of IDR release names: demo1 < demo35 < prod37 < prod132."""
    name = str(name).strip().lower()
    for prefix, base in (("demo", 0), ("prod", 0)):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return base + int(name[len(prefix):])
    raise PlanError(f"unknown IDR release name {name!r} (expected e.g. prod119)")


def studies_table_summary(path: str | Path | None = None, per_study: int = 1300,
                          sample_type: str = "cell", released_by: str | None = None) -> dict[str, Any]:
    """What the selection gives on IDR's own per-container table (``_data/studies.tsv``), without a server.

    Counts both units: containers (Screen/Project) with at least N images, and studies (``idrNNNN``,
    images summed over their containers of the sample type) with at least N images. ``released_by``
    (e.g. ``prod119``) keeps only containers introduced up to that release (image counts stay today's).
    """
    p = Path(path) if path else BUNDLED_STUDIES
    if not p.is_file():
        hint = (" (the bundled copy is missing from this installation; pass the path of IDR's _data/studies.tsv)"
                if not path else "")
        raise PlanFileNotFoundError(f"{p}: studies table not found{hint}")
    df = pd.read_csv(p, sep="\t", dtype=str)
    if released_by:
        limit = release_rank(released_by)
        df = df[df["Introduced"].map(release_rank) <= limit]
    df["images"] = pd.to_numeric(df["5D Images"].str.replace(",", ""), errors="coerce").fillna(0).astype(int)
    df["avg_c"] = df["Avg. Image Dim (XYZCT)"].map(_avg_channels)
    df["sid"] = df["Study"].str.split("-").str[0]
    cell = df[df["Sample Type"].str.strip().str.lower() == sample_type.lower()]
    cq = cell[cell["images"] >= per_study]
    per_study_img = cell.groupby("sid")["images"].sum()
    sq = per_study_img[per_study_img >= per_study]
    # expected channels of a sample: per container, N * average C; per study, weighted by container size
    cell_c = cell.assign(w=cell["images"] * cell["avg_c"]).groupby("sid")[["w", "images"]].sum()
    study_c = (cell_c["w"] / cell_c["images"]).reindex(sq.index)
    return {
        "table": str(p), "per_study": per_study, "sample_type": sample_type, "released_by": released_by,
        "containers_total": int(len(df)), "containers_cell": int(len(cell)),
        "studies_cell": int(cell["sid"].nunique()), "images_cell": int(cell["images"].sum()),
        "containers_qualifying": int(len(cq)), "container_sample_images": int(len(cq) * per_study),
        "container_sample_channels_est": int(round(float((cq["avg_c"] * per_study).sum()))),
        "studies_qualifying": int(len(sq)), "study_sample_images": int(len(sq) * per_study),
        "study_sample_channels_est": int(round(float((study_c * per_study).sum()))),
        "qualifying_container_names": [f"{r.Study}/{r.Container}" for r in cq.itertuples()],
        "containers": pd.DataFrame({
            "study": cell["Study"], "container": cell["Study"] + "/" + cell["Container"],
            "internal_id": pd.to_numeric(cell["Internal ID"], errors="coerce"), "introduced": cell["Introduced"],
            "images": cell["images"], "avg_channels": cell["avg_c"],
            "container_qualifies": cell["images"] >= per_study,
            "study_qualifies": cell["sid"].isin(sq.index),
        }).reset_index(drop=True),
        "qualifying_studies": sorted(sq.index.tolist()),
    }
