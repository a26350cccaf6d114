"""``vlic compress | decompress | info`` — the codec on the command line (CompressAI-like).

Expected failures (unreadable image, missing checkpoint, empty/foreign/truncated/corrupted/forged .vlic, a file made
by a different model, an image over the pixel limit, an output that cannot be written or is the input) end as one
line on stderr and exit code 2, through :class:`vlic.console.UserError`. Outputs are checked *before* the expensive work
and written atomically (:mod:`vlic.files`): a failure never leaves a cut file behind or destroys an input.
"""

from __future__ import annotations

import time
from pathlib import Path

from vlic.console import UserError, print_json

DEFAULT_MODELS = Path("models")
DEFAULT_RATE = "high"
DEFAULT_MAX_PIXELS = 89_478_485  # = vlic.codec.image_codec.DEFAULT_MAX_PIXELS (kept import-free for a fast --help)


def _model_path(args) -> Path:
    return Path(args.model) if args.model else DEFAULT_MODELS / f"codec_{args.rate}.safetensors"


def _read(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"'{path}' does not exist" if not p.exists() else f"'{path}' is not a file")
    try:
        return p.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read '{path}': {e.strerror or e}") from None


def codec_files(root: Path = DEFAULT_MODELS) -> list[Path]:
    """Every codec file the pipeline writes under ``root``, at any depth (``models/``, ``models/machine/``,
    ``models/replicates/``, …): ``*.safetensors`` except tag tables and resume states."""
    from vlic.codec.tag_conditioning import SUFFIX

    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*.safetensors")
                  if not p.name.endswith(SUFFIX) and not any(part.endswith((".resume", ".staging")) or
                                                             part.startswith(".") for part in p.relative_to(root).parts))


def _find_model(fingerprint: bytes, name: str) -> Path:
    """The checkpoint under models/ (any depth) whose fingerprint matches the file's."""
    from vlic.codec.families import read_fingerprint

    candidates = codec_files()
    for c in candidates:
        if read_fingerprint(c) == fingerprint.hex():
            return c
    looked = (f"{len(candidates)} checked in {', '.join(sorted({f'{c.parent}/' for c in candidates}))}" if candidates
              else f"no codec file found under {DEFAULT_MODELS}/")
    raise UserError(f"'{name}' was made by model {fingerprint.hex()}; no checkpoint under '{DEFAULT_MODELS}/' has that "
                    f"fingerprint ({looked}) — pass --model CKPT")


def _tag_table(model_path: Path):
    """The tag table beside a tag-guided codec (:func:`vlic.codec.tag_conditioning.table_path`), or None."""
    from vlic.codec.tag_conditioning import TagEmbedding, table_path

    path = table_path(model_path)
    if not path.is_file():
        return None
    try:
        return TagEmbedding.load(path)
    except Exception as e:   # a damaged sidecar: one line, naming it
        raise UserError(f"cannot read the tag table '{path}': {e}") from None


def _load_codec(path: Path):
    from vlic.codec.families import CodecLoadError, load_codec  # either family: laptop codec or FlowMo

    try:
        return load_codec(path)
    except (CodecLoadError, ValueError) as e:
        raise UserError(str(e)) from None


def _check_output(args) -> Path:
    from vlic.files import DestinationError, check_destination

    try:
        return check_destination(args.output, (args.input,))
    except DestinationError as e:
        raise UserError(str(e)) from None


def _write(path: Path, data: bytes) -> None:
    from vlic.files import atomic_write_bytes

    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise UserError(f"cannot write output '{path}': {e.strerror or e} (nothing was written)") from None


def _max_pixels(args) -> int | None:
    if args.max_pixels < 0:
        raise UserError(f"--max-pixels must be ≥ 0 (0 = no limit), got {args.max_pixels}")
    return args.max_pixels or None


def _tags(args, pixels, UserError) -> list[int] | None:
    """``--tags``: absent → untagged file; ``auto`` → EfficientNet-Lite0's classes above ``--tag-threshold`` (at
    most ``--max-tags``); ``none`` → a tagged file with no tag; else comma-separated ImageNet class indices."""
    spec = getattr(args, "tags", None)
    if spec is None:
        return None
    if spec == "auto":   # the tagger sits in a higher layer (vlic.perception, wired in by vlic.cli)
        if getattr(args, "tagger", None) is None:
            raise UserError("--tags auto: no tagger is wired into this command line (use `vlic compress`)")
        return args.tagger(pixels, args.tag_threshold, args.max_tags)
    if spec in ("none", ""):
        return []
    try:
        return [int(t) for t in spec.split(",")]
    except ValueError:
        raise UserError(f"--tags '{spec}': expected 'auto', 'none' or comma-separated class indices") from None


