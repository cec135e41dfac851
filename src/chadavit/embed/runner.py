"""The embedding loop: list images, read and crop them in worker threads, batch crops, write resumable parts.

Memory stays bounded whatever the number of images: at most ``workers * 2`` images are being
read ahead, crops are cut from the normalised field only when their batch is built, and finished
images leave memory as soon as their part is written. Crops are batched by channel count, so every
forward pass sees one ``(N * C, S, S)`` stack of planes.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from chadavit.batch import ChannelBatch
from chadavit.data.normalize import NORMALIZATION_METHODS, SUPPORTED_DTYPES, normalize_planes, plane_stats
from chadavit.embed.channels import ChannelError, ChannelSpec, VocabularyChecker
from chadavit.embed.crops import Crop, extract, full_crop, grid_crops, nucleus_crops
from chadavit.embed.output import EmbedError, RunStore, rows_to_table, write_h5ad
from chadavit.embed.sources import ImageRecord, open_source

log = logging.getLogger("chadavit.embed")

CROP_MODES = ("grid", "nuclei", "full")
# metadata the run itself writes; input metadata with these names is kept as Metadata_Input<Name>
RESERVED_METADATA = frozenset({"ImageId", "ImageIndex", "Channels", "SourceChannels", "Source", "ImageHeight",
                               "ImageWidth", "CropMode", "CropIndex", "CropY0", "CropX0", "CropY1", "CropX1",
                               "NucleusY", "NucleusX", "NucleusArea", "NucleusLabel", "NumCrops"})
COMMIT_EVERY_S = 120.0  # write a part at least this often: slow runs (many crops per image) lose little
NUCLEUS_CHANNEL_GUESSES = ("DNA", "DAPI", "Hoechst", "Nuclei", "nucleus", "H2B")


@dataclass
class EmbedConfig:
    """Options of ``chadavit embed`` (see ``docs/embed.md``); the CLI maps one flag to each field."""

    input: str
    out: str
    model: str  # a checkpoint (see chadavit.embed.model_spec); required: no accidental random weights
    input_format: str = "auto"
    pattern: str | None = None
    recursive: bool = True
    channels: str | list[str] | None = None
    channel_map: str | dict[str, str] | None = None
    strict_channels: bool = False
    crops: str = "grid"
    crop_size: int | None = None
    stride: int | None = None
    nuclei_channel: str | None = None
    min_nucleus_area: int = 30
    max_crops_per_image: int | None = None
    per_image: bool = False
    normalize: str | None = None
    num_heads: int = 12
    seed: int = 0
    batch_size: int = 32
    workers: int = 2
    device: str = "auto"
    part_size: int = 64
    h5ad: str | None = None
    save_attention: int = 0
    attention_images: list[str] | None = None
    attention_crops: int = 4
    overwrite: bool = False
    keep_parts: bool = False
    limit: int | None = None
    progress: bool = True

    def settings(self) -> dict[str, Any]:
        """The options that shape the features: a resumed run must use the same ones."""
        keys = ("input", "model", "input_format", "pattern", "recursive", "channels", "channel_map", "crops",
                "crop_size", "stride", "nuclei_channel", "min_nucleus_area", "max_crops_per_image", "per_image",
                "normalize", "num_heads", "seed")
        d = asdict(self)
        out = {k: d[k] for k in keys}
        out["input"] = str(Path(self.input).resolve())
        if isinstance(out["channels"], list):
            out["channels"] = ",".join(out["channels"])
        if isinstance(out["channel_map"], dict):
            out["channel_map"] = ",".join(f"{k}={v}" for k, v in out["channel_map"].items())
        return out


@dataclass
class EmbedResult:
    """What a run did: images and crops computed now, skipped as already done, failed."""

    out: Path | None
    n_images: int
    n_done_before: int
    n_computed: int
    n_failed: int
    n_crops: int
    n_rows: int
    seconds: float
    errors_path: Path | None = None
    h5ad_path: Path | None = None
    attention_dir: Path | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.n_computed / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Prepared:
    """An image read, normalised and cut into crop boxes, waiting for its crops to be embedded."""

    index: int
    record: ImageRecord
    field: np.ndarray | None  # (C, H, W) float32, normalised; dropped once every crop is embedded
    names: list[str]
    source_names: list[str]
    crops: list[Crop]
    attention: bool = False
    cls: list[np.ndarray | None] = field(default_factory=list)
    meanpatch: list[np.ndarray | None] = field(default_factory=list)
    remaining: int = 0
    failed: bool = False
    shape: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        if self.field is not None:
            self.shape = tuple(self.field.shape)  # type: ignore[assignment]


class _Failed:
    def __init__(self, stage: str, exc: BaseException) -> None:
        self.stage, self.exc = stage, exc


def _prefetch(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, depth: int) -> Iterator[tuple[Any, Any]]:
    """``(item, fn(item) or _Failed)`` in input order, at most ``depth`` items ahead, on ``workers`` threads."""

    def safe(item: Any) -> Any:
        try:
            return fn(item)
        except Exception as exc:  # noqa: BLE001 - every bad image is reported and skipped
            return _Failed("read", exc)

    if workers <= 0:
        for item in items:
            yield item, safe(item)
        return
    ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed-read")
    try:
        it = iter(items)
        queue: deque[tuple[Any, Future[Any]]] = deque()
        for item in it:
            queue.append((item, ex.submit(safe, item)))
            if len(queue) >= depth:
                break
        while queue:
            item, fut = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, ex.submit(safe, nxt)))
            yield item, fut.result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _check_pixels(arr: np.ndarray, what: str) -> None:
    if arr.ndim != 3 or arr.shape[0] < 1:
        raise ValueError(f"{what}: expected (C, H, W) pixels, got shape {arr.shape}")
    if arr.dtype == np.bool_ or arr.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"{what}: unsupported dtype {arr.dtype}; use uint8, uint16 or float")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.unique(np.nonzero(~np.isfinite(arr))[0]).tolist()
        raise ValueError(f"{what}: NaN or Inf pixels in channel(s) {bad}")


class Embedder:
    """One embedding run (see :func:`run_embed`)."""

    def __init__(self, cfg: EmbedConfig, model: nn.Module | None = None,
                 progress_callback: Callable[[int], None] | None = None) -> None:
        self.cfg = cfg
        if cfg.crops not in CROP_MODES:
            raise EmbedError(f"--crops must be one of {', '.join(CROP_MODES)}, got {cfg.crops!r}")
        if cfg.normalize is not None and cfg.normalize not in NORMALIZATION_METHODS:
            raise EmbedError(f"--normalize must be one of {', '.join(NORMALIZATION_METHODS)}, got {cfg.normalize!r}")
        if cfg.batch_size < 1 or cfg.part_size < 1:
            raise EmbedError("--batch-size and --part-size must be positive")
        try:
            self.spec = ChannelSpec.parse(cfg.channels, cfg.channel_map)
        except ChannelError as exc:
            raise EmbedError(str(exc)) from exc
        if cfg.h5ad:
            import importlib.util

            if importlib.util.find_spec("anndata") is None:  # say so now, not after hours of embedding
                raise EmbedError("--h5ad needs the optional dependency anndata: pip install 'chadavit[anndata]' "
                                 "(or pip install anndata)")
        self.progress_callback = progress_callback
        from chadavit.embed.model_spec import load_model, pick_device

        self.device = pick_device(cfg.device)
        self.model = model if model is not None else load_model(cfg.model, num_heads=cfg.num_heads, seed=cfg.seed)
        self.model.eval().to(self.device)
        mcfg = getattr(self.model, "config", None)
        self.img_size = int(getattr(mcfg, "img_size", 224))
        self.patch_size = int(getattr(mcfg, "patch_size", 16))
        self.crop_size = int(cfg.crop_size or self.img_size)
        self.normalize = cfg.normalize or str(getattr(mcfg, "normalization", "percentile"))
        self.max_channels = (int(getattr(mcfg, "num_slots", 0))
                             if getattr(mcfg, "channel_embedding", "slot") == "slot" else 0)
        self.vocab = VocabularyChecker(mcfg, strict=cfg.strict_channels)
        out = Path(cfg.out)
        self.out = out if out.suffix.lower() == ".parquet" else out.with_name(out.name + ".parquet")
        self.errors_path = self.out.with_name(self.out.name.removesuffix(".parquet") + ".errors.csv")
        self.attention_dir = self.out.with_name(self.out.name.removesuffix(".parquet") + "_attention")
        self.errors: list[dict[str, Any]] = []

    # ----------------------------------------------------------------------------------- per image (threads)
    def _nucleus_channel(self, names: list[str], source_names: list[str], all_sources: list[str],
                         image_id: str) -> tuple[int | None, str | None]:
        """Where the nuclei are: an index into the embedded channels, or a source channel read only for that."""
        want = self.cfg.nuclei_channel
        if want is not None:
            for lst in (names, source_names):
                if want in lst:
                    return lst.index(want), None
            mapped = [self.spec.channel_map.get(n, n) for n in all_sources]
            for lst in (mapped, all_sources):
                if want in lst:
                    return None, all_sources[lst.index(want)]
            raise ChannelError(f"{image_id}: nuclei channel {want!r} is not among its channels {mapped}")
        for guess in NUCLEUS_CHANNEL_GUESSES:
            for k, n in enumerate(names):
                if n.lower() == guess.lower():
                    return k, None
        if len(names) == 1:
            return 0, None
        raise ChannelError(f"{image_id}: --crops nuclei needs --nuclei-channel (one of {names})")

    def prepare(self, item: tuple[int, ImageRecord]) -> Prepared:
        index, rec = item
        nuclei = self.cfg.crops == "nuclei"
        nuc_plane = None
        if rec.channel_names is not None:
            idx, names = self.spec.select(rec.channel_names, rec.image_id)
            src = [rec.channel_names[i] for i in idx]
            k, extra = self._nucleus_channel(names, src, rec.channel_names, rec.image_id) if nuclei else (None, None)
            arr, _ = rec.read(src + ([extra] if extra is not None else []))
            if extra is not None:
                arr, nuc_plane = arr[:-1], arr[-1]
        else:
            arr, have = rec.read(None)
            idx, names = self.spec.select(have, rec.image_id)
            src = [have[i] for i in idx]
            k, extra = self._nucleus_channel(names, src, have, rec.image_id) if nuclei else (None, None)
            if extra is not None:
                nuc_plane = arr[have.index(extra)]
            arr = arr[idx]
        arr = np.asarray(arr)
        _check_pixels(arr, rec.image_id)
        if nuclei and nuc_plane is None:
            nuc_plane = arr[k]
        if self.max_channels and arr.shape[0] > self.max_channels:
            raise ChannelError(f"{rec.image_id}: {arr.shape[0]} channels but the model has {self.max_channels} "
                               "channel slots; choose channels with --channels")
        c, h, w = arr.shape
        if self.cfg.crops == "grid":
            crops = grid_crops(h, w, self.crop_size, self.cfg.stride)
        elif self.cfg.crops == "full":
            crops = full_crop(h, w)
        else:
            crops = nucleus_crops(np.asarray(nuc_plane), self.crop_size, min_area=self.cfg.min_nucleus_area,
                                  max_crops=self.cfg.max_crops_per_image)
        if self.cfg.max_crops_per_image is not None and len(crops) > self.cfg.max_crops_per_image:
            keep = np.unique(np.linspace(0, len(crops) - 1, self.cfg.max_crops_per_image).round().astype(int))
            crops = [crops[i] for i in keep]
        stats = getattr(getattr(self.model, "config", None), "normalization_stats", None)
        st = plane_stats(names, c, stats) if self.normalize == "dataset" else None
        field_ = normalize_planes(arr, self.normalize, stats=st).numpy()
        n = len(crops)
        att = index < self.cfg.save_attention or rec.image_id in (self.cfg.attention_images or ())
        return Prepared(index, rec, field_, names, src, crops, att, [None] * n, [None] * n, n)

    # ----------------------------------------------------------------------------------- model
    def _inputs(self, items: list[tuple[Prepared, int]]) -> torch.Tensor:
        """``(N, C, S, S)`` model inputs (crops resized to the model size where needed)."""
        s = self.img_size
        out = []
        for p, k in items:
            x = torch.from_numpy(np.ascontiguousarray(extract(p.field, p.crops[k])))
            if x.shape[-2:] != (s, s):
                x = torch.nn.functional.interpolate(x[None], size=(s, s), mode="bilinear", antialias=True,
                                                    align_corners=False)[0]
            out.append(x)
        return torch.stack(out)

    @torch.inference_mode()
    def _forward(self, items: list[tuple[Prepared, int]]) -> None:
        x = self._inputs(items)
        n, c, s, _ = x.shape
        batch = ChannelBatch(planes=x.reshape(n * c, s, s), num_channels=torch.full((n,), c, dtype=torch.long),
                             channel_names=tuple(tuple(p.names) for p, _ in items),
                             sources=tuple(p.record.image_id for p, _ in items))
        want_att = any(p.attention and k < self.cfg.attention_crops for p, k in items)
        batch = batch.to(self.device, non_blocking=True)
        out = self.model(batch, return_attention=True) if want_att else self.model(batch)
        cls = out.cls.float().cpu().numpy()
        mp = torch.stack([t.float().mean(dim=(0, 1, 2)) for t in out.patch_tokens]).cpu().numpy()
        for j, (p, k) in enumerate(items):
            p.cls[k], p.meanpatch[k] = cls[j], mp[j]
            p.remaining -= 1
            if want_att and p.attention and k < self.cfg.attention_crops and out.attentions is not None:
                from chadavit.embed.attention import save_attention

                save_attention(self.attention_dir, p.record.image_id, k, p.names, x[j], out.attentions[j])

    def _run(self, items: list[tuple[Prepared, int]]) -> None:
        items = [(p, k) for p, k in items if not p.failed]
        if not items:
            return
        try:
            self._forward(items)
        except Exception:  # noqa: BLE001 - find the image(s) at fault, keep the rest
            by_image: dict[int, list[tuple[Prepared, int]]] = {}
            for p, k in items:
                by_image.setdefault(id(p), []).append((p, k))
            if len(by_image) > 1:
                for group in by_image.values():
                    self._run(group)
                return
            try:
                self._forward(items)  # one image left: the error is its own (report the real exception)
            except Exception as exc:  # noqa: BLE001
                self._fail(items[0][0], "model", exc)

    # ----------------------------------------------------------------------------------- bookkeeping
    def _fail(self, p: Prepared | ImageRecord, stage: str, exc: BaseException, index: int | None = None) -> None:
        rec = p.record if isinstance(p, Prepared) else p
        if isinstance(p, Prepared):
            p.failed = True
            index = p.index
        msg = str(exc) if rec.image_id in str(exc) or any(s in str(exc) for s in rec.sources) else \
            f"{rec.image_id}: {exc}"
        self.errors.append({"image_id": rec.image_id, "image_index": index, "level": "error", "stage": stage,
                            "error": type(exc).__name__, "message": msg, "sources": ";".join(rec.sources)})
        log.warning("skipping %s (%s)", rec.image_id, msg)

    def _rows(self, p: Prepared) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
        rec = p.record
        h, w = p.shape[1:]
        meta = {(f"Input{k}" if k in RESERVED_METADATA else k): v for k, v in rec.metadata.items()}
        base = {"ImageId": rec.image_id, "ImageIndex": p.index, **meta,
                "Channels": ",".join(p.names), "SourceChannels": ",".join(p.source_names),
                "Source": ";".join(rec.sources), "ImageHeight": h, "ImageWidth": w, "CropMode": self.cfg.crops}
        cls = np.stack(p.cls)
        mp = np.stack(p.meanpatch)
        if self.cfg.per_image:
            return [{**base, "NumCrops": len(p.crops)}], {"cls": cls.mean(0, keepdims=True),
                                                          "meanpatch": mp.mean(0, keepdims=True)}
        rows = []
        for k, c in enumerate(p.crops):
            rows.append({**base, "CropIndex": k, "CropY0": c.y0, "CropX0": c.x0, "CropY1": c.y1, "CropX1": c.x1,
                         **dict(c.meta)})
        return rows, {"cls": cls, "meanpatch": mp}

    def _check_channel_options(self, records: list[ImageRecord]) -> None:
        """Catch typos before any pixel is read, when the inputs name their channels up front."""
        if not records or any(r.channel_names is None for r in records):
            return
        source = {n for r in records for n in r.channel_names or ()}
        unused = sorted(set(self.spec.channel_map) - source)
        if unused:
            log.warning("--channel-map names %s, which no image has (channels found: %s)", unused,
                        ", ".join(sorted(source)))
        if self.spec.wanted:
            mapped = {self.spec.channel_map.get(n, n) for n in source}
            missing = [w for w in self.spec.wanted if w not in mapped]
            if missing:
                have = ", ".join(f"{n}->{self.spec.channel_map[n]}" if n in self.spec.channel_map else n
                                 for n in sorted(source))
                raise EmbedError(f"--channels asks for {missing}, which no image has; channels found: {have}. "
                                 "Rename file channel names with --channel-map SOURCE=NAME")

    # ----------------------------------------------------------------------------------- main loop
    def run(self) -> EmbedResult:
        cfg = self.cfg
        t0 = time.perf_counter()
        try:
            records = open_source(cfg.input, cfg.input_format, cfg.pattern, cfg.recursive)
        except ValueError as exc:
            raise EmbedError(str(exc)) from exc
        if cfg.limit is not None:
            records = records[: cfg.limit]
        self._check_channel_options(records)
        if self.out.exists() and not self.out.with_name(self.out.name + ".parts").exists() and not cfg.overwrite:
            raise EmbedError(f"{self.out} already exists (a finished run); pass --overwrite to compute it again")
        self.store = RunStore(self.out, cfg.settings(), overwrite=cfg.overwrite)
        if cfg.overwrite and self.attention_dir.is_dir():
            import shutil

            shutil.rmtree(self.attention_dir)
        done_before = sum(r.image_id in self.store.done for r in records)
        todo = [(i, r) for i, r in enumerate(records) if r.image_id not in self.store.done]
        if done_before:
            log.info("resuming: %d of %d images already embedded in %s", done_before, len(records), self.store.dir)
        if getattr(getattr(self.model, "config", None), "channel_embedding", None) == "slot":
            log.info("the model's channel embedding is positional: channel order matters (use --channels to fix it)")
        from tqdm.auto import tqdm

        bar = tqdm(total=len(records), initial=done_before, unit="img", desc="embed", disable=not cfg.progress,
                   dynamic_ncols=True, smoothing=0.1)
        buffers: dict[int, list[tuple[Prepared, int]]] = {}
        pending: dict[int, Prepared] = {}
        finished: list[Prepared] = []
        empty: list[str] = []
        n_computed = n_crops = 0
        last_commit = time.monotonic()
        orders: dict[frozenset[str], tuple[str, ...]] = {}
        order_warned = False
        self.errors = []
        completed_now = 0

        def harvest() -> None:
            nonlocal n_computed, completed_now
            for key in [k for k, p in pending.items() if p.failed or p.remaining == 0]:
                p = pending.pop(key)
                p.field = None  # the pixels are no longer needed: only features wait for the next part
                bar.update(1)
                if not p.failed:
                    finished.append(p)
                    n_computed += 1
                    completed_now += 1
                    if self.progress_callback is not None:
                        self.progress_callback(completed_now)

        def commit() -> None:
            nonlocal last_commit
            if not finished and not empty:
                return
            last_commit = time.monotonic()
            rows: list[dict[str, Any]] = []
            feats: dict[str, list[np.ndarray]] = {"cls": [], "meanpatch": []}
            for p in finished:
                r, f = self._rows(p)
                rows.extend(r)
                for k in feats:
                    feats[k].append(f[k])
            table = rows_to_table(rows, {k: np.concatenate(v) for k, v in feats.items()}) if rows else None
            self.store.commit(table, [p.record.image_id for p in finished] + empty)
            finished.clear()
            empty.clear()
            self.store.write_errors(self.errors)

        try:
            for (index, rec), prep in _prefetch(self.prepare, todo, cfg.workers, max(2, 2 * cfg.workers)):
                if isinstance(prep, _Failed):
                    self._fail(rec, "read", prep.exc, index)
                    bar.update(1)
                    continue
                try:
                    new_unknown = self.vocab.check(prep.names)
                except ChannelError as exc:
                    self._fail(prep, "channels", exc)
                    bar.update(1)
                    continue
                if new_unknown:
                    log.warning(self.vocab.message(new_unknown))
                order = orders.setdefault(frozenset(prep.names), tuple(prep.names))
                if order != tuple(prep.names) and not order_warned and self.max_channels:
                    order_warned = True
                    log.warning("%s has channels in the order %s but earlier images had %s; the model's channel "
                                "embedding is positional, so the same channels in another order give other "
                                "features. Fix the order with --channels.", rec.image_id, list(prep.names),
                                list(order))
                if not prep.crops:
                    empty.append(rec.image_id)
                    self.errors.append({"image_id": rec.image_id, "image_index": index, "level": "warning",
                                        "stage": "crop", "error": "NoCrops",
                                        "message": f"{rec.image_id}: no nucleus found; no rows written",
                                        "sources": ";".join(rec.sources)})
                    bar.update(1)
                    continue
                pending[id(prep)] = prep
                n_crops += len(prep.crops)
                buf = buffers.setdefault(prep.shape[0], [])
                buf.extend((prep, k) for k in range(len(prep.crops)))
                while len(buf) >= cfg.batch_size:
                    chunk, buf[:] = buf[: cfg.batch_size], buf[cfg.batch_size :]
                    self._run(chunk)
                    harvest()
                # images whose crops wait in a partly filled buffer stay pending; flush them if too many wait
                if len(pending) > 4 * cfg.part_size:
                    for b in buffers.values():
                        chunk, b[:] = b[:], []
                        self._run(chunk)
                    harvest()
                bar.set_postfix(crops=n_crops, failed=sum(e["level"] == "error" for e in self.errors), refresh=False)
                if len(finished) + len(empty) >= cfg.part_size or (
                        finished and time.monotonic() - last_commit > COMMIT_EVERY_S):
                    commit()
            for b in buffers.values():
                while b:
                    chunk, b[:] = b[: cfg.batch_size], b[cfg.batch_size :]
                    self._run(chunk)
            harvest()
        finally:
            commit()
            self.store.write_errors(self.errors)
            bar.close()
        failed = [e for e in self.errors if e["level"] == "error"]
        n_rows = self.store.assemble({"model_class": type(self.model).__name__,
                                      "model_config": _config_dict(self.model)})
        errors_path = None
        if self.errors:
            errors_path = self.store.write_errors(self.errors, self.errors_path)
        elif self.errors_path.exists():
            self.errors_path.unlink()
        h5ad_path = Path(write_h5ad(self.out, cfg.h5ad)) if cfg.h5ad else None
        if not failed and not cfg.keep_parts:
            self.store.remove()
        seconds = time.perf_counter() - t0
        log.info("embedded %d images (%d crops) in %.1f s; %d already done, %d failed -> %s", n_computed, n_crops,
                 seconds, done_before, len(failed), self.out)
        wants_attention = bool(cfg.save_attention or cfg.attention_images)
        attention_dir = self.attention_dir if wants_attention and self.attention_dir.exists() else None
        return EmbedResult(self.out, len(records), done_before, n_computed, len(failed), n_crops, n_rows, seconds,
                           errors_path, h5ad_path, attention_dir, list(self.errors))


def _config_dict(model: nn.Module) -> dict[str, Any] | None:
    cfg = getattr(model, "config", None)
    if cfg is None:
        return None
    return cfg.to_dict() if hasattr(cfg, "to_dict") else None


def run_embed(cfg: EmbedConfig, model: nn.Module | None = None,
              progress_callback: Callable[[int], None] | None = None) -> EmbedResult:
    """Embed every image of ``cfg.input`` into ``cfg.out`` (Parquet), resuming a previous unfinished run.

    ``model`` overrides ``cfg.model`` (e.g. a model already in memory); ``progress_callback`` is called
    with the number of images finished so far in this run (tests use it to interrupt a run).
    """
    return Embedder(cfg, model, progress_callback).run()
