"""Options and result of one ``chadavit embed`` run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chadavit.sharding import parse_shard

CROP_MODES = ("grid", "nuclei", "full")
# metadata the run itself writes; input metadata with these names is kept as Metadata_Input<Name>
RESERVED_METADATA = frozenset({"ImageId", "ImageIndex", "Channels", "SourceChannels", "Source", "ImageHeight",
                               "ImageWidth", "CropMode", "CropIndex", "CropY0", "CropX0", "CropY1", "CropX1",
                               "NucleusY", "NucleusX", "NucleusArea", "NucleusLabel", "NumCrops"})


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
    shard: str | None = None  # "i/n": embed only the images whose id hashes to i mod n (chadavit.embed.shards)

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
