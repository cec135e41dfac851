"""The embedding loop: list images, read and crop them in worker threads, batch crops, write resumable parts.

Memory stays bounded whatever the number of images: at most ``workers * 2`` images are being
read ahead, crops are cut from the normalised field only when their batch is built, and finished
images leave memory as soon as their part is written. Crops are batched by channel count, so every
forward pass sees one ``(N * C, S, S)`` stack of planes. Options live in :mod:`chadavit.embed.config`,
per-image reading, validation and scaling in :mod:`chadavit.embed.prepare`.

The pixel road: a field is validated and scaled once by :meth:`ChannelBatch.from_images` (with the model's
recorded normalisation, or ``--normalize``); its crops are cut from the scaled field and resized to the model's
input, so a batch of crops is built from planes already scaled (:meth:`Embedder._forward`), as pretraining's
collate does with its views. Scaling each crop on its own would change the features (a crop's percentiles are
not its field's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from chadavit.batch import ChannelBatch
from chadavit.data.crops import extract
from chadavit.data.listing import utf8
from chadavit.embed.attention import save_attention
from chadavit.embed.channels import ChannelError, ChannelSpec, VocabularyChecker
from chadavit.embed.checks import check_channel_options
from chadavit.embed.config import CROP_MODES, EmbedConfig, EmbedResult, validate_options
from chadavit.embed.model_spec import load_model, pick_device
from chadavit.embed.output import (
    WEIGHTS_KEY,
    EmbedError,
    RunStore,
    channel_means,
    lock_output,
    rows_to_table,
    stack_blocks,
    write_h5ad,
)
from chadavit.embed.prefetch import Failed, prefetch
from chadavit.embed.prepare import ImagePreparer, Prepared
from chadavit.embed.shards import parse_shard, select_shard, shard_metadata
from chadavit.embed.sources import ImageRecord, open_source

__all__ = ["CROP_MODES", "EmbedConfig", "EmbedResult", "Embedder", "run_embed"]

log = logging.getLogger("chadavit.embed")

COMMIT_EVERY_S = 120.0  # write a part at least this often: slow runs (many crops per image) lose little


@dataclass
class _Loop:
    """The state of one run's loop: images waiting for their crops, finished ones waiting for the next part."""

    bar: Any
    buffers: dict[int, list[tuple[Prepared, int]]] = field(default_factory=dict)  # crops by channel count
    pending: dict[int, Prepared] = field(default_factory=dict)
    finished: list[Prepared] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # images without crops: done, no rows
    orders: dict[frozenset[str], tuple[str, ...]] = field(default_factory=dict)
    order_warned: bool = False
    n_computed: int = 0
    n_crops: int = 0
    last_commit: float = field(default_factory=time.monotonic)


