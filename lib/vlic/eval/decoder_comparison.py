"""Two decoders, one bitstream: does the post-trained decoder draw better reconstructions of the *same* bits?

For each photo the **base** codec writes a real ``.vlic`` bitstream; its codes (range-decoded from those bytes) are
decoded by every model under comparison with the **same noise seed**, as whole photos (MultiDiffusion tiling, the
codec's own decoding path). Patches at given boxes are then cut from the original and from each reconstruction, so a
judge compares the two decoders on identical bits, identical noise and identical pixels of the original.

:func:`bitstream_rates` measures what each codec's *own* encoder and prior spend on the same photos (real bytes), and
how many latent tokens a post-trained encoder changed — the rate side of "at the same bpp".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vlic.codec.autoencoder import DiffusionCodec
from vlic.codec.image_codec import ImageCodec
from vlic.images import to_pixels
from vlic.codec.sampling import sample
from vlic.data.splits import cut_patches


@dataclass
class PairedPatches:
    """Patches cut from the original and from each model's reconstruction, aligned row by row."""

    original: list[np.ndarray] = field(default_factory=list)
    recon: dict[str, list[np.ndarray]] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)       # photo, box, seed, patch id per patch
    photos: dict = field(default_factory=dict)           # (photo, model, seed) → whole reconstruction
    bpp: dict[str, float] = field(default_factory=dict)  # photo → bpp of the base bitstream

    @property
    def patch_ids(self) -> np.ndarray:
        return np.array([r["patch"] for r in self.rows])


@torch.no_grad()
def decode_codes(model, codes: torch.Tensor, height: int, width: int, steps: int, seed: int,
                 tile: int | None, overlap: int) -> np.ndarray:
    """A file's codes → uint8 photo with ``model``, the codec's decoding path: laptop codes (1, C, h, w) through the
    latent decoder and the tiled flow; FlowMo bits (tiles, code_length, context_dim) through FlowMo's sampler over the
    file's tiles."""
    if not isinstance(model, DiffusionCodec):
        from vlic.codec.flowmo.model import bits_to_code, decoder_condition
        from vlic.codec.flowmo.codec import render_tiles

        return render_tiles(model, decoder_condition(bits_to_code(codes)), height, width, tile, overlap, steps, seed)
    features, mean = model.condition_from_codes(codes)
    x = sample(model, features, mean, steps=steps, seed=seed, tile=tile, overlap=overlap)
    return to_pixels(x[0, :, :height, :width])


@dataclass(frozen=True)
class HeldoutCodes:
    """One photo's codes as the base codec's real bitstream holds them, and the patch boxes to cut after decoding —
    plain arrays, so worker processes can decode them with other models."""

    photo: str
    codes: np.ndarray                 # token indices range-decoded from the bytes: (1, C, h, w), FlowMo (tiles, L, C)
    height: int
    width: int
    tile: int | None
    overlap: int
    boxes: tuple[tuple[int, int], ...]
    bpp: float                        # of the base bitstream


def heldout_codes(base, photos: dict[str, np.ndarray],
                  boxes: dict[str, list[tuple[int, int]]]) -> list[HeldoutCodes]:
    """Compress each photo with ``base`` (a codec of either family, :mod:`vlic.codec.families`) into a real bitstream
    and read its codes back from the bytes."""
    from vlic.codec import bitstream

    out = []
    for photo, px in photos.items():
        z = base.compress(px)
        c = bitstream.parse(z.data, photo)
        codes = base.decode_codes(c, photo)
        out.append(HeldoutCodes(photo, codes.numpy(), c.height, c.width, c.tile, c.overlap,
                                tuple(tuple(b) for b in boxes[photo]), float(z.bpp)))
    return out


def decode_patches(model, heldout: list[HeldoutCodes], patch: int, seeds: tuple[int, ...],
                   steps: int, keep_photos: tuple[str, ...] = ()) -> tuple[list[np.ndarray], list[tuple], dict]:
    """Decode every photo's codes with ``model`` for every noise seed and cut its patches. Returns the patches, one
    ``(photo, box index, seed)`` per patch (photo, then seed, then box), and the whole reconstructions of
    ``keep_photos`` by ``(photo, seed)``."""
    patches, rows, kept = [], [], {}
    for h in heldout:
        codes = torch.from_numpy(h.codes)
        for seed in seeds:
            rec = decode_codes(model, codes, h.height, h.width, steps, int(seed), h.tile, h.overlap)
            if h.photo in keep_photos:
                kept[(h.photo, int(seed))] = rec
            patches.extend(cut_patches(rec, list(h.boxes), patch))
            rows.extend((h.photo, k, int(seed)) for k in range(len(h.boxes)))
    return patches, rows, kept


