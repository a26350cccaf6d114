"""Short DPO runs, one per reward variant and training seed, from the same pre-trained codec (chapter 03).

A :class:`AblationJob` trains with :func:`~vlic.training.dpo.trainer.train_dpo` (inline judging,
``judge_workers = 0``, so a run is reproducible) using the variant's :class:`~vlic.training.reward.CombinedReward`,
then decodes the *pre-trained* bitstream of every holdout photo with the post-trained decoder (same codes, same
noise seed as the base decoder — :mod:`vlic.eval.decoder_comparison`) and cuts the evaluation patches. The chapter
judges those patches with one common referee.

Jobs run in separate processes (``spawn``, one torch thread each: :func:`run_jobs`). Each finished job is saved at
once under ``results_dir/<key>.npz`` (the key hashes everything that changes its result, the code included), so an
interrupted stage loses nothing and a rerun trains only what is missing. A job that fails is recorded with its
error and the others go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import traceback
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vlic.eval.decoder_comparison import HeldoutCodes
from vlic.judges.factory import VLMSettings
from vlic.judges.reward_variants import RewardVariant
from vlic.judges.simulated import SimulationSettings
from vlic.training.dpo.trainer import DPOConfig


@dataclass(frozen=True)
class AblationJob:
    variant: RewardVariant
    train_seed: int
    cfg: DPOConfig                    # seed is replaced by train_seed
    checkpoint: str                   # pre-trained codec (safetensors)
    cache_path: str
    sim: SimulationSettings
    vlm: VLMSettings
    patch: int
    eval_seeds: tuple[int, ...]
    sample_steps: int

    def key(self, fingerprint: str, n_images: int) -> str:
        from vlic.judges import combination, simulated
        from vlic.training import reward
        from vlic.training.dpo import trainer as dpo_trainer

        h = hashlib.sha256(json.dumps({
            "variant": dataclasses.asdict(self.variant), "seed": self.train_seed, "cfg": dataclasses.asdict(self.cfg),
            "codec": fingerprint, "sim": dataclasses.asdict(self.sim), "patch": self.patch,
            "eval_seeds": self.eval_seeds, "steps": self.sample_steps, "images": n_images,
            "vlm": {k: v for k, v in dataclasses.asdict(self.vlm).items() if k not in ("concurrency",)},
        }, sort_keys=True, default=str).encode())
        for mod in (dpo_trainer, reward, combination, simulated):
            h.update(Path(mod.__file__).read_bytes())
        return f"{self.variant.token.replace(':', '_').replace('@', '-')}-s{self.train_seed}-{h.hexdigest()[:12]}"


def make_reward(variant: RewardVariant, cache, vlm: VLMSettings, sim: SimulationSettings):
    """The variant's :class:`~vlic.training.reward.CombinedReward` (VLM prompt with or without reasoning)."""
    from vlic.judges.factory import make_judge
    from vlic.training.reward import CombinedReward

    vlm_here = dataclasses.replace(vlm, reasoning=variant.reasoning)
    judges = [make_judge(j, vlm_here, sim=sim) for j in variant.judges]
    return CombinedReward(judges, cache, seeds=variant.seeds, orders=variant.orders, rule=variant.rule,
                          weights=variant.weights or None, margin=variant.margin, name=variant.label)


