"""A tiny pretraining config for tests (seconds on 2 CPU cores)."""

from __future__ import annotations

from pathlib import Path

from chadavit.pretrain.config import PretrainConfig, load_config

TINY = [
    "data.paths=[]",
    "data.synthetic.channel_sets=[[DNA,protein],[DNA,protein,membrane,ER],[protein]]",
    "data.synthetic.images_per_study=16",
    "data.synthetic.size=32",
    "data.batch_size=8",
    "data.num_workers=0",
    "data.loader_benchmark_steps=0",
    "augment.global_size=32",
    "augment.local_size=16",
    "augment.n_local=2",
    "model.name=chada_vit_nano",
    "model.overrides={embed_dim: 32, depth: 2, num_heads: 2, mlp_dim: 64, img_size: 32, patch_size: 8}",
    "dino.out_dim=128",
    "dino.hidden_dim=64",
    "dino.bottleneck_dim=32",
    "dino.warmup_teacher_temp_epochs=0",
    "dino.teacher_temp=0.04",
    "dino.freeze_last_layer_epochs=0",
    "optim.lr=0.01",
    "optim.warmup_epochs=1",
    "train.epochs=4",
    "train.progress=false",
    "train.threads=1",
    "train.log_every=1",
    "check.enabled=false",
]


def tiny_config(out_dir: Path, *extra: str) -> PretrainConfig:
    return load_config("demo", [*TINY, f"train.out_dir={out_dir}", *extra])
