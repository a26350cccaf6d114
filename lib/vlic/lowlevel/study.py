"""Chapter 07's measurements: train the LL task models, run every system on the degraded holdout photos as real
files, score the restored output against the clean photo, and summarise (BD-rates, abnormal tasks, intervals).

Systems, per task (degradation) and photo:

* uncompressed references — ``degraded`` (the input itself), ``classical`` (:data:`~.classical.FOR_TASK`),
  ``task_unet`` (a residual U-Net trained for this degradation only), ``universal`` (one conditioned U-Net for all
  tasks, :class:`~.restorer.UniversalRestorer`);
* at each learned rate point (a pre-trained FSQ codec) — ``decoded`` (pre-trained codec, no restorer), ``rdo``
  (pre-trained codec, restorer fine-tuned afterwards on its decoded images), ``rpo`` (codec and restorer fine-tuned
  jointly on the rate–perception loss); all three from real ``.vlic`` bitstreams, bpp from their bytes, decoded
  with the mean head;
* cascades — ``<codec>+universal``: a classical codec (:func:`vlic.eval.benchmark.baseline_reconstructions`, the
  chapter-05 harness, with downscale-then-code variants) at the RDO system's bpp, photo by photo, then the universal
  restorer.

Rows are plain dicts ``{task, system, family, rate_point, photo, bpp, <metrics>}``; the ``system`` column plays the
``codec`` role of :mod:`vlic.eval.summary` so its BD-rate and bootstrap code is reused as it is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from vlic.images import to_pixels, to_tensor
from vlic.lowlevel.classical import FOR_TASK, restore_classical
from vlic.lowlevel.degradations import degrade
from vlic.lowlevel.restorer import (DESCRIPTOR_DIM, DegradationController, ResidualUNet, UniversalRestorer,
                                    effnet_descriptor)
from vlic.lowlevel.training import degraded_pool, fine_tune, train_controller, train_restorer


@dataclass(frozen=True)
class LowLevelConfig:
    tasks: dict = field(default_factory=lambda: {"noise": {"sigma": 25.0}, "gaussian_blur": {"sigma": 2.0},
                                                 "rain": {}, "haze": {"beta": 1.5}, "low_light": {}})
    heldout_degradation: str = "motion_blur"   # never seen by the controller nor the universal restorer
    heldout_severity: dict = field(default_factory=dict)
    crop_size: int = 48
    crops_per_photo: int = 6
    eval_size: int = 224             # NIQE needs > 193 px a side
    width: int = 16
    emb_dim: int = 16
    content_dim: int = 16
    controller_steps: int = 300
    task_steps: int = 60
    universal_steps: int = 200
    finetune_steps: int = 80
    batch: int = 8
    lr: float = 2e-3
    finetune_lr: float = 1e-3
    codec_lr: float = 2e-4
    alpha: float = 1.0
    beta: float = 0.01
    gamma: float = 1.0
    controller_crops: int = 8      # holdout crops per photo and task for the controller's accuracy
    seed: int = 0

    @classmethod
    def from_params(cls, p: dict) -> "LowLevelConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(p) - known)
        if unknown:
            raise ValueError(f"unknown lowlevel parameter(s) {unknown}; known: {sorted(known)}")
        p = dict(p)
        p["tasks"] = {k: dict(v or {}) for k, v in p.get("tasks", cls().tasks).items()}
        p["heldout_severity"] = dict(p.get("heldout_severity") or {})
        if p.get("heldout_degradation", cls.heldout_degradation) in p["tasks"]:
            raise ValueError(f"the held-out degradation '{p['heldout_degradation']}' must not be a training task")
        return cls(**p)

    @property
    def all_degradations(self) -> dict:
        return self.tasks | {self.heldout_degradation: self.heldout_severity}


def parse_degradations(spec: str) -> dict[str, dict]:
    """``"noise sigma 25; haze beta 1.5 airlight 0.9; rain"`` → {task: {parameter: value}}: tasks separated by
    ``;``, each a name followed by parameter/value pairs (no ``=``, which papermill's parameter parsing refuses)."""
    out = {}
    for item in filter(None, (t.strip() for t in str(spec).split(";"))):
        name, *rest = item.split()
        if len(rest) % 2:
            raise ValueError(f"degradation '{name}': parameters must come in name/value pairs, got {rest}")
        try:
            out[name] = {k: float(v) for k, v in zip(rest[::2], rest[1::2])}
        except ValueError:
            raise ValueError(f"degradation '{name}': a parameter value is not a number in {rest}") from None
    return out


def center_crop(px: np.ndarray, size: int) -> np.ndarray:
    H, W = px.shape[:2]
    s = min(size, H, W)
    y, x = (H - s) // 2, (W - s) // 2
    return np.ascontiguousarray(px[y : y + s, x : x + s])


@torch.no_grad()
def restore(model, px: np.ndarray) -> np.ndarray:
    """A whole photo through a restorer (a module mapping [-1, 1] batches), uint8 in and out."""
    return to_pixels(model(to_tensor(px)))[0]


class _Unconditioned(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x):
        return self.unet(x)


@dataclass
class TrainedModels:
    task_unets: dict
    universal: UniversalRestorer
    controller_curves: list
    restorer_curves: dict
    seconds: dict


def parallel_map(fn, jobs: list, workers: int = 1) -> list:
    """``[fn(*job) for job in jobs]``, in ``workers`` spawned processes (that die with this one) when > 1.
    On a small CPU two single-threaded processes use two cores better than one two-threaded process."""
    if workers <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    from vlic.processes import worker_pool

    with worker_pool(min(workers, len(jobs))) as pool:
        return list(pool.map(_call, [(fn, job) for job in jobs]))


def _call(item):
    fn, job = item
    torch.set_num_threads(1)
    return fn(*job)


def make_pools(train_photos: dict[str, np.ndarray], cfg: LowLevelConfig) -> dict:
    """Clean training crops (key ``"clean"``) and each of them degraded by every degradation (seeded)."""
    from vlic.data.splits import random_crops

    crops = random_crops(train_photos, cfg.crop_size, cfg.crops_per_photo, cfg.seed).pixels
    return degraded_pool(crops, cfg.all_degradations, cfg.seed) | {"clean": crops}


def train_task_unets(pools: dict, cfg: LowLevelConfig) -> tuple[dict, dict, float]:
    """One residual U-Net per degradation (the held-out one included, as its specialist reference)."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    clean = to_tensor(pools["clean"])
    unets, curves = {}, {}
    for k, task in enumerate(cfg.all_degradations):
        unet = ResidualUNet(cfg.width)
        curves[task] = train_restorer(unet, to_tensor(pools[task]), clean, cfg.task_steps, cfg.lr, cfg.batch,
                                      cfg.seed + k)
        unets[task] = _Unconditioned(unet)
    return unets, curves, time.perf_counter() - t0


def train_universal(pools: dict, cfg: LowLevelConfig, effnet=None) -> tuple[UniversalRestorer, list, list, dict]:
    """Controller (degradation type + content embedding) on frozen EfficientNet-Lite0 descriptors, then the
    FiLM-conditioned U-Net on every training task. Returns (restorer, controller curves, restorer curves, seconds)."""
    if effnet is None:
        from vlic.perception import effnet as _e

        effnet = _e.load()
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed + 100)
    tasks = list(cfg.tasks)
    clean = to_tensor(pools["clean"])
    with torch.no_grad():
        desc = torch.cat([effnet_descriptor(effnet, to_tensor(pools[t])) for t in tasks])
        clean_desc = effnet_descriptor(effnet, clean)
    labels = torch.arange(len(tasks)).repeat_interleave(len(clean))
    controller = DegradationController(DESCRIPTOR_DIM, len(tasks), cfg.emb_dim, cfg.content_dim)
    controller_curves = train_controller(controller, desc, labels, clean_desc.repeat(len(tasks), 1),
                                         cfg.controller_steps, seed=cfg.seed)
    seconds = {"controller": time.perf_counter() - t0}
    t0 = time.perf_counter()
    unet = ResidualUNet(cfg.width, controller.cond_dim)
    with torch.no_grad():
        cond = controller.condition(desc)
    inputs = torch.cat([to_tensor(pools[t]) for t in tasks])
    curves = train_restorer(unet, inputs, clean.repeat(len(tasks), 1, 1, 1), cfg.universal_steps, cfg.lr,
                            cfg.batch, cfg.seed, cond=cond)
    seconds["universal"] = time.perf_counter() - t0
    return UniversalRestorer(effnet, controller, unet), controller_curves, curves, seconds


def _train_job(kind: str, pools: dict, cfg: LowLevelConfig):
    return train_task_unets(pools, cfg) if kind == "task_unets" else train_universal(pools, cfg)


def train_models(train_photos: dict[str, np.ndarray], cfg: LowLevelConfig, workers: int = 1) -> tuple[TrainedModels, dict]:
    """Pools → per-task U-Nets and (controller + universal restorer), the two in parallel when ``workers`` > 1.
    Returns (models, pools)."""
    t0 = time.perf_counter()
    pools = make_pools(train_photos, cfg)
    pool_seconds = time.perf_counter() - t0
    (unets, curves, unet_seconds), (universal, controller_curves, universal_curves, seconds) = parallel_map(
        _train_job, [("task_unets", pools, cfg), ("universal", pools, cfg)], workers)
    curves = dict(curves) | {"universal": universal_curves}
    seconds = {"pools": pool_seconds, "task_unets": unet_seconds, **seconds}
    return TrainedModels(unets, universal, controller_curves, curves, {k: round(v, 1) for k, v in seconds.items()}), pools


def controller_accuracy(universal: UniversalRestorer, photos: dict[str, np.ndarray], cfg: LowLevelConfig) -> dict:
    """The controller on crops of the holdout photos, degraded by each training task (accuracy, confusion) and by
    the held-out degradation (what it takes it for)."""
    from vlic.data.splits import random_crops

    crops = random_crops(photos, cfg.crop_size, cfg.controller_crops, cfg.seed + 7).pixels
    tasks = list(cfg.tasks)
    confusion = np.zeros((len(tasks), len(tasks)), int)
    heldout = np.zeros(len(tasks), int)
    for k, task in enumerate(cfg.all_degradations):
        pool = degraded_pool(crops, {task: cfg.all_degradations[task]}, cfg.seed + 77 + k)[task]
        with torch.no_grad():
            pred = universal.controller(universal.descriptor(to_tensor(pool)))[0].argmax(1).numpy()
        if task in cfg.tasks:
            np.add.at(confusion[k], pred, 1)
        else:
            np.add.at(heldout, pred, 1)
    correct = np.diag(confusion).sum()
    return {"tasks": tasks, "confusion": confusion.tolist(), "n": int(confusion.sum()),
            "accuracy": float(correct / confusion.sum()),
            "per_task": {t: float(confusion[i, i] / max(1, confusion[i].sum())) for i, t in enumerate(tasks)},
            "heldout_taken_for": {t: int(heldout[i]) for i, t in enumerate(tasks)}}


def fine_tune_rate(checkpoint, universal: UniversalRestorer, pools: dict, cfg: LowLevelConfig):
    """RDO and RPO at one rate point from the same start and the same mini-batches. Returns
    {"rdo": (checkpoint, restorer, curves), "rpo": (…)}; the RDO checkpoint is the pre-trained one."""
    from vlic.codec.checkpoint import Checkpoint

    tasks = list(cfg.tasks)
    y = torch.cat([to_tensor(pools[t]) for t in tasks])
    x = to_tensor(pools["clean"]).repeat(len(tasks), 1, 1, 1)
    out = {}
    for name, joint in (("rdo", False), ("rpo", True)):
        codec, prior, restorer, curves = fine_tune(
            checkpoint.model, checkpoint.prior, universal, y, x, cfg.finetune_steps, joint, cfg.finetune_lr,
            cfg.codec_lr, cfg.batch, cfg.alpha, cfg.beta, cfg.gamma, cfg.seed)
        ck = checkpoint if not joint else Checkpoint(codec, prior, checkpoint.rate, dict(checkpoint.training) | {
            "rpo": {"steps": cfg.finetune_steps, "alpha": cfg.alpha, "beta": cfg.beta, "gamma": cfg.gamma,
                    "tasks": tasks}})
        out[name] = (ck, restorer, curves)
    return out


def fine_tune_rates(checkpoints: dict, universal: UniversalRestorer, pools: dict, cfg: LowLevelConfig,
                    workers: int = 1) -> dict:
    """:func:`fine_tune_rate` for every rate point (name → checkpoint), one process per rate point when
    ``workers`` > 1."""
    names = list(checkpoints)
    done = parallel_map(fine_tune_rate, [(checkpoints[n], universal, pools, cfg) for n in names], workers)
    return dict(zip(names, done))


def _metrics_row(scorer, nr, clean, px) -> dict:
    return scorer(clean, px) | nr(px)


@torch.no_grad()
def coded_mean(codec, px: np.ndarray, verify: bool = False):
    """``px`` compressed to a real ``.vlic`` bitstream (its bytes give the bpp) and the mean-head image of the codes
    it carries. The codes are the encoder's own — range decoding returns exactly them (the container's content
    CRC checks that on every decode) — so the file is range-decoded only when ``verify`` is set, and then must
    give the same pixels. Returns (:class:`~vlic.codec.image_codec.Compressed`, uint8 pixels)."""
    from vlic.codec.image_codec import pad_to

    z = codec.compress(px)
    H, W = px.shape[:2]
    codes = codec.model.encode(pad_to(to_tensor(px), codec.config.downsample))
    decoded = to_pixels(codec.model.condition_from_codes(codes)[1][0, :, :H, :W])
    if verify and not np.array_equal(codec.mean_reconstruction(z.data), decoded):
        raise AssertionError("the decoded .vlic file differs from the encoder's codes")
    return z, decoded


def evaluate_parallel(photos, cfg: LowLevelConfig, models: TrainedModels, systems: dict, cascades, fr_metrics,
                      nr_metrics, workers: int = 1):
    """:func:`evaluate` with the degradations dealt out to ``workers`` processes (same rows, same seeds)."""
    names = list(cfg.all_degradations)
    groups = [tuple(names[i::workers]) for i in range(max(1, min(workers, len(names))))]
    parts = parallel_map(evaluate, [(photos, cfg, models, systems, tuple(cascades), tuple(fr_metrics),
                                     tuple(nr_metrics), g) for g in groups], workers)
    rows = pd.concat([p[0] for p in parts], ignore_index=True)
    order = {t: i for i, t in enumerate(names)}
    rows = rows.sort_values("task", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)
    pixels = {}
    for p in parts:
        pixels |= p[1]
    return rows, pixels


def evaluate(photos: dict[str, np.ndarray], cfg: LowLevelConfig, models: TrainedModels, systems: dict,
             cascades: tuple[str, ...], fr_metrics, nr_metrics, only: tuple[str, ...] | None = None):
    """Every system on every (task, photo); ``systems``: rate point → ``fine_tune_rate`` output; ``cascades``:
    classical codec names of the chapter-05 harness (``webp``, ``webp-ds``, …). Returns (rows DataFrame, pixels by
    (task, system, rate_point, photo)). One file per codec and rate point is range-decoded as a check. ``only``:
    evaluate these degradations (seeds stay those of the full run)."""
    from vlic.codec.image_codec import ImageCodec
    from vlic.eval.benchmark import baseline_reconstructions
    from vlic.eval.metrics import FullReference, NoReference

    scorer, nr = FullReference(list(fr_metrics)), NoReference(list(nr_metrics))
    rows, pixels = [], {}

    def add(task, system, family, rate_point, photo, bpp, px, extra=None):
        pixels[(task, system, rate_point, photo)] = px
        rows.append({"task": task, "system": system, "family": family, "rate_point": rate_point, "photo": photo,
                     "bpp": bpp, **(extra or {}), **_metrics_row(scorer, nr, photos[photo], px)})

    codecs = {rp: {name: ImageCodec(ck) for name, (ck, _, _) in s.items()} for rp, s in systems.items()}
    bases = tuple(dict.fromkeys(c.removesuffix("-ds") for c in cascades))
    verified = []
    for k, (task, sev) in enumerate(cfg.all_degradations.items()):
        if only is not None and task not in only:
            continue
        seen = task in cfg.tasks
        degraded = {p: degrade(px, task, cfg.seed + 500 + 10 * k + i, **sev) for i, (p, px) in enumerate(photos.items())}
        for p, y in degraded.items():
            add(task, "degraded", "input", "uncompressed", p, 24.0, y)
            add(task, "classical", f"classical ({FOR_TASK[task]})", "uncompressed", p, 24.0,
                restore_classical(y, task, sev))
            add(task, "task_unet", "per-task U-Net", "uncompressed", p, 24.0, restore(models.task_unets[task], y))
            add(task, "universal", "universal restorer", "uncompressed", p, 24.0, restore(models.universal, y))
        if not seen:
            continue
        for rp, by_name in codecs.items():
            targets = {}
            for name, codec in by_name.items():
                restorer = systems[rp][name][1]
                for p, y in degraded.items():
                    z, decoded = coded_mean(codec, y, verify=not verified or verified[-1] != (rp, name))
                    if not verified or verified[-1] != (rp, name):
                        verified.append((rp, name))
                    if name == "rdo":
                        add(task, "decoded", "pre-trained codec, no restorer", rp, p, z.bpp, decoded)
                        targets[p] = z.bpp
                    add(task, name, {"rdo": "RDO: codec, then restorer", "rpo": "RPO: joint"}[name], rp, p, z.bpp,
                        restore(restorer, decoded))
            rec = baseline_reconstructions(degraded, {rp: targets}, bases, downscale=any(c.endswith("-ds") for c in cascades))
            for row in rec.rows:
                if row["codec"] not in cascades:
                    continue
                px = rec.pixels[(row["codec"], row["rate_point"], row["photo"], row["seed"])]
                add(task, f"{row['codec']}+universal", "cascade: classical codec, then universal restorer", rp,
                    row["photo"], row["bpp"], restore(models.universal, px), {"matched": row["matched"]})
    return pd.DataFrame(rows), pixels


def daclip_status(checkpoint: str | None) -> str | None:
    """None when a DA-CLIP checkpoint is cached at ``checkpoint`` *and* this environment could run it, else why not.
    Nothing is downloaded. (The laptop profile sets no checkpoint; the EfficientNet controller plays the role.)"""
    from pathlib import Path

    if not checkpoint:
        return "no DA-CLIP checkpoint configured (laptop profile): the EfficientNet-Lite0 controller plays its role"
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        return f"DA-CLIP checkpoint '{path}' is not cached (never downloaded at run time)"
    import importlib.util

    if importlib.util.find_spec("open_clip") is None:
        return (f"DA-CLIP checkpoint '{path}' is cached, but open_clip (DA-CLIP's model code) is not installed; "
                "this chapter has no DA-CLIP conditioning path yet")
    return (f"DA-CLIP checkpoint '{path}' and open_clip are present, but this chapter has no DA-CLIP conditioning "
            "path yet: the EfficientNet-Lite0 controller is used")


def save_restorers(path, models: TrainedModels, systems: dict) -> None:
    """Every trained restorer (per-task, universal with its controller, RDO and RPO per rate point) in one
    safetensors file, keys prefixed by role."""
    from pathlib import Path

    from safetensors.torch import save_file

    tensors = {}

    def put(prefix, module):
        for k, v in module.state_dict().items():
            tensors[f"{prefix}.{k}"] = v.detach().contiguous().cpu()

    for task, m in models.task_unets.items():
        put(f"task_unet.{task}", m)
    put("universal", models.universal)
    for rp, s in systems.items():
        for name, (_, restorer, _) in s.items():
            put(f"{name}.{rp}", restorer)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "vlic-lowlevel-restorers/1"})
    tmp.replace(path)
