"""Suite figures (matplotlib, Agg): CLS attention per channel (paper Fig. 15), channel reconstructions
(Fig. 16), a 2-D embedding map coloured by dataset (UMAP when ``umap-learn`` is installed, else t-SNE or
PCA from scikit-learn), CLS vs all-token probe scores (Fig. 14 left) and the missing-channel curve.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from chadavit.data.normalize import normalize_planes
from chadavit.evaluation.data import EvalData
from chadavit.evaluation.features import LoadedModel, make_batch


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_")


def _wrap(name: str, width: int = 22) -> str:
    """A model name on at most a few lines, never cut off."""
    import textwrap

    return "\n".join(textwrap.wrap(name, width, break_on_hyphens=False)) or name


def _show(img: np.ndarray) -> np.ndarray:
    return normalize_planes(img[None].astype(np.float32), "percentile").numpy()[0]


@torch.no_grad()
def attention_figure(lm: LoadedModel, data: EvalData, indices: list[int], path: Path) -> Path | None:
    """Rows are images; for every channel the raw plane and the head-averaged CLS->patch attention over it."""
    imgs = [data.images[i] for i in indices]
    names = [data.channel_names[i] for i in indices]
    out = lm.model(make_batch(lm, imgs, names), return_attention=True)
    if getattr(out, "attentions", None) is None:
        return None
    plt = _plt()
    cmax = max(im.shape[0] for im in imgs)
    fig, axes = plt.subplots(len(imgs), 2 * cmax, figsize=(2 * 2 * cmax + 0.8, 2 * len(imgs) + 0.5), squeeze=False)
    # % of each image's CLS attention per patch, one colour scale for the whole figure (uniform = 100 / patches)
    maps = [att.float().mean(0).cpu().numpy() for att in out.attentions]  # (C', h, w); fixed-channel baselines
    maps = [a / max(float(a.sum()), 1e-12) * 100.0 for a in maps]         # may carry padded channels
    lo, hi = min(float(a.min()) for a in maps), max(float(a.max()) for a in maps)
    mappable = None
    for r, (img, nm, a) in enumerate(zip(imgs, names, maps)):
        for c in range(cmax):
            ax_img, ax_att = axes[r, 2 * c], axes[r, 2 * c + 1]
            for ax in (ax_img, ax_att):
                ax.axis("off")
            if c >= img.shape[0]:
                continue
            ax_img.imshow(_show(img[c]), cmap="gray")
            ax_img.set_title(f"{nm[c]} (input)", fontsize=8)
            if c < a.shape[0]:
                mappable = ax_att.imshow(a[c], cmap="inferno", vmin=lo, vmax=hi)
                ax_att.set_title(f"{nm[c]}: CLS attention", fontsize=8)
    uniform = 100.0 / maps[0].size
    fig.suptitle(f"{lm.label}: last-block CLS attention over each channel ({data.name}), mean over heads", fontsize=9)
    fig.tight_layout()
    if mappable is not None:
        fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.8,
                     label=f"% of the image's CLS attention per patch (uniform: {uniform:.2g} %)")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def reconstruction_figure(task: str, items: dict[str, dict[str, Any]], path: Path) -> Path:
    """Rows are test images: input channels, the true held-out channel, then each model's prediction."""
    plt = _plt()
    first = next(iter(items.values()))
    data: EvalData = first["data"]
    idx, inputs = first["index"], first["inputs"]
    ncol = len(inputs) + 1 + len(items)
    fig, axes = plt.subplots(len(idx), ncol, figsize=(1.9 * ncol, 1.9 * len(idx)), squeeze=False)
    for r, i in enumerate(idx):
        img = data.images[int(i)]
        names = data.channel_names[int(i)]
        for c, ch in enumerate(inputs):
            axes[r, c].imshow(_show(img[ch]), cmap="gray")
            axes[r, c].set_title(f"input {names[ch]}", fontsize=7)
        axes[r, len(inputs)].imshow(first["target"][r], cmap="gray", vmin=0, vmax=1)
        axes[r, len(inputs)].set_title(f"true {first['target_name']}", fontsize=7)
        for m, (label, it) in enumerate(items.items()):
            axes[r, len(inputs) + 1 + m].imshow(it["pred"][r], cmap="gray", vmin=0, vmax=1)
            axes[r, len(inputs) + 1 + m].set_title(label[:24], fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(f"{task}: channel reconstruction from the CLS token (seed 0 test images)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def embed_2d(x: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D map of features: ``umap`` (umap-learn), ``tsne`` or ``pca`` (scikit-learn); ``auto`` prefers UMAP."""
    from sklearn.decomposition import PCA

    x = x.reshape(len(x), -1).astype(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    if method in ("auto", "umap"):
        try:
            import umap  # type: ignore[import-not-found]

            return umap.UMAP(n_components=2, random_state=seed).fit_transform(x), "UMAP"
        except ImportError:
            if method == "umap":
                raise
            method = "tsne"
    if method == "pca" or len(x) < 5:
        return PCA(2, random_state=seed).fit_transform(x), "PCA"
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    xp = PCA(min(50, x.shape[1], len(x)), random_state=seed).fit_transform(x)
    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    with threadpool_limits(1):  # OpenMP spin-waiting makes t-SNE crawl on a shared, loaded CPU
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(xp), "t-SNE"


def embedding_figure(lm: LoadedModel, feats: dict[str, np.ndarray], path: Path, method: str = "auto") -> Path:
    plt = _plt()
    names = list(feats)
    x = np.concatenate([feats[n] for n in names])
    group = np.concatenate([[n] * len(feats[n]) for n in names])
    xy, used = embed_2d(x, method)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for n in names:
        m = group == n
        ax.scatter(xy[m, 0], xy[m, 1], s=6, alpha=0.7, label=f"{n} ({m.sum()})")
    ax.legend(fontsize=7, markerscale=2, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title(f"{lm.label}: {used} of image embeddings, coloured by dataset", fontsize=8)
    axis = {"PCA": "PC", "UMAP": "UMAP", "t-SNE": "t-SNE"}[used]
    ax.set_xlabel(f"{axis} 1" + (" (arbitrary units)" if used != "PCA" else ""), fontsize=8)
    ax.set_ylabel(f"{axis} 2" + (" (arbitrary units)" if used != "PCA" else ""), fontsize=8)
    ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def cls_vs_all_figure(pairs: list[tuple[str, dict[str, str]]], summary: pd.DataFrame, path: Path) -> Path | None:
    """Grouped bars: for every dataset/label probed with several feature kinds, each model's top-1 per kind."""
    if not pairs or summary.empty:
        return None
    plt = _plt()
    models = list(dict.fromkeys(summary["model"]))
    names = {"cls": "CLS", "patch_mean": "mean of patch tokens", "all_tokens": "all tokens"}
    fig, axes = plt.subplots(1, len(pairs), figsize=(2.5 + 1.0 * len(models) * len(pairs), 3.6), squeeze=False)
    for ax, (title, by_kind) in zip(axes[0], pairs):
        kinds = [k for k in ("cls", "patch_mean", "all_tokens") if k in by_kind]
        w = 0.8 / len(kinds)
        prim = summary.attrs.get("primary") or {}
        metric = (prim.get(by_kind["cls"]) or ["top1"])[0]  # e.g. macro F1 for an imbalanced task
        for j, kind in enumerate(kinds):
            t = by_kind[kind]
            s = summary[(summary["task"] == t) & (summary["metric"] == metric)].set_index("model").reindex(models)
            ax.bar(np.arange(len(models)) + (j - (len(kinds) - 1) / 2) * w, s["mean"], w,
                   yerr=s["std"].where(s["n_seeds"] > 1), label=names[kind], capsize=2)
        ax.set_xticks(np.arange(len(models)), [_wrap(m) for m in models], rotation=35, ha="right", fontsize=7)
        ax.set_ylabel({"macro_f1": "linear probe macro F1 %"}.get(metric, "linear probe top-1 %"))
        ax.set_title(title, fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.08))
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def missing_channel_figure(task: str, summary: pd.DataFrame, path: Path) -> Path | None:
    s = summary[(summary["task"] == task) & summary["metric"].str.startswith("top1@")]
    if s.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for model, g in s.groupby("model", sort=False):
        k = g["metric"].str.extract(r"top1@(\d+)/")[0].astype(int)
        ax.errorbar(k, g["mean"], yerr=g["std"].where(g["n_seeds"] > 1), marker="o", capsize=2, label=model)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("channels given at test time (k)")
    ax.set_ylabel("top-1 %")
    ax.set_title(f"{task}: probe trained on all channels", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def make_figures(suite: Any, models: list[LoadedModel], datasets: dict[str, EvalData | None], runner: Any,
                 summary: pd.DataFrame, out: Path, say: Any = print) -> list[Path]:
    """Every figure the suite's ``figures`` section asks for, plus the automatic ones."""
    out.mkdir(parents=True, exist_ok=True)
    cfg = suite.figures or {}
    made: list[Path | None] = []
    att = cfg.get("attention")
    if att and datasets.get(att["dataset"]) is not None:
        data = datasets[att["dataset"]]
        idx = list(range(min(int(att.get("n_images", 3)), len(data))))
        for lm in models:
            if not lm.one_vector:  # raw pixels, CellProfiler, ... have no attention
                made.append(attention_figure(lm, data, idx, out / f"attention_{_slug(lm.label)}.png"))
    for task, items in runner.artifacts.get("reconstruction_by_task", {}).items():
        made.append(reconstruction_figure(task, items, out / f"reconstruction_{_slug(task)}.png"))
    emb = cfg.get("embedding")
    if emb:
        names = [n for n in emb.get("datasets", list(datasets)) if datasets.get(n) is not None]
        per = int(emb.get("max_per_dataset", 200))
        for lm in models:
            if lm.one_vector:  # the references' vectors differ in size between datasets
                continue
            feats = {}
            for n in names:
                d = datasets[n]
                sub = d.subset(np.random.default_rng(0).permutation(len(d))[:per]) if len(d) > per else d
                feats[n] = runner.features(lm, sub, emb.get("features", "patch_mean"))
            if len({f.shape[1] for f in feats.values()}) > 1:  # e.g. concatenated per-channel CLS
                feats = {n: runner.features(lm, datasets[n] if len(datasets[n]) <= per else datasets[n].subset(
                    np.random.default_rng(0).permutation(len(datasets[n]))[:per]), "patch_mean") for n in names}
            made.append(embedding_figure(lm, feats, out / f"embedding_{_slug(lm.label)}.png",
                                         str(emb.get("method", "auto"))))
    pairs = []
    by_key: dict[tuple[str, str], dict[str, str]] = {}
    for t in suite.tasks:
        if t.protocol == "linear":
            by_key.setdefault((t.dataset, str(t.label)), {})[t.features] = t.name
    for (ds, label), feats in by_key.items():
        if "cls" in feats and len(feats) > 1:
            pairs.append((f"{ds}: {label}", feats))
    made.append(cls_vs_all_figure(pairs, summary, out / "cls_vs_all_tokens.png"))
    for t in suite.tasks:
        if t.protocol == "missing_channels":
            made.append(missing_channel_figure(t.name, summary, out / f"missing_channels_{_slug(t.name)}.png"))
    made.append(baseline_gap_figure(summary, out / "gap_to_best_baseline.png"))
    paths = [p for p in made if p is not None]
    say(f"figures: {', '.join(p.name for p in paths)}")
    return paths


def baseline_gap_figure(summary: pd.DataFrame, path: Path) -> Path | None:
    """Horizontal bars per task: each trained model's gap to the best baseline (0 = as good as the best one)."""
    from chadavit.evaluation.baselines import gap_table

    primaries, baselines = summary.attrs.get("primary"), summary.attrs.get("baselines")
    if not primaries or not baselines:
        return None
    gaps = gap_table(summary, primaries, baselines)
    if gaps.empty:
        return None
    plt = _plt()
    tasks = list(dict.fromkeys(gaps["task"]))
    models = list(dict.fromkeys(gaps["model"]))
    h = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(9.5, 0.9 + 0.32 * len(tasks) * max(1, len(models) * 0.6)))
    for j, m in enumerate(models):
        g = gaps[gaps["model"] == m].set_index("task").reindex(tasks)
        ax.barh(np.arange(len(tasks)) + (j - (len(models) - 1) / 2) * h, g["gap_unit"], h, label=_wrap(m, 40))
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(np.arange(len(tasks)), [f"{t} (vs {b})" for t, b in
                                          zip(tasks, gaps.drop_duplicates("task").set_index("task")
                                              .reindex(tasks)["best_baseline"])], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("gap to the best baseline (R², or top-1 / F1 as a fraction); > 0: better", fontsize=8)
    ax.set_title("Trained models against the best untrained baseline per task", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path