def run_job(job: AblationJob, images: Sequence[np.ndarray], evals: Sequence[HeldoutCodes], threads: int = 1) -> dict:
    """Train, decode the evaluation patches; returns arrays and statistics (never raises: errors are recorded)."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    try:
        from vlic.codec.families import image_codec, load
        from vlic.eval.decoder_comparison import decode_patches
        from vlic.judges.cache import VerdictCache
        from vlic.training.dpo.trainer import post_trained_checkpoint, train_dpo

        base = load(job.checkpoint)
        cache = VerdictCache(job.cache_path)
        reward = make_reward(job.variant, cache, job.vlm, job.sim)
        cfg = dataclasses.replace(job.cfg, seed=int(job.train_seed), judge_workers=0, threads=int(threads))
        res = train_dpo(base, list(images), reward, cfg, resume_dir=None, reward_name=reward.name, progress=False)
        train_s = time.perf_counter() - t0
        patches, rows, _ = decode_patches(res.model, list(evals), job.patch, tuple(job.eval_seeds), job.sample_steps)
        ck = post_trained_checkpoint(base, res, cfg)
        codec = image_codec(ck)
        bpp = {e.photo: None for e in evals}
        cache.close()
        half = max(1, len(res.curves) // 2)
        acc = float(np.mean([c["implicit_accuracy"] for c in res.curves[half:]])) if res.curves else float("nan")
        return {"ok": True, "patches": np.stack(patches), "rows": rows, "stats": res.stats, "train_seconds": train_s,
                "seconds": time.perf_counter() - t0, "implicit_accuracy_second_half": acc, "codec": codec,
                "judge_calls": int(res.stats.get("judge_calls", 0)), "bpp": bpp}
    except Exception as e:  # recorded, not raised: the other variants still run
        return {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(),
                "seconds": time.perf_counter() - t0}


def _worker(job: AblationJob, images, evals, threads, photos) -> dict:
    out = run_job(job, images, evals, threads)
    codec = out.pop("codec", None)
    if out.get("ok") and codec is not None:
        try:   # what the post-trained encoder spends on the same photos (real bitstreams)
            out["bpp"] = {name: float(codec.compress(px).bpp) for name, px in photos.items()}
        except Exception as e:
            out["bpp_error"] = f"{type(e).__name__}: {e}"
    return out


def _save(path: Path, job: AblationJob, out: dict) -> None:
    meta = {k: v for k, v in out.items() if k != "patches"}
    meta.update({"variant": job.variant.token, "label": job.variant.label, "train_seed": job.train_seed})
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    if out.get("ok"):
        np.savez_compressed(path.with_suffix(".npz"), patches=out["patches"])


def load_saved(path: Path) -> dict | None:
    """A finished job's saved result, or None."""
    meta = path.with_suffix(".json")
    if not meta.is_file():
        return None
    out = json.loads(meta.read_text())
    if out.get("ok"):
        npz = path.with_suffix(".npz")
        if not npz.is_file():
            return None
        out["patches"] = np.load(npz)["patches"]
        out["rows"] = [tuple(r) for r in out["rows"]]
    return out


def run_jobs(jobs: Sequence[AblationJob], images: Sequence[np.ndarray], evals: Sequence[HeldoutCodes],
             photos: dict[str, np.ndarray], results_dir: str | Path, fingerprint: str, workers: int = 2,
             threads: int = 1, log: Callable[[str], None] = print) -> dict[tuple[str, int], dict]:
    """Run every job not already saved under ``results_dir``, ``workers`` processes at a time; return all results
    by (variant token, training seed). Failed jobs are saved too (a rerun retries them)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    out, todo = {}, []
    for job in jobs:
        path = results_dir / job.key(fingerprint, len(images))
        saved = load_saved(path)
        if saved is not None and saved.get("ok"):
            saved["reused"] = True
            out[(job.variant.token, job.train_seed)] = saved
        else:
            todo.append((job, path))
    log(f"{len(jobs) - len(todo)} runs reused from {results_dir}, {len(todo)} to train with {workers} process(es)")
    if not todo:
        return out
    if workers <= 1:
        for job, path in todo:
            res = _worker(job, images, evals, threads, photos)
            _save(path, job, res)
            out[(job.variant.token, job.train_seed)] = res
            log(f"  {job.variant.token} seed {job.train_seed}: {'ok' if res['ok'] else res['error']} "
                f"({res['seconds']:.0f} s)")
        return out
    from vlic.processes import worker_pool

    with worker_pool(workers) as pool:  # spawn; workers die with this process
        futures = {pool.submit(_worker, job, images, evals, threads, photos): (job, path) for job, path in todo}
        for fut in as_completed(futures):
            job, path = futures[fut]
            try:
                res = fut.result()
            except Exception as e:   # the worker process itself died
                res = {"ok": False, "error": f"{type(e).__name__}: {e}", "seconds": float("nan")}
            _save(path, job, res)
            out[(job.variant.token, job.train_seed)] = res
            log(f"  {job.variant.token} seed {job.train_seed}: {'ok' if res['ok'] else res['error']} "
                f"({res['seconds']:.0f} s)")
    return out
