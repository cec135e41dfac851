"""Plate metadata (plate, well, site) from pattern fields and from common plate-reader file names."""

from __future__ import annotations

import re

_FIELD_NAMES = {"plate": "Plate", "barcode": "Plate", "well": "Well", "site": "Site", "field": "Site", "fov": "Site",
                "f": "Site", "s": "Site", "row": "Row", "col": "Column", "column": "Column", "folder": "Folder"}

_NAME_CONVENTIONS = [
    # Cellomics / MetaXpress export: ..._D03f00d1
    re.compile(r"(?:^|[_\-\s])(?P<well>[A-Pa-p]\d{2})f(?P<site>\d{1,3})d\d"),
    # ImageXpress: ..._B02_s3_w1...
    re.compile(r"(?:^|[_\-\s])(?P<well>[A-Pa-p]\d{2})_s(?P<site>\d+)"),
    # Operetta / Opera Phenix: r02c05f03p01-ch1sk1fk1fl1
    re.compile(r"r(?P<row>\d{2})c(?P<col>\d{2})f(?P<site>\d{2})"),
    # row-column with a separator: 01-A-01-00 (e.g. Vitra), A-01
    re.compile(r"(?:^|[_\-\s])(?P<row>[A-Pa-p])-(?P<col>\d{1,2})(?=$|[_\-\s.])"),
    # a bare well token: ..._C20_w2...
    re.compile(r"(?:^|[_\-\s])(?P<well>[A-Pa-p]\d{2})(?=$|[_\-\s.])"),
]


def _norm_well(well: str) -> str:
    m = re.fullmatch(r"([A-Za-z]+)0*(\d+)", well.strip())
    return f"{m.group(1).upper()}{int(m.group(2)):02d}" if m else well


def _norm_site(site: str) -> str:
    return str(int(site)) if site.isdigit() else site


def parse_name_metadata(name: str) -> dict[str, str]:
    """Well and site from common plate-reader file naming conventions (empty when none matches)."""
    for rx in _NAME_CONVENTIONS:
        m = rx.search(name)
        if not m:
            continue
        g = m.groupdict()
        out: dict[str, str] = {}
        if g.get("well"):
            out["Well"] = _norm_well(g["well"])
        elif g.get("row") and g.get("col"):
            row = g["row"]
            row = chr(ord("A") + int(row) - 1) if row.isdigit() else row.upper()
            out["Well"] = f"{row}{int(g['col']):02d}"
        if g.get("site"):
            out["Site"] = _norm_site(g["site"])
        return out
    return {}


def fields_to_metadata(fields: dict[str, str], name_for_guess: str | None = None) -> dict[str, str]:
    """Pattern fields (``{plate}``, ``{well}``, ``{site}``, anything else) to ``Metadata_`` keys."""
    out: dict[str, str] = {}
    for k, v in fields.items():
        key = _FIELD_NAMES.get(k.lower(), k[:1].upper() + k[1:])
        out[key] = _norm_well(v) if key == "Well" else _norm_site(v) if key == "Site" else v
    if "Well" not in out and "Row" in out and "Column" in out:
        row = out["Row"]
        row = chr(ord("A") + int(row) - 1) if row.isdigit() else row.upper()
        out["Well"] = f"{row}{int(out['Column']):02d}" if out["Column"].isdigit() else f"{row}{out['Column']}"
    if name_for_guess and "Well" not in out:
        for k, v in parse_name_metadata(name_for_guess).items():
            out.setdefault(k, v)
    return out