def compare_on_same_bitstream(base, models: dict, photos: dict[str, np.ndarray],
                              boxes: dict[str, list[tuple[int, int]]], patch: int, seeds: tuple[int, ...],
                              steps: int = 4, keep_photos: tuple[str, ...] = (), progress: bool = False,
                              memo: str | Path | None = None, base_fingerprint: str = "",
                              fixed: tuple[str, ...] = ()) -> PairedPatches:
    """Compress each photo with ``base``; decode its codes with every model in ``models`` for every seed; cut
    ``patch``-pixel patches at ``boxes[photo]`` (top-left (y, x)). A patch's id is the same for all its seeds.

    ``memo``: a folder where the base's codes and the patches of the ``fixed`` models are kept and reused — models
    whose weights ``base_fingerprint`` identifies, such as the pre-trained decoder that every post-training run of
    one base is compared against (its decode costs seconds a run). See :func:`memo_key` for what a stored entry must
    match; a damaged entry is decoded again."""
    entry = None
    if memo is not None and fixed and not keep_photos:
        if not base_fingerprint:
            raise ValueError("a memo of decodes needs the base's fingerprint (what identifies the fixed models)")
        entry = Path(memo) / f"{memo_key(base_fingerprint, fixed, photos, boxes, patch, seeds, steps)}.npz"
    stored = _read_memo(entry) if entry is not None else None
    heldout = stored[0] if stored else heldout_codes(base, photos, boxes)
    out = PairedPatches(recon={}, bpp={h.photo: h.bpp for h in heldout})
    rows = None
    for name, m in tqdm(models.items(), desc="decode holdout", disable=not progress):
        if stored and name in stored[1]:
            out.recon[name], rows = stored[1][name], stored[2]
            continue
        out.recon[name], rows, kept = decode_patches(m, heldout, patch, seeds, steps, keep_photos)
        out.photos.update({(photo, name, seed): r for (photo, seed), r in kept.items()})
    if entry is not None and not stored:
        _write_memo(entry, heldout, {n: out.recon[n] for n in fixed if n in out.recon}, rows)
    first = {h.photo: i for i, h in enumerate(heldout)}
    offset = np.cumsum([0] + [len(h.boxes) for h in heldout])
    for photo, k, seed in rows or []:
        y, x = heldout[first[photo]].boxes[k]
        out.original.append(photos[photo][y : y + patch, x : x + patch])
        out.rows.append({"photo": photo, "y": int(y), "x": int(x), "seed": int(seed),
                         "patch": int(offset[first[photo]] + k)})
    return out


def memo_key(base_fingerprint: str, fixed: tuple[str, ...], photos: dict[str, np.ndarray],
             boxes: dict[str, list[tuple[int, int]]], patch: int, seeds: tuple[int, ...], steps: int) -> str:
    """What the memo's pixels depend on: the base (its fingerprint), which models, the photos (names and pixels),
    boxes, patch size, seeds and steps, and the arithmetic that decoded them (the numerics fingerprint — torch
    version, pinned kernels — and torch's thread count: another count may round differently)."""
    import hashlib
    import json

    from vlic import numerics
    from vlic.judges.base import image_digest

    h = hashlib.sha256(json.dumps({
        "base": base_fingerprint, "fixed": list(fixed), "patch": int(patch), "seeds": [int(s) for s in seeds],
        "steps": int(steps), "numerics": numerics.fingerprint()["id"], "threads": torch.get_num_threads(),
        "boxes": {k: [list(map(int, b)) for b in v] for k, v in boxes.items() if k in photos},
        "photos": {name: image_digest(px, name) for name, px in photos.items()}, "format": 1}, sort_keys=True).encode())
    return h.hexdigest()[:24]


def _write_memo(path: Path, heldout: list[HeldoutCodes], recon: dict[str, list[np.ndarray]], rows) -> None:
    """One .npz (no pickles): the codes and metadata of each photo, the fixed models' patches and the row index."""
    import io
    import json

    from vlic.files import atomic_write_bytes

    meta = {"photos": [{"photo": h.photo, "height": h.height, "width": h.width, "tile": h.tile, "overlap": h.overlap,
                        "boxes": [list(b) for b in h.boxes], "bpp": h.bpp} for h in heldout],
            "models": list(recon), "rows": [[p, int(k), int(s)] for p, k, s in rows or []]}
    arrays = {f"codes_{i}": h.codes for i, h in enumerate(heldout)}
    arrays |= {f"recon_{i}": np.stack(v) for i, v in enumerate(recon.values())}
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _read_memo(path: Path):
    """(heldout codes, {model: patches}, rows) of a memo entry, or None if there is none or it cannot be read."""
    import json
    import zipfile

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            heldout = [HeldoutCodes(m["photo"], z[f"codes_{i}"], int(m["height"]), int(m["width"]), m["tile"],
                                    int(m["overlap"]), tuple(tuple(b) for b in m["boxes"]), float(m["bpp"]))
                       for i, m in enumerate(meta["photos"])]
            recon = {name: list(z[f"recon_{i}"]) for i, name in enumerate(meta["models"])}
        rows = [(p, int(k), int(s)) for p, k, s in meta["rows"]]
        if any(len(v) != len(rows) for v in recon.values()):
            raise ValueError("patch count differs from the row count")
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        print(f"decode memo '{path}' is damaged ({e}); decoding again")
        return None
    return heldout, recon, rows


@torch.no_grad()
def bitstream_rates(codecs: dict[str, ImageCodec], photos: dict[str, np.ndarray]) -> list[dict]:
    """Per photo and codec: bpp of its real bitstream; for every codec after the first, the fraction of latent tokens
    that differ from the first codec's."""
    rows = []
    names = list(codecs)
    for photo, px in photos.items():
        codes = {}
        for name, codec in codecs.items():
            z = codec.compress(px)
            codes[name] = codec.tokens(px)   # (positions, channels)
            row = {"photo": photo, "codec": name, "bpp": z.bpp, "bytes": z.bytes, "ideal_bits": z.ideal_bits}
            if name != names[0]:
                row["tokens_changed"] = float((codes[name] != codes[names[0]]).any(axis=1).mean())
            rows.append(row)
    return rows
