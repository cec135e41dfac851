"""CLS cosine similarity of bf16 to fp32 embeddings, end to end through ``run_embed``, on real and synthetic images.

    python benchmarks/check_bf16_cosine.py [--model random:chada_vit_moyen] [--shared ../shared]

Real images: CellProfiler's ExampleHuman (3 channels, 512 px fields cut into 224 px grid crops) from
``../shared/data/cellprofiler_examples`` when present; synthetic: random uint16 fields. bf16 is forced
(``--precision bf16``); on a CPU without native bf16 it falls back to fp32 and the cosine is 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def cls_matrix(path: Path) -> np.ndarray:
    import pandas as pd

    df = pd.read_parquet(path).sort_values(["Metadata_ImageId", "Metadata_CropIndex"])
    cols = [c for c in df.columns if c.startswith("CLS_") or c.startswith("cls_")]
    return df[cols].to_numpy(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="random:chada_vit_moyen")
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared"))
    ap.add_argument("--images", type=int, default=8, help="synthetic fields")
    args = ap.parse_args()

    from bench_embed import write_fields

    from chadavit.embed import EmbedConfig, load_model, run_embed

    model = load_model(args.model)
    inputs = {}
    human = Path(args.shared) / "data" / "cellprofiler_examples" / "ExampleHuman"
    if human.is_dir():
        inputs["real (CellProfiler ExampleHuman)"] = (human, r"{plate}_{well:[A-P]\d\d}f{site}d{channel}.tif")
    with tempfile.TemporaryDirectory() as tmp:
        syn = Path(tmp) / "synthetic"
        syn.mkdir()
        write_fields(syn, args.images, model.config.img_size, 3)
        inputs["synthetic"] = (syn, "{plate}_{well}_s{site}_{channel}.tif")
        for what, (folder, pattern) in inputs.items():
            feats = {}
            for prec in ("fp32", "bf16"):
                out = Path(tmp) / f"{prec}_{len(feats)}_{abs(hash(what))}.parquet"
                run_embed(EmbedConfig(input=str(folder), out=str(out), model=args.model, pattern=pattern,
                                      precision=prec, progress=False, workers=0), model=model)
                feats[prec] = cls_matrix(out)
            a, b = feats["fp32"], feats["bf16"]
            cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            print(f"{args.model} {what}: {len(cos)} crops, CLS cosine bf16 vs fp32 min {cos.min():.6f}, "
                  f"mean {cos.mean():.6f}", flush=True)


if __name__ == "__main__":
    main()