class Embedder:
    """One embedding run (see :func:`run_embed`)."""

    def __init__(self, cfg: EmbedConfig, model: nn.Module | None = None,
                 progress_callback: Callable[[int], None] | None = None) -> None:
        self.cfg = cfg
        validate_options(cfg)
        try:
            self.spec = ChannelSpec.parse(cfg.channels, cfg.channel_map)
        except ChannelError as exc:
            raise EmbedError(str(exc)) from exc
        self.progress_callback = progress_callback
        if cfg.max_pixels is not None:
            from chadavit.data.readers import set_max_pixels

            set_max_pixels(cfg.max_pixels)  # process-wide: the readers run in worker threads
        self.device = pick_device(cfg.device)
        self.model, self.weights_digest = self._load(model)
        self._read_model_config()
        out = Path(cfg.out)
        self.out = out if out.suffix.lower() == ".parquet" else out.with_name(out.name + ".parquet")
        self.errors_path = self.out.with_name(self.out.name.removesuffix(".parquet") + ".errors.csv")
        self.attention_dir = self.out.with_name(self.out.name.removesuffix(".parquet") + "_attention")
        self.errors: list[dict[str, Any]] = []

    def _load(self, model: nn.Module | None) -> tuple[nn.Module | None, str | None]:
        """The encoder (``cfg.model`` through :func:`chadavit.models.load_encoder`, or the one given, used frozen) on
        the device at the run's precision, and the digest of its weights as loaded; none for CellProfiler only."""
        cfg = self.cfg
        if "learned" not in cfg.feature_groups:
            return None, None
        from chadavit.models.encoder import prepare_encoder
        from chadavit.models.io import weights_digest
        from chadavit.precision import resolve_precision

        if model is None:
            model = load_model(cfg.model, num_heads=cfg.num_heads, seed=cfg.seed, final_norm_eps=cfg.final_norm_eps)
        elif resolve_precision(cfg.precision, self.device) != torch.float32:
            import copy

            model = copy.deepcopy(model)  # the caller's model keeps its float32 weights
        digest = weights_digest(model)  # before any cast: the weights as loaded
        return prepare_encoder(model, self.device, cfg.precision), digest

    def _read_model_config(self) -> None:
        """Crop size, normalisation and channel slots from the model's config (defaults without a model)."""
        cfg = self.cfg
        mcfg = self.model.config if self.model is not None else None
        self.img_size = mcfg.img_size if mcfg is not None else 224
        self.patch_size = mcfg.patch_size if mcfg is not None else 16
        trained = mcfg.crop_size if mcfg is not None else 0  # the scale the model was trained at, when recorded
        self.crop_size = int(cfg.crop_size or trained or self.img_size)
        if not cfg.crop_size and trained and cfg.crops != "full":
            log.info("crop size %d px: the scale the model was trained at (set --crop-size to change)", trained)
        self.normalize = cfg.normalize or (mcfg.normalization if mcfg is not None else "percentile")
        slots = mcfg is not None and mcfg.channel_embedding == "slot"
        self.max_channels = mcfg.num_slots if slots else 0  # type: ignore[union-attr]
        self.vocab = VocabularyChecker(mcfg, strict=cfg.strict_channels)
        self.preparer = ImagePreparer(cfg, self.spec, self.crop_size, self.normalize, self.max_channels,
                                      self.patch_size, self.img_size, mcfg.normalization_stats if mcfg else None)

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
        # planes already scaled with their field (see the module docstring): packed as they are
        batch = ChannelBatch(planes=x.reshape(n * c, s, s), num_channels=torch.full((n,), c, dtype=torch.long),
                             channel_names=tuple(tuple(p.names) for p, _ in items),
                             sources=tuple(p.record.image_id for p, _ in items))
        want_att = any(p.attention and k < self.cfg.attention_crops for p, k in items)
        batch = batch.to(self.device, non_blocking=True)
        out = self.model(batch, return_attention=True) if want_att else self.model(batch)
        cls = out.pooled("cls").cpu().numpy()
        mp = out.pooled("patch_mean").cpu().numpy()
        per_channel = channel_means(out, batch.channel_names) if "per_channel" in self.cfg.feature_blocks else None
        for j, (p, k) in enumerate(items):
            p.cls[k], p.meanpatch[k] = cls[j], mp[j]
            if per_channel is not None:
                p.per_channel[k] = per_channel[j]
            p.remaining -= 1
            if want_att and p.attention and k < self.cfg.attention_crops and out.attentions is not None:
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
        text = utf8(str(exc))  # the same escapes as the record's id and sources
        msg = text if rec.image_id in text or any(s in text for s in rec.sources) else f"{rec.image_id}: {text}"
        self.errors.append({"image_id": rec.image_id, "image_index": index, "level": "error", "stage": stage,
                            "error": type(exc).__name__, "message": msg, "sources": ";".join(rec.sources)})
        log.warning("skipping %s (%s)", rec.image_id, msg)

    def _warn(self, rec: ImageRecord, index: int, stage: str, kind: str, message: str) -> None:
        """An image embedded (or skipped on purpose) with something the user should know, kept in errors.csv."""
        self.errors.append({"image_id": rec.image_id, "image_index": index, "level": "warning", "stage": stage,
                            "error": kind, "message": message, "sources": ";".join(rec.sources)})
        log.warning(message)

    def _harvest(self, loop: _Loop) -> None:
        """Images whose every crop is embedded (or that failed) leave ``pending``; their pixels are dropped."""
        for key in [k for k, p in loop.pending.items() if p.failed or p.remaining == 0]:
            p = loop.pending.pop(key)
            p.field = None  # the pixels are no longer needed: only features wait for the next part
            loop.bar.update(1)
            if not p.failed:
                loop.finished.append(p)
                loop.n_computed += 1
                if self.progress_callback is not None:
                    self.progress_callback(loop.n_computed)

    def _commit(self, loop: _Loop) -> None:
        """The finished images as one part on disk (and the errors so far)."""
        if not loop.finished and not loop.empty:
            return
        loop.last_commit = time.monotonic()
        rows: list[dict[str, Any]] = []
        feats: list[dict[str, Any]] = []
        for p in loop.finished:
            r, f = p.rows(self.cfg, self.model is not None)
            rows.extend(r)
            feats.append(f)
        table = rows_to_table(rows, stack_blocks(feats)) if rows else None
        self.store.commit(table, [p.record.image_id for p in loop.finished] + loop.empty)
        loop.finished.clear()
        loop.empty.clear()
        self.store.write_errors(self.errors)

    # ----------------------------------------------------------------------------------- main loop
    def run(self) -> EmbedResult:
        """Embed everything not yet done, holding the output against a second run for the whole time."""
        with lock_output(self.out, self.cfg.h5ad):
            return self._run_locked()

    def _listing(self) -> tuple[list[ImageRecord], tuple[int, int], list[tuple[int, ImageRecord]]]:
        """Every image of the input (checked against the channel options), the shard, and this shard's images."""
        cfg = self.cfg
        try:
            records = open_source(cfg.input, cfg.input_format, cfg.pattern, cfg.recursive)
        except ValueError as exc:
            raise EmbedError(str(exc)) from exc
        if cfg.limit is not None:
            records = records[: cfg.limit]
        if not records:
            raise EmbedError(f"{cfg.input}: no images found")
        shard = parse_shard(cfg.shard)  # the whole listing is checked below; only this shard is embedded
        listed = select_shard(list(enumerate(records)), [r.image_id for r in records], shard)
        check_channel_options(cfg, self.spec, records)
        return records, shard, listed

    def _open_store(self) -> None:
        """The run's parts folder (resumed when its settings match), after clearing what ``--overwrite`` drops."""
        cfg = self.cfg
        if self.out.exists() and not self.out.with_name(self.out.name + ".parts").exists() and not cfg.overwrite:
            raise EmbedError(f"{self.out} already exists (a finished run); pass --overwrite to compute it again")
        self.store = RunStore(self.out, {**cfg.settings(), WEIGHTS_KEY: self.weights_digest}, overwrite=cfg.overwrite)
        if cfg.overwrite:
            self.out.unlink(missing_ok=True)  # discarded: a run that ends with no rows must not leave it behind
        if cfg.overwrite and self.attention_dir.is_dir():
            import shutil

            shutil.rmtree(self.attention_dir)

    def _run_locked(self) -> EmbedResult:
        cfg = self.cfg
        t0 = time.perf_counter()
        all_records, shard, listed = self._listing()
        self._open_store()
        records = [r for _, r in listed]
        done_before = sum(r.image_id in self.store.done for r in records)
        todo = [(i, r) for i, r in listed if r.image_id not in self.store.done]  # i: position in the whole listing
        if done_before:
            log.info("resuming: %d of %d images already embedded in %s", done_before, len(records), self.store.dir)
        if self.model is not None and self.model.config.channel_embedding == "slot":
            log.info("the model's channel embedding is positional: channel order matters (use --channels to fix it)")
        from tqdm.auto import tqdm

        loop = _Loop(tqdm(total=len(records), initial=done_before, unit="img", desc="embed", disable=not cfg.progress,
                          dynamic_ncols=True, smoothing=0.1))
        self.errors = []
        try:
            for (index, rec), prep in prefetch(self.preparer.prepare, todo, cfg.workers, max(2, 2 * cfg.workers)):
                self._take(loop, index, rec, prep)
            for b in loop.buffers.values():
                while b:
                    chunk, b[:] = b[: cfg.batch_size], b[cfg.batch_size :]
                    self._run(chunk)
            self._harvest(loop)
        finally:
            self._commit(loop)
            self.store.write_errors(self.errors)
            loop.bar.close()
        return self._finish(loop, all_records, records, shard, done_before, t0)

    def _admit(self, loop: _Loop, index: int, rec: ImageRecord, prep: Prepared | Failed) -> bool:
        """Whether a prepared image goes on to the model: read failures, channel errors and images without crops
        are recorded (and counted done) here."""
        if isinstance(prep, Failed):
            self._fail(rec, "read", prep.exc, index)
            loop.bar.update(1)
            return False
        try:
            new_unknown = self.vocab.check(prep.names)
        except ChannelError as exc:
            self._fail(prep, "channels", exc)
            loop.bar.update(1)
            return False
        if new_unknown:
            log.warning(self.vocab.message(new_unknown))
        for message in prep.warnings:
            self._warn(rec, index, "size", "SmallImage", message)
        order = loop.orders.setdefault(frozenset(prep.names), tuple(prep.names))
        if order != tuple(prep.names) and not loop.order_warned and self.max_channels:
            loop.order_warned = True
            log.warning("%s has channels in the order %s but earlier images had %s; the model's channel embedding is "
                        "positional, so the same channels in another order give other features. Fix the order with "
                        "--channels.", rec.image_id, list(prep.names), list(order))
        if not prep.crops:
            loop.empty.append(rec.image_id)
            self._warn(rec, index, "crop", "NoCrops", f"{rec.image_id}: no nucleus found; no rows written")
            loop.bar.update(1)
            return False
        return True

    def _take(self, loop: _Loop, index: int, rec: ImageRecord, prep: Prepared | Failed) -> None:
        """One prepared image: its crops into the batch buffers, full batches through the model, parts written."""
        cfg = self.cfg
        if not self._admit(loop, index, rec, prep):
            return
        assert isinstance(prep, Prepared)
        loop.pending[id(prep)] = prep
        loop.n_crops += len(prep.crops)
        if self.model is None:  # measured while it was read: nothing to run
            prep.remaining = 0
            self._harvest(loop)
            return
        buf = loop.buffers.setdefault(prep.shape[0], [])
        buf.extend((prep, k) for k in range(len(prep.crops)))
        while len(buf) >= cfg.batch_size:
            chunk, buf[:] = buf[: cfg.batch_size], buf[cfg.batch_size :]
            self._run(chunk)
            self._harvest(loop)
        # images whose crops wait in a partly filled buffer stay pending; flush them if too many wait
        if len(loop.pending) > 4 * cfg.part_size:
            for b in loop.buffers.values():
                chunk, b[:] = b[:], []
                self._run(chunk)
            self._harvest(loop)
        loop.bar.set_postfix(crops=loop.n_crops, failed=sum(e["level"] == "error" for e in self.errors), refresh=False)
        if len(loop.finished) + len(loop.empty) >= cfg.part_size or (
                loop.finished and time.monotonic() - loop.last_commit > COMMIT_EVERY_S):
            self._commit(loop)

    def _finish(self, loop: _Loop, all_records: list[ImageRecord], records: list[ImageRecord],
                shard: tuple[int, int], done_before: int, t0: float) -> EmbedResult:
        """Assemble the output from its parts, write the errors and the h5ad, and say what was done."""
        cfg = self.cfg
        failed = [e for e in self.errors if e["level"] == "error"]
        all_ids = [r.image_id for r in all_records]
        model_meta = {"model_class": type(self.model).__name__, "model_config": self.model.config.to_dict()} \
            if self.model is not None else {"model_class": None, "model_config": None}
        n_rows = self.store.assemble({**model_meta, **(shard_metadata(all_ids, len(records)) if shard[1] > 1 else {})},
                                     keep_empty=shard[1] > 1)
        errors_path = None
        if self.errors:
            errors_path = self.store.write_errors(self.errors, self.errors_path)
        elif self.errors_path.exists():
            self.errors_path.unlink()
        if not n_rows and shard[1] == 1:
            log.warning("no rows to write (%d images failed, %d gave no crops): %s not written", len(failed),
                        sum(e["error"] == "NoCrops" for e in self.errors), self.out)
        h5ad_path = Path(write_h5ad(self.out, cfg.h5ad)) if cfg.h5ad and n_rows else None
        if not failed and not cfg.keep_parts:
            self.store.remove()
        seconds = time.perf_counter() - t0
        log.info("embedded %d images (%d crops) in %.1f s; %d already done, %d failed -> %s", loop.n_computed,
                 loop.n_crops, seconds, done_before, len(failed), self.out)
        wants_attention = bool(cfg.save_attention or cfg.attention_images)
        attention_dir = self.attention_dir if wants_attention and self.attention_dir.exists() else None
        out = self.out if n_rows or shard[1] > 1 else None  # a shard's output exists even without rows
        return EmbedResult(out, len(records), done_before, loop.n_computed, len(failed), loop.n_crops, n_rows,
                           seconds, errors_path, h5ad_path, attention_dir, list(self.errors))


def run_embed(cfg: EmbedConfig, model: nn.Module | None = None,
              progress_callback: Callable[[int], None] | None = None) -> EmbedResult:
    """Embed every image of ``cfg.input`` into ``cfg.out`` (Parquet), resuming a previous unfinished run.

    ``model`` overrides ``cfg.model`` (e.g. a model already in memory); ``progress_callback`` is called
    with the number of images finished so far in this run (tests use it to interrupt a run).
    """
    return Embedder(cfg, model, progress_callback).run()
