"""Options and result of one ``chadavit embed`` run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chadavit.sharding import parse_shard

CROP_MODES = ("grid", "nuclei", "full")
# feature blocks a run can write: cls_<j>, meanpatch_<j>, chan_<name>_<j> (the mean patch token of each channel)
FEATURE_BLOCKS = ("cls", "meanpatch", "per_channel")
DEFAULT_FEATURES = ("cls", "meanpatch", "per_channel")  # what "learned" means; why: docs/embed.md, "Which columns"
# --features items: "learned" (the default learned blocks), single learned blocks, "cellprofiler" (cp_ columns)
FEATURE_ITEMS = ("learned", *FEATURE_BLOCKS, "cellprofiler")


def parse_features(spec: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """``--features`` -> (the learned blocks to write, whether to write CellProfiler measurements).

    ``learned`` stands for :data:`DEFAULT_FEATURES`; ``cls``, ``meanpatch`` and ``per_channel`` pick single
    blocks; ``cellprofiler`` adds the ``cp_`` columns. Unknown or empty: a :class:`ValueError` saying what is taken.
    """
    items = [x.strip() for x in (spec.split(",") if isinstance(spec, str) else spec) if str(x).strip()]
    bad = [x for x in items if x not in FEATURE_ITEMS]
    if bad or not items:
        raise ValueError(f"--features takes a comma-separated list of {', '.join(FEATURE_ITEMS)} (learned = "
                         f"{','.join(DEFAULT_FEATURES)}), got {','.join(map(str, items)) or 'nothing'}")
    blocks = [b for b in FEATURE_BLOCKS if "learned" in items or b in items]
    return tuple(blocks), "cellprofiler" in items
# metadata the run itself writes; input metadata with these names is kept as Metadata_Input<Name>
RESERVED_METADATA = frozenset({"ImageId", "ImageIndex", "Channels", "SourceChannels", "Source", "ImageHeight",
                               "ImageWidth", "CropMode", "CropIndex", "CropY0", "CropX0", "CropY1", "CropX1",
                               "NucleusY", "NucleusX", "NucleusArea", "NucleusLabel", "NumCrops", "CPError",
                               "CPTouchesBorder"})


@dataclass
class EmbedConfig:
    """Options of ``chadavit embed`` (see ``docs/embed.md``); the CLI maps one flag to each field."""

    input: str
    out: str
    model: str | None  # a checkpoint (see chadavit.embed.model_spec); required for learned features
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
    num_heads: int | None = None  # official checkpoints only (None: the default, said in the log)
    final_norm_eps: float | None = None
    seed: int = 0
    batch_size: int = 32
    workers: int = 2
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 (see chadavit.precision); auto = bf16 where native
    part_size: int = 64
    h5ad: str | None = None
    save_attention: int = 0
    attention_images: list[str] | None = None
    attention_crops: int = 4
    overwrite: bool = False
    keep_parts: bool = False
    limit: int | None = None
    progress: bool = True
    max_pixels: int | None = None  # refuse images above this many values C x H x W (None: readers' default)
    shard: str | None = None  # "i/n": embed only the images whose id hashes to i mod n (chadavit.embed.shards)
    features: str | tuple[str, ...] = "learned"  # FEATURE_ITEMS, comma-separated (see parse_features)
    cell_channel: str | None = None  # cell-body channel cells are grown over (cellprofiler features)

    @property
    def feature_groups(self) -> tuple[str, ...]:
        """``learned`` when a learned block is asked for, ``cellprofiler`` when measurements are."""
        blocks, cellprofiler = parse_features(self.features)
        return ("learned",) * bool(blocks) + ("cellprofiler",) * cellprofiler

    @property
    def feature_blocks(self) -> tuple[str, ...]:
        """The learned blocks written (``cls``, ``meanpatch``, ``per_channel``), in that order."""
        return parse_features(self.features)[0]

    def settings(self) -> dict[str, Any]:
        """The options that shape the features: a resumed run must use the same ones."""
        keys = ("input", "model", "input_format", "pattern", "recursive", "channels", "channel_map", "crops",
                "crop_size", "stride", "nuclei_channel", "min_nucleus_area", "max_crops_per_image", "per_image",
                "normalize", "num_heads", "final_norm_eps", "seed", "precision")
        d = asdict(self)
        out = {k: d[k] for k in keys}
        out["input"] = str(Path(self.input).resolve())
        if isinstance(out["channels"], list):
            out["channels"] = ",".join(out["channels"])
        if isinstance(out["channel_map"], dict):
            out["channel_map"] = ",".join(f"{k}={v}" for k, v in out["channel_map"].items())
        blocks, cellprofiler = parse_features(self.features)
        if blocks != DEFAULT_FEATURES or cellprofiler:  # only when asked for: default runs resume as before
            out["features"] = ",".join(blocks + ("cellprofiler",) * cellprofiler)
        if cellprofiler:
            out["cell_channel"] = self.cell_channel
        if parse_shard(self.shard)[1] > 1:  # each shard resumes only itself
            out["shard"] = "{}/{}".format(*parse_shard(self.shard))
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


def validate_options(cfg: EmbedConfig) -> None:
    """Refuse option mistakes before any model is loaded or image touched: one message, nothing written.

    Mistakes found later would fail every image one by one, leave a run whose settings block the
    corrected re-run, and (before this check) an empty output file.
    """
    from chadavit.data.normalize import NORMALIZATION_METHODS
    from chadavit.embed.output import EmbedError

    problems = []
    if cfg.crops not in CROP_MODES:
        problems.append(f"--crops must be one of {', '.join(CROP_MODES)}, got {cfg.crops!r}")
    if cfg.normalize is not None and cfg.normalize not in NORMALIZATION_METHODS:
        problems.append(f"--normalize must be one of {', '.join(NORMALIZATION_METHODS)}, got {cfg.normalize!r}")
    positive = {"--batch-size": cfg.batch_size, "--part-size": cfg.part_size, "--crop-size": cfg.crop_size,
                "--stride": cfg.stride, "--max-crops-per-image": cfg.max_crops_per_image, "--limit": cfg.limit,
                "--attention-crops": cfg.attention_crops, "--num-heads": cfg.num_heads, "--max-pixels": cfg.max_pixels}
    problems += [f"{k} must be a positive integer, got {v}" for k, v in positive.items() if v is not None and v < 1]
    non_negative = {"--workers": cfg.workers, "--min-nucleus-area": cfg.min_nucleus_area,
                    "--save-attention": cfg.save_attention}
    problems += [f"{k} must be 0 or more, got {v}" for k, v in non_negative.items() if v < 0]
    if cfg.final_norm_eps is not None and not cfg.final_norm_eps > 0:
        problems.append(f"--final-norm-eps must be positive, got {cfg.final_norm_eps}")
    try:
        groups = cfg.feature_groups
    except ValueError as exc:
        problems.append(str(exc))
        groups = ("learned",)
    if "learned" in groups and not cfg.model:
        problems.append("--model is required for learned features (a checkpoint DIR, official:PATH, PATH.ckpt or "
                        "random:PRESET); --features cellprofiler needs none")
    if cfg.nuclei_channel is not None and cfg.crops != "nuclei" and "cellprofiler" not in groups:
        problems.append(f"--nuclei-channel applies to --crops nuclei, not to --crops {cfg.crops}")
    if cfg.cell_channel is not None and "cellprofiler" not in groups:
        problems.append("--cell-channel applies to --features cellprofiler")
    if cfg.stride is not None and cfg.crops != "grid":
        problems.append(f"--stride applies to --crops grid, not to --crops {cfg.crops}")
    if cfg.pattern is not None and "{channel" not in cfg.pattern:
        problems.append(f"--pattern {cfg.pattern!r} must contain a {{channel}} field")
    if not Path(cfg.input).exists():
        problems.append(f"input {cfg.input} not found")
    out = Path(cfg.out)
    if out.is_dir():
        problems.append(f"--out {cfg.out} is a folder; give a file name such as {out / 'embeddings.parquet'}")
    elif out.parent != Path() and out.parent.exists() and not out.parent.is_dir():
        problems.append(f"--out {cfg.out}: {out.parent} is not a folder")
    if cfg.h5ad:
        import importlib.util

        if importlib.util.find_spec("anndata") is None:  # say so now, not after hours of embedding
            problems.append("--h5ad needs the optional dependency anndata: pip install 'chadavit[anndata]' "
                            "(or pip install anndata)")
    if problems:
        raise EmbedError("; ".join(problems))
    from chadavit.atomic import check_writable
    from chadavit.device import check_device

    check_device(cfg.device)  # a misspelt device or a missing GPU: now, not after the model is loaded
    for what, path in (("--out", cfg.out), ("--h5ad", cfg.h5ad)):
        if path:
            check_writable(path, what)  # a read-only or full folder: now, not after every image is embedded
