"""Rebuild ``demo_data/real`` (small crops of real microscopy images) from ``../shared/data``.

Run from the repository root: ``python src/chadavit/demo_data/build_demo_data.py [SHARED_DIR]``.
Crops are 96x96, taken on a grid where the first (usually DNA) channel has signal, in their stored
dtype (uint8 or uint16); see ``README.md`` for sources and licences.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from chadavit.data.dataset import DatasetWriter
from chadavit.data.readers import read_image_file

CROP = 96
CP = "cellprofiler_examples"
# (folder, {channel name: file name}, max crops, source label, imaging method)
SETS = [
    (f"{CP}/ExampleHuman", {"DNA": "AS_09125_050116030001_D03f00d0.tif", "PH3": "AS_09125_050116030001_D03f00d1.tif",
                            "CellBody": "AS_09125_050116030001_D03f00d2.tif"}, 24, "cellprofiler/ExampleHuman",
     "fluorescence (HeLa, Moffat 2006)"),
    *[(f"{CP}/ExampleFly", {"DNA": f"01_{p}_D.TIF", "OrigGreen": f"01_{p}_F.TIF", "OrigRed": f"01_{p}_R.TIF"}, 12,
       "cellprofiler/ExampleFly", "fluorescence (Drosophila cells)") for p in ("POS002", "POS076", "POS218")],
    *[(f"{CP}/ExampleVitraImages", {"DNA": f"Channel 2-{w}-00.tif", "protein": f"Channel 1-{w}-00.tif"}, 16,
       "cellprofiler/ExampleVitraImages", "fluorescence (translocation assay)") for w in ("01-A-01", "12-A-12")],
    *[(f"{CP}/ExampleColocalization", {"stain1": f"0_{k}_N_G.png", "stain2": f"0_{k}_N_R.png"}, 12,
       "cellprofiler/ExampleColocalization", "fluorescence (colocalisation)") for k in (1, 2)],
    (f"{CP}/ExampleSpeckles", {"DNA": "1-162hrhoe2.tif", "gH2AX": "1-162hrh2ax2.tif"}, 24,
     "cellprofiler/ExampleSpeckles", "fluorescence (DNA damage foci)"),
    *[(f"{CP}/ExampleUntangleWorms", {"brightfield": b, "Sytox": s}, 8, "cellprofiler/ExampleUntangleWorms",
       "bright field + fluorescence (C. elegans)") for b, s in (
        ("1649_1109_0003_Amp5-1_B_20070424_C01_w1_10E01AFB-34C4-416E-A9D3-51B90AB53728.tif",
         "1649_1109_0003_Amp5-1_B_20070424_C01_w2_CB2F18CD-EDF0-4BCD-98CF-3A07E5A582FF.tif"),
        ("1649_1109_0003_Amp5-1_B_20070424_C20_w1_0F5A41CB-2646-49E5-9281-F5B1F655B7BC.tif",
         "1649_1109_0003_Amp5-1_B_20070424_C20_w2_5F64C597-735E-435D-B49C-2A07B9D6DFC3.tif"))],
    *[(f"{CP}/ExampleIlluminationCorrection_Transfluor", {"GFP": f"AS_09047_050428030001_O{w:02d}f00d2.TIF"}, 3,
       "cellprofiler/ExampleIlluminationCorrection_Transfluor", "fluorescence (GFP, Transfluor)")
      for w in range(1, 25, 2)],
    ("stardist_dsb2018_nuclei", {"DNA": "img2d.tif"}, 24, "stardist/dsb2018", "fluorescence (nuclei, DSB2018)"),
]


def crops(image: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to ``n`` non-overlapping grid positions, preferring those with the most first-channel signal."""
    _, h, w = image.shape
    pos = [(y, x) for y in range(0, h - CROP + 1, CROP) for x in range(0, w - CROP + 1, CROP)]
    score = [float(image[0, y : y + CROP, x : x + CROP].astype(np.float32).std()) for y, x in pos]
    order = np.argsort(score)[::-1]
    top = [pos[i] for i in order[: max(n, 1) * 2]]
    rng.shuffle(top)
    return top[:n]


def main(shared: Path, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(0)
    with DatasetWriter(out, attrs={"description": "96x96 crops of real microscopy images, see README.md"}) as wr:
        for folder, files, n, source, method in SETS:
            planes = [read_image_file(shared / folder / f)[0] for f in files.values()]
            img = np.stack(planes)
            stem = Path(next(iter(files.values()))).stem.replace(" ", "_")
            for y, x in crops(img, n, rng):
                wr.add(np.ascontiguousarray(img[:, y : y + CROP, x : x + CROP]), f"{stem}_y{y}_x{x}", list(files),
                       source=source, imaging_method=method, origin_file=str(Path(folder) / next(iter(files.values()))),
                       crop_y=y, crop_x=x)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    shared_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else here.parents[3] / "shared" / "data"
    main(shared_dir, here / "real")
