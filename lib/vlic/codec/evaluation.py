"""Rate–distortion on whole held-out photos: the learned codec (real bitstreams) and the classical baselines at the
same bits per pixel. Rows are plain dicts, ready for a DataFrame / CSV."""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from vlic.codec.image_codec import ImageCodec
from vlic.codec.quality import ms_ssim, psnr


def evaluate_codec(codec: ImageCodec, images: dict[str, np.ndarray], rate: str, steps: tuple[int, ...] = (1, 2, 4, 8),
                   seeds: tuple[int, ...] = (0, 1), keep: tuple[str, ...] = ()) -> tuple[list[dict], dict]:
    """Compress each photo once; decode at every step count with the first seed and at the largest step count with
    every seed; also score the deterministic mean head μ. Returns (rows, reconstructions of photos in ``keep``).
    ``decode_seconds`` is the sampling time only; ``entropy_decode_seconds`` (range decoding + latent decoder) is
    paid once per file on top."""
    rows, recon = [], {}
    jobs = [(s, seeds[0]) for s in steps] + [(max(steps), sd) for sd in seeds[1:]]
    for name, px in tqdm(images.items(), desc=f"evaluate {rate}"):
        z = codec.compress(px)
        base = {"codec": f"vlic-{rate}", "rate": rate, "image": name, "bpp": z.bpp, "bytes": z.bytes,
                "ideal_bits": z.ideal_bits, "bits_over_ideal": z.payload_bits / max(z.ideal_bits, 1e-9),
                "encode_seconds": z.seconds}
        t0 = time.perf_counter()
        c, features, mean = codec.decode_condition(z.data, name)  # entropy decoding + latent decoder, once per photo
        base["entropy_decode_seconds"] = time.perf_counter() - t0
        mu = codec.mean_pixels(c, mean)
        rows.append(dict(base, decoder="mean head μ", steps=0, seed=-1, psnr=psnr(px, mu), ms_ssim=ms_ssim(px, mu),
                         decode_seconds=float("nan")))
        if name in keep:
            recon[(name, "mean", -1)] = mu
        for s, seed in jobs:
            t0 = time.perf_counter()
            out = codec.sample(c, features, mean, steps=s, seed=seed)
            rows.append(dict(base, decoder="flow", steps=s, seed=seed, psnr=psnr(px, out), ms_ssim=ms_ssim(px, out),
                             decode_seconds=time.perf_counter() - t0))
            if name in keep:
                recon[(name, s, seed)] = out
    return rows, recon


def evaluate_baselines(images: dict[str, np.ndarray], targets: dict[str, float], codecs: tuple[str, ...],
                       label: str = "") -> tuple[list[dict], dict]:
    """Each baseline at the highest quality whose file is ≤ ``targets[image]`` bpp. Returns (rows, reconstructions)."""
    from vlic.codec.baselines import BaselineCodec

    rows, recon = [], {}
    for name in codecs:
        codec = BaselineCodec(name)
        for image, px in images.items():
            r = codec.compress(px, bpp=targets[image])
            out = codec.decompress(r.data)
            rows.append({"codec": name, "rate": label, "image": image, "bpp": r.bpp, "bytes": r.bytes,
                         "target_bpp": targets[image], "met_target": r.met_target, "quality": r.quality,
                         "psnr": psnr(px, out), "ms_ssim": ms_ssim(px, out)})
            recon[(image, name, label)] = out
    return rows, recon
