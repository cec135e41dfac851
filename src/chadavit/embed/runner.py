"""The embedding loop: list images, read and crop them in worker threads, batch crops, write resumable parts.

Memory stays bounded whatever the number of images: at most ``workers * 2`` images are being
read ahead, crops are cut from the normalised field only when their batch is built, and finished
images leave memory as soon as their part is written. Crops are batched by channel count, so every
forward pass sees one ``(N * C, S, S)`` stack of planes. Options live in :mod:`chadavit.embed.config`,
per-image reading in :mod:`chadavit.embed.prepare`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from chadavit.batch import ChannelBatch
from chadavit.data.crops import extract
from chadavit.data.listing import utf8
from chadavit.embed.channels import ChannelError, ChannelSpec, VocabularyChecker
from chadavit.embed.config import CROP_MODES, RESERVED_METADATA, EmbedConfig, EmbedResult, validate_options
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
        from chadavit.embed.model_spec import load_model, pick_device

        self.device = pick_device(cfg.device)
        from chadavit.precision import prepare_inference, resolve_precision

        self.dtype = resolve_precision(cfg.precision, self.device)
        if model is not None and self.dtype != torch.float32:
            import copy

            model = copy.deepcopy(model)  # the caller's model keeps its float32 weights
        if "learned" in cfg.feature_groups:
            self.model = model if model is not None else load_model(cfg.model, num_heads=cfg.num_heads,
                                                                    seed=cfg.seed, final_norm_eps=cfg.final_norm_eps)
            from chadavit.models.io import weights_digest

            self.weights_digest: str | None = weights_digest(self.model)  # before any cast: the weights as loaded
            self.model = prepare_inference(self.model.eval().to(self.device), self.dtype)
        else:  # CellProfiler measurements only: no model (crop size and normalisation take their defaults)
            self.model, self.weights_digest = None, None
        mcfg = getattr(self.model, "config", None)
        self.img_size = int(getattr(mcfg, "img_size", 224))
        self.patch_size = int(getattr(mcfg, "patch_size", 16))
        trained = int(getattr(mcfg, "crop_size", 0) or 0)  # the scale the model was trained at, when recorded
        self.crop_size = int(cfg.crop_size or trained or self.img_size)
        if not cfg.crop_size and trained and cfg.crops != "full":
            log.info("crop size %d px: the scale the model was trained at (set --crop-size to change)", trained)
        self.normalize = cfg.normalize or str(getattr(mcfg, "normalization", "percentile"))
        self.max_channels = (int(getattr(mcfg, "num_slots", 0))
                             if getattr(mcfg, "channel_embedding", "slot") == "slot" else 0)
        self.vocab = VocabularyChecker(mcfg, strict=cfg.strict_channels)
        self.preparer = ImagePreparer(cfg, self.spec, self.crop_size, self.normalize, self.max_channels,
                                      self.patch_size, self.img_size, getattr(mcfg, "normalization_stats", None))
        out = Path(cfg.out)
        self.out = out if out.suffix.lower() == ".parquet" else out.with_name(out.name + ".parquet")
        self.errors_path = self.out.with_name(self.out.name.removesuffix(".parquet") + ".errors.csv")
        self.attention_dir = self.out.with_name(self.out.name.removesuffix(".parquet") + "_attention")
        self.errors: list[dict[str, Any]] = []

    # ----------------------------------------------------------------------------------- per image (threads)
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
        per_channel = channel_means(out, batch.channel_names) if "per_channel" in self.cfg.feature_blocks else None
        for j, (p, k) in enumerate(items):
            p.cls[k], p.meanpatch[k] = cls[j], mp[j]
            if per_channel is not None:
                p.per_channel[k] = per_channel[j]
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

    def _rows(self, p: Prepared) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
        rec = p.record
        h, w = p.shape[1:]
        meta = {(f"Input{k}" if k in RESERVED_METADATA else k): v for k, v in rec.metadata.items()}
        base = {"ImageId": rec.image_id, "ImageIndex": p.index, **meta,
                "Channels": ",".join(p.names), "SourceChannels": ",".join(p.source_names),
                "Source": ";".join(rec.sources), "ImageHeight": h, "ImageWidth": w, "CropMode": self.cfg.crops}
        feats: dict[str, Any] = {}
        if self.model is not None:
            feats = {"cls": np.stack(p.cls), "meanpatch": np.stack(p.meanpatch)}
            if "per_channel" in self.cfg.feature_blocks:
                feats |= {f"chan_{name}": np.stack([d[name] for d in p.per_channel]) for name in p.per_channel[0]}
            feats = {k: v for k, v in feats.items() if k in self.cfg.feature_blocks or k.startswith("chan_")}
        if p.cp is not None:
            feats["cp"] = p.cp
        if self.cfg.per_image:  # CellProfiler: the mean over the cells measured (NaN rows left out)
            errs = sorted({str(m["CPError"]) for m in p.cp_meta if m.get("CPError")})
            cp_meta = {"CPError": "; ".join(errs) or None} if p.cp is not None else {}
            return [{**base, "NumCrops": len(p.crops), **cp_meta}], {
                k: (v.mean().to_frame().T if hasattr(v, "columns") else v.mean(0, keepdims=True))
                for k, v in feats.items()}
        rows = []
        for k, c in enumerate(p.crops):
            rows.append({**base, "CropIndex": k, "CropY0": c.y0, "CropX0": c.x0, "CropY1": c.y1, "CropX1": c.x1,
                         **dict(c.meta), **(p.cp_meta[k] if p.cp_meta else {})})
        return rows, feats

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
        if self.cfg.crops == "nuclei":
            self._check_nuclei_option(source, records)

    def _check_nuclei_option(self, source: set[str], records: list[ImageRecord]) -> None:
        """``--crops nuclei`` must know where the nuclei are before every image fails on it."""
        from chadavit.data.crops import NUCLEUS_CHANNEL_GUESSES

        mapped = {self.spec.channel_map.get(n, n) for n in source}
        want = self.cfg.nuclei_channel
        if want is not None:
            if want not in mapped | source:
                raise EmbedError(f"--nuclei-channel {want!r} is not a channel of any image; channels found: "
                                 f"{', '.join(sorted(mapped))}")
            return
        guesses = {g.lower() for g in NUCLEUS_CHANNEL_GUESSES}

        def found(r: ImageRecord) -> bool:
            names = list(self.spec.wanted) if self.spec.wanted else \
                [self.spec.channel_map.get(n, n) for n in r.channel_names or ()]
            return len(names) <= 1 or any(n.lower() in guesses for n in names)

        if not any(found(r) for r in records):
            raise EmbedError(f"--crops nuclei needs --nuclei-channel: none of the channels {sorted(mapped)} is a "
                             f"known DNA stain ({', '.join(NUCLEUS_CHANNEL_GUESSES)})")

    # ----------------------------------------------------------------------------------- main loop
    def run(self) -> EmbedResult:
        """Embed everything not yet done, holding the output against a second run for the whole time."""
        with lock_output(self.out, self.cfg.h5ad):
            return self._run_locked()

    def _run_locked(self) -> EmbedResult:
        cfg = self.cfg
        t0 = time.perf_counter()
        try:
            records = open_source(cfg.input, cfg.input_format, cfg.pattern, cfg.recursive)
        except ValueError as exc:
            raise EmbedError(str(exc)) from exc
        if cfg.limit is not None:
            records = records[: cfg.limit]
        if not records:
            raise EmbedError(f"{cfg.input}: no images found")
        shard = parse_shard(cfg.shard)  # the whole listing is checked below; only this shard is embedded
        all_ids = [r.image_id for r in records]
        listed = select_shard(list(enumerate(records)), all_ids, shard)
        self._check_channel_options(records)
        if self.out.exists() and not self.out.with_name(self.out.name + ".parts").exists() and not cfg.overwrite:
            raise EmbedError(f"{self.out} already exists (a finished run); pass --overwrite to compute it again")
        settings = {**cfg.settings(), WEIGHTS_KEY: self.weights_digest}
        self.store = RunStore(self.out, settings, overwrite=cfg.overwrite)
        if cfg.overwrite:
            self.out.unlink(missing_ok=True)  # discarded: a run that ends with no rows must not leave it behind
        if cfg.overwrite and self.attention_dir.is_dir():
            import shutil

            shutil.rmtree(self.attention_dir)
        records = [r for _, r in listed]
        done_before = sum(r.image_id in self.store.done for r in records)
        todo = [(i, r) for i, r in listed if r.image_id not in self.store.done]  # i: position in the whole listing
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
            feats: list[dict[str, np.ndarray]] = []
            for p in finished:
                r, f = self._rows(p)
                rows.extend(r)
                feats.append(f)
            table = rows_to_table(rows, stack_blocks(feats)) if rows else None
            self.store.commit(table, [p.record.image_id for p in finished] + empty)
            finished.clear()
            empty.clear()
            self.store.write_errors(self.errors)

        try:
            for (index, rec), prep in prefetch(self.preparer.prepare, todo, cfg.workers, max(2, 2 * cfg.workers)):
                if isinstance(prep, Failed):
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
                for message in prep.warnings:
                    self._warn(rec, index, "size", "SmallImage", message)
                order = orders.setdefault(frozenset(prep.names), tuple(prep.names))
                if order != tuple(prep.names) and not order_warned and self.max_channels:
                    order_warned = True
                    log.warning("%s has channels in the order %s but earlier images had %s; the model's channel "
                                "embedding is positional, so the same channels in another order give other "
                                "features. Fix the order with --channels.", rec.image_id, list(prep.names),
                                list(order))
                if not prep.crops:
                    empty.append(rec.image_id)
                    self._warn(rec, index, "crop", "NoCrops", f"{rec.image_id}: no nucleus found; no rows written")
                    bar.update(1)
                    continue
                pending[id(prep)] = prep
                n_crops += len(prep.crops)
                if self.model is None:  # measured while it was read: nothing to run
                    prep.remaining = 0
                    harvest()
                    continue
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
        n_rows = self.store.assemble({"model_class": type(self.model).__name__ if self.model is not None else None,
                                      "model_config": _config_dict(self.model),
                                      **(shard_metadata(all_ids, len(records)) if shard[1] > 1 else {})},
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
        log.info("embedded %d images (%d crops) in %.1f s; %d already done, %d failed -> %s", n_computed, n_crops,
                 seconds, done_before, len(failed), self.out)
        wants_attention = bool(cfg.save_attention or cfg.attention_images)
        attention_dir = self.attention_dir if wants_attention and self.attention_dir.exists() else None
        out = self.out if n_rows or shard[1] > 1 else None  # a shard's output exists even without rows
        return EmbedResult(out, len(records), done_before, n_computed, len(failed), n_crops, n_rows, seconds,
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
