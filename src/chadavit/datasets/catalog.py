"""The paper's six evaluation datasets: where each comes from, its licence and citation, and its folder name
under ``${data_root}`` (what ``chadavit eval --suite paper`` reads)."""

from __future__ import annotations

from dataclasses import dataclass

from chadavit.errors import ChadavitError


class UnknownDatasetError(ChadavitError, KeyError):
    """The dataset name is not in the catalogue."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    source: str
    size: str
    licence: str
    citation: str
    fetch: str  # "automatic", "partly automatic" or "manual"


BBBC021_BASE = "https://data.broadinstitute.org/bbbc/BBBC021/"
BBBC048_URL = "https://data.broadinstitute.org/bbbc/BBBC048/BBBC048v1.zip"
ZENODO_MEDMNIST = "https://zenodo.org/records/10519652/files/"
DEEPLOC_URL = "http://spidey.ccbr.utoronto.ca/~okraus/DeepLoc_full_datasets.zip"
BRAY_METADATA = ("https://raw.githubusercontent.com/broadinstitute/2015_Bray_GigaScience-data/"
                 "ad555944caed7cd9108748d16d33c386d5b5c406/metadata/platemaps/CDRP/")
BRAY_MOA = ("https://raw.githubusercontent.com/broadinstitute/DeepProfilerExperiments/"
            "bf5eaa05f9e772ca4abc7b4629b10c5bedc5dba1/cdrp/data/CDRP_MOA_MATCHES_official.csv")
BRAY_CIL = "https://cildata.crbs.ucsd.edu/broad_data/plate_{plate}/{plate}-{channel}.zip"

CATALOG: dict[str, DatasetInfo] = {d.name: d for d in (
    DatasetInfo("bbbc021", "BBBC021 v1, MCF-7 compound profiling (MoA, Actin reconstruction)",
                BBBC021_BASE + " (BBBC021_v1_image.csv, BBBC021_v1_moa.csv, 55 per-plate zips)",
                "55 zips of about 750 MB each (third-party figure); 39,600 TIFFs",
                "not verified (BBBC page: images copyright AstraZeneca per a third-party quote)",
                "Caie et al., Mol Cancer Ther 2010, doi:10.1158/1535-7163.MCT-09-1148; Ljosa et al., Nat Methods "
                "2012, doi:10.1038/nmeth.2083", "automatic"),
    DatasetInfo("bbbc048", "BBBC048 Jurkat cell cycle (7 stages, ImageStream Ch3/Ch4/Ch6)", BBBC048_URL,
                "32,266 cells x 3 JPEGs of 66x66 px (archive size not published)", "not found (code BSD-3)",
                "Eulenberg et al., Nat Commun 8:463 (2017), doi:10.1038/s41467-017-00623-3; Ljosa et al. 2012",
                "automatic"),
    DatasetInfo("bloodmnist", "BloodMNIST (MedMNIST v2), 8 blood-cell classes, RGB",
                ZENODO_MEDMNIST + "bloodmnist[_64|_128|_224].npz (Zenodo 10519652, MD5 published)",
                "17,092 images (train 11,959 / val 1,712 / test 3,421) per size", "CC BY 4.0",
                "Yang et al., Sci Data 10:41 (2023); Acevedo et al., Data in Brief 2020", "automatic"),
    DatasetInfo("cyclops", "CYCLoPs yeast protein localisation (17 classes, GFP + RFP)",
                DEEPLOC_URL + " (DeepLoc Chong sets, unpacked by Lu et al.'s script)",
                "28,166 cells of 2x64x64 in the ChAda-ViT splits", "not found (DeepLoc code BSD-3)",
                "Koh et al., G3 5:1223 (2015), doi:10.1534/g3.115.017830; Kraus et al., Mol Syst Biol 2017",
                "manual"),
    DatasetInfo("nfkb", "NF-kB nuclear translocation, HCC1143 + TNF-alpha (regression of the ratio)",
                "ChAda-ViT target CSVs (packaged); images: Phenexplain, Zenodo 8287453 (renamed, see docs)",
                "10,571 RGB PNG crops of 256x256", "CSVs Apache-2.0; images reportedly CC BY 4.0 (unverified)",
                "Lamiable et al., Nat Commun 14:6386 (2023), doi:10.1038/s41467-023-42124-6; Bourriez et al. 2024",
                "manual (targets automatic)"),
    DatasetInfo("bray", "Bray et al. 2017 Cell Painting, 30,616 compounds in U2OS (5 channels)",
                "Cell Image Library zips per plate and channel; Cell Painting Gallery cpg0012; IDR idr0016",
                "406 plates, 4.5 M TIFFs (3.1 TB in the Cell Painting Gallery)", "CC0 1.0",
                "Bray et al., GigaScience 6:giw014 (2017), doi:10.1093/gigascience/giw014; Wawer et al., PNAS 2014",
                "partly automatic (--subset PLATES)"),
)}


def get(name: str) -> DatasetInfo:
    if name not in CATALOG:
        raise UnknownDatasetError(f"unknown dataset {name!r}; choose one of {', '.join(CATALOG)}")
    return CATALOG[name]
