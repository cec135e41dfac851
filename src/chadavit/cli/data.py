"""`chadavit data import|info`: build and inspect chadavit datasets from folders of image files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chadavit.cli.options import add_output_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="import image folders into chadavit datasets; inspect datasets",
                              description="Build (import) and inspect chadavit datasets (Parquet manifest + Zarr v3).")
    sub = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    imp = sub.add_parser(
        "import", help="import a folder of TIFF/PNG/JPEG files (ND2/CZI/LIF with chadavit[formats])",
        description="Import a folder of images into a chadavit dataset. Either one file per channel grouped by a "
                    "filename --pattern (fields in braces; {channel} names the plane, every other field identifies "
                    "the image), or --multichannel: every file is one image with all its channels. Unreadable files "
                    "are reported and skipped; the command exits with status 1 if any failed.",
        epilog='example: chadavit data import plate1/ --out ds/ --pattern "{well}_{site}_{channel}.tif" '
               "--channel-map w1=DNA,w2=Actin --source plate1")
    imp.add_argument("src", type=Path, help="folder with the image files (searched recursively)")
    add_output_options(imp, type=Path, required=True, help="dataset directory to create or append to")
    mode = imp.add_mutually_exclusive_group(required=True)
    mode.add_argument("--pattern", help='filename pattern with a {channel} field, e.g. "{well}_{site}_{channel}.tif"')
    mode.add_argument("--multichannel", action="store_true", help="one file per image holding all channels")
    imp.add_argument("--channel-map", default="",
                     help="rename channels: a=DNA,b=Actin (file keys in --pattern mode; OME-XML channel names, "
                          "0-based indices or ch0.. in --multichannel mode); mapped channels come first, in map order")
    imp.add_argument("--source", default="", help="value of the manifest's source column (default: the folder name)")
    imp.add_argument("--imaging-method", default="", help="value of the imaging_method column")
    imp.add_argument("--max-pixels", type=int, default=None, metavar="N",
                     help="refuse images over N values (channels x height x width; default 268435456)")
    imp.set_defaults(func=run_import)

    info = sub.add_parser("info", help="summarise a dataset", description="Print a summary of a chadavit dataset.")
    info.add_argument("path", type=Path)
    info.add_argument("--verify", action="store_true", help="re-read every image and check its checksum")
    info.set_defaults(func=run_info)


def run_import(args: argparse.Namespace) -> int:
    from chadavit.embed.channels import parse_channel_map

    cmap = parse_channel_map(args.channel_map)
    if args.max_pixels is not None:
        from chadavit.data.readers import set_max_pixels

        set_max_pixels(args.max_pixels)
    from chadavit.data.importing import import_folder

    added, errors = import_folder(args.src, args.out, args.pattern, args.multichannel, cmap, args.source,
                                  args.imaging_method)
    for e in errors:
        print(f"skipped: {e}", file=sys.stderr)
    from chadavit.data.dataset import open_dataset

    total = len(open_dataset(args.out))
    print(f"imported {added} image(s) into {args.out} ({total} in the dataset); {len(errors)} failed")
    return 1 if errors else 0


def run_info(args: argparse.Namespace) -> int:
    from chadavit.data.importing import dataset_summary

    text, damaged = dataset_summary(args.path, args.verify)
    print(text)
    return 1 if damaged else 0  # 1, as for images that failed: a damaged dataset is not a clean bill
