"""``chadavit embed``: one feature vector per crop (cell or tile) or per image, for users' own images."""

from __future__ import annotations

import argparse
import sys

from chadavit.cli.options import add_model_options, add_output_options, add_runtime_options

EPILOG = r"""
examples:
  chadavit embed plate1/ --pattern "{well}_{site}_{channel}.tif" --channel-map w1=DNA,w2=Actin \
      --model checkpoints/chada_vit --out plate1.parquet
  chadavit embed images.csv --channels DNA,Actin,Tubulin --crops nuclei --nuclei-channel DNA --crop-size 96 \
      --model official:ChAdaViT.ckpt --out cells.parquet --h5ad cells.h5ad
  chadavit embed plate.ome.zarr --model random:chada_vit_moyen --crops full --out baseline.parquet
  chadavit embed screen.csv --model checkpoints/chada_vit --shard 3/16 --out shards/3.parquet   # job array
  chadavit embed merge shards/*.parquet --out screen.parquet      # check every shard, write one table
  torchrun --nproc-per-node 4 -m chadavit embed screen.csv --model checkpoints/chada_vit --out screen.parquet

A folder literally named "merge" is embedded by writing it as ./merge.

--model: DIR (our checkpoint) | RUN_DIR or RUN_DIR/checkpoint.pt (a chadavit pretrain run)
         | hf:OWNER/NAME[@REVISION] (Hugging Face Hub, e.g. hf:nicoboou/chadavit16-moyen)
         | official:PATH[:teacher][,num_heads=N,final_norm_eps=E] | PATH.ckpt|.safetensors (official)
         | random:PRESET (random initialisation, a baseline only)
Microscope files (.nd2, .czi, .lif, multi-scene .ome.tif) need: pip install 'chadavit[formats]'.
An interrupted run resumes where it stopped when rerun with the same options (state in OUT.parts/).
Exit status: 0 all images embedded, 1 some images failed (see OUT.errors.csv), 2 bad options or input.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "embed", help="embed your own images (folders, CSV, OME-Zarr, datasets) into Parquet/AnnData",
        description="Embed microscopy images with any channel set: one feature row per crop (or per image).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="+", metavar="INPUT",
                   help="folder of images, image file, CSV listing, OME-Zarr image/plate, or chadavit dataset; "
                   "(to join the outputs of --shard runs: chadavit embed merge SHARD.parquet ... --out OUT)")
    add_model_options(p, short=True, help="checkpoint DIR, pretraining run DIR, hf:OWNER/NAME[@REV], "
                      "official:PATH[:teacher], PATH.ckpt, or random:PRESET (required to embed)")
    g = p.add_argument_group("input")
    g.add_argument("--input-format", default="auto", choices=("auto", "pattern", "files", "csv", "ome-zarr", "dataset"))
    g.add_argument("--pattern", help='group one-file-per-channel images, e.g. "{well}_{site}_{channel}.tif"; '
                   r'typed fields "{well:[A-P]\d\d}"; ignored fields "{_uuid}"')
    g.add_argument("--no-recursive", dest="recursive", action="store_false", help="do not look into sub-folders")
    g.add_argument("--channels", help="channels to embed, in order, after --channel-map (e.g. DNA,Actin)")
    g.add_argument("--channel-map", help="rename file channel names to model names, e.g. d0=DNA,d1=PH3")
    g.add_argument("--strict-channels", action="store_true",
                   help="fail images whose channel names the model's vocabulary does not know")
    g.add_argument("--normalize", choices=("percentile", "dtype_range", "none"),
                   help="override the model's pixel normalisation")
    g.add_argument("--limit", type=int, help="embed only the first N images (a quick look)")
    g.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse images over N values (channels x height x width; default 268435456), read from "
                        "the file's header before decoding")
    g = p.add_argument_group("features")
    g.add_argument("--features", default="learned",
                   help="comma-separated: learned (= cls,meanpatch,per_channel from the model: cls_<j>, meanpatch_<j>, "
                        "chan_<channel>_<j>, the mean patch token of each channel), or single blocks cls, meanpatch, "
                        "per_channel; cellprofiler (cp_ CellProfiler measurements of each crop's cell, from "
                        "cp_measure; no model needed). Default learned; learned,cellprofiler writes one table")
    g.add_argument("--cell-channel", help="cell-body channel cells are grown over from the nuclei (cellprofiler; "
                   "default: a channel named like CellBody, Actin, ...; none: nuclei only)")
    g = p.add_argument_group("crops")
    g.add_argument("--crops", default="grid", choices=("grid", "nuclei", "full"),
                   help="grid tiles (default), windows centred on nuclei, or the full field resized")
    g.add_argument("--crop-size", type=int, help="crop size in pixels (default: the scale the model was trained "
                   "at, where its config records it, else the model input size; crops are resized to the input)")
    g.add_argument("--stride", type=int, help="grid step in pixels (default: crop size, no overlap)")
    g.add_argument("--nuclei-channel", help="channel to find nuclei in (default: DNA/DAPI/Hoechst if present)")
    g.add_argument("--min-nucleus-area", type=int, default=30, help="smallest nucleus kept, in pixels (default 30)")
    g.add_argument("--max-crops-per-image", type=int, help="keep at most N crops per image (evenly spread)")
    g.add_argument("--per-image", action="store_true", help="one row per image: features averaged over its crops")
    g = p.add_argument_group("output")
    add_output_options(g, short=True, required=True, help="output Parquet file (e.g. emb.parquet)",
                       overwrite="discard a previous run or output and start again")
    g.add_argument("--h5ad", help="also write AnnData (needs anndata): X = CLS, obsm X_cls / X_meanpatch / "
                   "X_chan_<name>")
    g.add_argument("--save-attention", type=int, default=0, metavar="N",
                   help="write per-channel attention PNGs for the first N images")
    g.add_argument("--attention-images", help="comma-separated image ids to write attention PNGs for")
    g.add_argument("--attention-crops", type=int, default=4, help="crops per chosen image with attention PNGs")
    g.add_argument("--keep-parts", action="store_true", help="keep OUT.parts/ after a successful run")
    g = p.add_argument_group("execution")
    add_runtime_options(g, "embed")
    g.add_argument("--batch-size", type=int, default=32, help="crops per forward pass (default 32)")
    g.add_argument("--workers", type=int, default=2, help="reader threads (default 2; 0 reads in the main thread)")
    g.add_argument("--part-size", type=int, default=64, help="images per resumable part file (default 64)")
    g.add_argument("--devices", help="one process per device, e.g. cuda:0,cuda:1 (as torchrun "
                   "--nproc-per-node 2): shards embedded side by side, then merged into --out")
    g.add_argument("--shard", metavar="I/N", help="embed only shard I of N (0-based; images by a hash of their id, "
                   "as idr build): for job arrays; join the outputs with: chadavit embed merge")
    g.add_argument("--seed", type=int, default=0, help="seed for random:PRESET models")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chadavit.embed import EmbedConfig, run_embed
    from chadavit.embed.config import validate_options
    from chadavit.errors import ChadavitError

    if len(args.input) > 1:
        raise ChadavitError(f"chadavit embed takes one INPUT, got {len(args.input)}: {' '.join(args.input)} "
                            "(to join shard outputs: chadavit embed merge SHARD.parquet ... --out OUT.parquet)")
    from chadavit.sharding import parse_shard

    try:
        parse_shard(args.shard)
    except ValueError as exc:
        raise ChadavitError(str(exc)) from exc
    cfg = EmbedConfig(
        input=args.input[0], out=args.out, model=args.model, input_format=args.input_format, pattern=args.pattern,
        recursive=args.recursive, channels=args.channels, channel_map=args.channel_map,
        strict_channels=args.strict_channels, crops=args.crops, crop_size=args.crop_size, stride=args.stride,
        nuclei_channel=args.nuclei_channel, min_nucleus_area=args.min_nucleus_area,
        max_crops_per_image=args.max_crops_per_image, per_image=args.per_image,
        normalize=args.normalize,
        num_heads=args.num_heads, final_norm_eps=args.final_norm_eps, seed=args.seed, batch_size=args.batch_size,
        workers=args.workers,
        device=args.device, precision=args.precision, part_size=args.part_size, h5ad=args.h5ad,
        save_attention=args.save_attention,
        attention_images=[s.strip() for s in args.attention_images.split(",")] if args.attention_images else None,
        attention_crops=args.attention_crops, overwrite=args.overwrite, keep_parts=args.keep_parts,
        limit=args.limit, progress=args.progress, shard=args.shard, max_pixels=args.max_pixels,
        features=args.features, cell_channel=args.cell_channel,
    )
    validate_options(cfg)  # the options' one check (e.g. --model for learned features), before any process starts
    from chadavit.embed.distributed import torchrun_group

    group = torchrun_group()
    if args.devices and group is None:
        from chadavit.cli.embed_parallel import run_devices

        return run_devices(cfg, args.devices)
    if group is not None:
        from chadavit.cli.embed_parallel import run_torchrun

        return run_torchrun(cfg, group)
    from chadavit.signals import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            res = run_embed(cfg)
    except KeyboardInterrupt:
        parts = cfg.out if cfg.out.endswith(".parquet") else cfg.out + ".parquet"
        print(f"chadavit embed: interrupted; finished images are saved in {parts}.parts/ "
              "(rerun the same command to resume)", file=sys.stderr)
        return 130
    if res.out is None:
        print(f"no rows written ({res.n_images} image(s): {res.n_failed} failed, none embedded); no output file",
              file=sys.stderr)
    else:
        print(f"wrote {res.n_rows} rows ({res.n_computed} images embedded now, {res.n_done_before} from a previous "
              f"run, {res.n_crops} crops) to {res.out} in {res.seconds:.1f} s ({res.images_per_second:.2f} images/s)")
    if res.h5ad_path:
        print(f"wrote {res.h5ad_path}")
    if res.attention_dir:
        print(f"attention maps in {res.attention_dir}")
    warnings = [e for e in res.errors if e["level"] != "error"]
    no_crops = sum(e["error"] == "NoCrops" for e in warnings)
    if no_crops:
        print(f"{no_crops} image(s) gave no crops (listed in {res.errors_path})")
    if len(warnings) > no_crops:
        print(f"{len(warnings) - no_crops} image(s) embedded with a warning, e.g. {warnings[-1]['message']} "
              f"(all listed in {res.errors_path})", file=sys.stderr)
    if res.n_failed or res.out is None:
        print(f"{res.n_failed} image(s) failed; see {res.errors_path}. Fix them and rerun the same command to embed "
              "only those.", file=sys.stderr)
        return 1
    return 0
