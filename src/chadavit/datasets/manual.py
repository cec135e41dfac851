"""The manual steps printed where a dataset (or part of one) cannot be fetched automatically."""

from __future__ import annotations

from chadavit.datasets.catalog import BRAY_CIL, DEEPLOC_URL

CYCLOPS = f"""\
CYCLoPs cannot be fetched automatically: the images ChAda-ViT used are DeepLoc's Chong et al. sets unpacked by a
third-party script (no archive of the unpacked crops is published). To build {{target}}:
  1. wget {DEEPLOC_URL}
     unzip DeepLoc_full_datasets.zip        # -> DeepLoc_full_datasets/datasets/Chong_{{train,valid,test}}_set.hdf5
  2. git clone https://github.com/alexxijielu/paired_cell_inpainting
     run yeast_model/preprocessing/unpackage_test_set.py on those three files, in its order test, valid, train
     (it writes images/<CLASS>/<CLASS>_<id>_gfp.tif and _rfp.tif with a running id; needs h5py, numpy, PIL)
  3. mv images/* {{target}}/            # class folders directly in {{target}} (or keep {{target}}/images/)
  4. chadavit datasets check cyclops {{target}}
The official ChAda-ViT split (packaged) is matched on (class, id); cells in neither split file are left out."""

NFKB = """\
The NF-kB target CSVs (cat,image_name,ratio; the official ChAda-ViT files) were written to
  {target}/analyse_256x256/single_ratio_images_{train,val}.csv
The cell images are not published under these names (the Phenexplain release, Zenodo record 8287453,
translocation_256.zip, holds the same cells renamed and without ratios). If you have the original crops
(from the authors):
  1. put each crop at {target}/256x256/<cat>/<image_name>   (256x256 RGB PNG, green = NF-kB)
  2. chadavit datasets check nfkb {target}"""

BRAY = f"""\
Bray et al. images: give plates to fetch from the Cell Image Library, e.g.
  chadavit datasets fetch bray --subset 24277,24278
(5 zips per plate, {BRAY_CIL}), or get them by hand from another mirror:
  * Cell Painting Gallery (CC0):  aws s3 cp --no-sign-request --recursive \\
      s3://cellpainting-gallery/cpg0012-wawer-bioactivecompoundprofiling/broad/images/CDRP/images/<plate>/ <dir>
  * IDR idr0016 (screenA, 413 plates, CC0), automatically through the project's IDR client:
      chadavit datasets fetch bray --source idr --subset 24277 [--wells A01,B02]
then place each site's five TIFFs as
  {{target}}/images/<plate>-<Channel>/cdp2bioactives_<well>_s<site>_w<N><UUID>.tif
  (Channel: Hoechst=w1 ERSyto=w2 ERSytoBleed=w3 Ph_golgi=w4 Mito=w5)
and check with: chadavit datasets check bray {{target}}
The plate maps and MoA matches are already in {{target}}/metadata/."""

STEPS = {"cyclops": CYCLOPS, "nfkb": NFKB, "bray": BRAY}


def manual_steps(name: str, target: str) -> str:
    return STEPS[name].replace("{target}", target)