def _compress(args) -> int:
    from vlic.images import ImageReadError, load_rgb

    t0 = time.perf_counter()
    out = _check_output(args)
    limit = _max_pixels(args)
    try:
        loaded = load_rgb(args.input, max_pixels=limit)
    except ImageReadError as e:
        raise UserError(str(e)) from None
    model_path = _model_path(args)
    codec = _load_codec(model_path)
    if getattr(args, "tags", None) is None and _tag_table(model_path) is not None:
        args.tags = "auto"   # a tag-guided codec codes the image's tags unless told otherwise (--tags none)
    tags = _tags(args, loaded.pixels, UserError)
    extra = {} if tags is None else {"tags": tags}
    try:
        result = codec.compress(loaded.pixels, mode=loaded.source_mode, tile=args.tile, overlap=args.overlap,
                                max_pixels=limit, **extra)
    except TypeError as e:
        if tags is not None and "tags" in str(e):
            raise UserError(f"'{args.input}': this model's codec does not code tags (--tags)") from None
        raise
    except ValueError as e:
        raise UserError(f"'{args.input}': {e}") from None
    _write(out, result.data)
    stats = dict(result.stats(), seconds=round(time.perf_counter() - t0, 3), input=str(args.input), output=str(out),
                 model=str(codec.checkpoint.path), fingerprint=codec.fingerprint.hex(),
                 conversions=list(loaded.conversions), tags=tags)
    if args.json:
        print_json(stats)
    else:
        note = f" (input converted: {'; '.join(loaded.conversions)})" if loaded.conversions else ""
        tagged = "" if tags is None else f", tags {','.join(map(str, tags)) or 'none'}"
        print(f"{out}: {result.bytes} bytes, {result.bpp:.4f} bpp{tagged}, {stats['seconds']:.2f} s{note}")
    return 0


SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit integer


def _decompress(args) -> int:
    import math

    from vlic.codec.bitstream import ContainerError, parse
    from vlic.codec.image_codec import DecodeError
    from vlic.images import png_encode

    t0 = time.perf_counter()
    if args.steps is not None and not 1 <= args.steps <= 10_000:
        raise UserError(f"--steps must be between 1 and 10000, got {args.steps}")
    if not 0 <= args.seed <= SEED_MAX:
        raise UserError(f"--seed must be between 0 and 2**63 - 1, got {args.seed}")
    if args.cfg is not None and not math.isfinite(args.cfg):
        raise UserError(f"--cfg must be a finite number, got {args.cfg}")
    limit = _max_pixels(args)
    data = _read(args.input)
    out = _check_output(args)
    try:
        container = parse(data, args.input)
    except ContainerError as e:
        raise UserError(str(e)) from None
    path = Path(args.model) if args.model else _find_model(container.fingerprint, args.input)
    codec = _load_codec(path)
    steps = args.steps if args.steps is not None else getattr(codec, "default_steps", 1)
    table = _tag_table(path) if container.tags is not None else None
    guided = table is not None and bool(container.tags)   # an empty tag list conditions on nothing
    if guided:   # the file's tags condition the decoder, with CFG over the tags at the table's scale
        cfg = args.cfg if args.cfg is not None else table.cfg_scale
    else:
        cfg = args.cfg if args.cfg is not None else getattr(codec, "default_cfg", 1.0)
    try:
        if guided:
            from vlic.codec.tag_conditioning import decode

            pixels = decode(codec, container, table, steps=steps, seed=args.seed, cfg_scale=cfg, name=args.input,
                            max_pixels=limit, tile=None if args.untiled else "file")
        else:
            pixels = codec.decompress(container, steps=steps, seed=args.seed, cfg_scale=cfg,
                                      tile=None if args.untiled else "file", name=args.input, max_pixels=limit)
    except DecodeError as e:
        raise UserError(str(e)) from None
    _write(out, png_encode(pixels))
    tags = None if container.tags is None else list(container.tags)
    tag_note = ("no tags in the file" if tags is None else "the file's tag list is empty" if not tags else
                f"tags {','.join(map(str, tags))} used, CFG {cfg:g} over them" if guided else
                "tags in the file not used: this model has no tag table")
    if args.json:
        print_json({"output": args.output, "width": container.width, "height": container.height, "steps": steps,
                    "seed": args.seed, "seconds": round(time.perf_counter() - t0, 3), "model": str(path),
                    "tags": tags, "tags_used": guided, "tag_cfg_scale": cfg if guided else None})
    else:
        note = f" (source was {container.mode}; decoded as RGB)" if container.mode != "RGB" else ""
        tagged = "" if tags is None else f"; {tag_note}"
        print(f"{args.output}: {container.width}×{container.height}, {steps} steps, seed {args.seed}{tagged}{note}")
    return 0


def _info(args) -> int:
    from vlic.codec.bitstream import OVERHEAD_BYTES, ContainerError, parse

    data = _read(args.input)
    try:
        c = parse(data, args.input)
    except ContainerError as e:
        raise UserError(str(e)) from None
    info = {"file": args.input, "version": c.version, "fingerprint": c.fingerprint.hex(), "width": c.width,
            "height": c.height, "source_mode": c.mode, "downsample": c.downsample, "prior_block": c.prior_block,
            "tile": c.tile, "overlap": c.overlap, "bytes": len(data), "payload_bytes": len(c.payload),
            "header_bytes": OVERHEAD_BYTES, "bpp": round(8 * len(data) / (c.width * c.height), 6)}
    if c.tags is not None:
        namer = getattr(args, "tag_namer", None)
        info |= {"tags": list(c.tags), **({"tag_names": namer(c.tags)} if namer else {}), "tag_bits": c.tag_bits,
                 "tag_bytes": c.tag_bytes, "tag_bpp": round(8 * c.tag_bytes / (c.width * c.height), 6)}
    if args.json:
        print_json(info)
    else:
        for k, v in info.items():
            print(f"{k:>13}: {v}")
    return 0


def register(sub, tagger=None, tag_namer=None) -> None:
    """Add ``compress``, ``decompress`` and ``info`` to the ``vlic`` parser's subcommands. ``tagger(pixels,
    threshold, most) → class indices`` serves ``--tags auto`` and ``tag_namer(indices) → names`` lets ``info`` name a
    file's tags; both come from a higher layer (:mod:`vlic.perception.tags` via ``vlic.cli``)."""
    p = sub.add_parser("compress", help="compress an image to a .vlic file")
    p.add_argument("input", metavar="IN.png")
    p.add_argument("output", metavar="OUT.vlic")
    p.add_argument("--model", metavar="CKPT", help="codec checkpoint (default: models/codec_<rate>.safetensors)")
    p.add_argument("--rate", default=DEFAULT_RATE, help=f"rate point trained by the pipeline (default: {DEFAULT_RATE})")
    p.add_argument("--tile", type=int, default=None, help="decoder tile in pixels recorded in the file (default: the model's)")
    p.add_argument("--overlap", type=int, default=8, help="MultiDiffusion overlap margin in pixels (default: 8)")
    p.add_argument("--json", action="store_true", help="print one JSON line (bytes, bpp, ideal_bits, seconds, …)")
    p.add_argument("--tags", default=None, metavar="auto|none|I,J,…",
                   help="code image-level tags in the file (format version 3): 'auto' = EfficientNet-Lite0's "
                        "ImageNet classes above --tag-threshold, 'none' = an empty tag list, or class indices "
                        "(default: 'auto' for a tag-guided codec — one with a <codec>.tags.safetensors table beside "
                        "it, as chapter 06 writes — else no tags, format version 2)")
    p.add_argument("--tag-threshold", type=float, default=0.1, metavar="P", help="--tags auto: class probability above which a class is a tag (default: 0.1)")
    p.add_argument("--max-tags", type=int, default=5, metavar="K", help="--tags auto: at most K tags (default: 5)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse images with more pixels (default: {DEFAULT_MAX_PIXELS:,}, Pillow's; 0 = no limit)")
    p.set_defaults(func=_compress, tagger=tagger)

    p = sub.add_parser("decompress", help="decode a .vlic file to PNG (same seed, same output)")
    p.add_argument("input", metavar="IN.vlic")
    p.add_argument("output", metavar="OUT.png")
    p.add_argument("--model", metavar="CKPT", help="codec checkpoint (default: the one under models/, at any depth, that "
                                                   "made the file; a tag table beside it conditions on the file's tags)")
    p.add_argument("--steps", type=int, default=None, help="Euler sampling steps (default: the model's — codec.sample_steps for the laptop codec; FlowMo: its config's sample_steps, 25)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    p.add_argument("--cfg", type=float, default=None, help="classifier-free guidance scale (default: 1 = off; a tag-guided codec: its tag table's scale, over the tags; FlowMo: its config's cfg, 1.5, inside its CFG interval)")
    p.add_argument("--untiled", action="store_true", help="run the flow network on the whole image at once")
    p.add_argument("--json", action="store_true")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse files claiming more pixels (default: {DEFAULT_MAX_PIXELS:,}; 0 = no limit)")
    p.set_defaults(func=_decompress)

    p = sub.add_parser("info", help="print a .vlic file's header")
    p.add_argument("input", metavar="IN.vlic")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_info, tag_namer=tag_namer)
