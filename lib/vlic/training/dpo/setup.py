"""Chapter 04's post-training run, assembled from its parameters in one place.

Chapter 04 (in-process, one CPU or GPU) and ``accelerate launch -m vlic.training.dpo.launch`` (many processes)
both call :func:`setup_dpo` with the same parameters, so they build the same base codec, photos, reward and
:class:`~vlic.training.dpo.trainer.DPOConfig` — and therefore the same resume key: a run launched on many GPUs
leaves its final state in ``models/codec_dpo.resume/``, and the chapter then *resumes* it at its last step (no
further training) and evaluates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlic.codec.families import load  # either family: the laptop codec or FlowMo (paper profile)
from vlic.config import build
from vlic.data.prepare import load_photos
from vlic.judges.cache import VerdictCache
from vlic.judges.factory import VLMSettings, availability, make_judge
from vlic.training.dpo.trainer import DPOConfig
from vlic.training.reward import UnanimousReward


@dataclass
class DPOSetup:
    base: object                           # the pre-trained codec of ``rate`` (Checkpoint or FlowMoCheckpoint)
    train_images: dict[str, np.ndarray]    # training photos minus the validation photos
    validation: dict[str, np.ndarray]      # training photos left out of post-training (where to tune)
    holdout: dict[str, np.ndarray]         # the held-out photos (evaluation only)
    reward: UnanimousReward
    referee_names: list[str]               # referees that can run here (the first is the headline one)
    vlm: VLMSettings
    cache: VerdictCache
    cfg: DPOConfig
    resume_dir: Path                       # models/codec_dpo.resume
    out_path: Path                         # models/codec_dpo.safetensors


@dataclass(frozen=True)
class DPORun:
    """What chapter 04 post-trains and how it judges, beside the trainer's :class:`DPOConfig` and the
    :class:`VLMSettings`: names of the chapter's parameters (params.yaml's ``dpo`` section, ``judges.cache``)."""

    prepared_dir: str
    models_dir: str
    cache_path: str
    rate: str                                # models/codec_<rate>.safetensors is the base
    reward_judges: tuple[str, ...]           # their unanimous vote is the reward
    reward_seeds: int
    reward_orders: int
    referees: tuple[str, ...]                # held-out referees, never training judges
    validation_images: tuple[str, ...] = ()  # training photos left out of post-training


def setup_dpo(**values: Any) -> DPOSetup:
    """Everything a post-training run needs, from chapter 04's parameters (the names of its ``parameters`` cell and
    of params.yaml's ``dpo`` section): :class:`DPORun`, :class:`DPOConfig` and ``vlm_*`` :class:`VLMSettings` fields
    are read and typed by :func:`vlic.config.build`; other names are ignored."""
    run, cfg, vlm = build(DPORun, values), build(DPOConfig, values), VLMSettings.from_params(values)
    models, left_out = Path(run.models_dir), set(run.validation_images)
    train_all, holdout = load_photos(run.prepared_dir, "train"), load_photos(run.prepared_dir, "holdout")
    if not left_out <= set(train_all):
        raise ValueError(f"validation_images {sorted(left_out - set(train_all))} are not training photos "
                         f"({', '.join(train_all)})")
    base_path = models / f"codec_{run.rate}.safetensors"
    if not base_path.is_file():
        raise FileNotFoundError(f"no pre-trained codec at {base_path}: run `dvc repro pretrain` first")
    reward_names, referee_names = list(run.reward_judges), list(run.referees)
    if set(reward_names) & set(referee_names):
        raise ValueError(f"a referee must not be one of the training judges: {sorted(set(reward_names) & set(referee_names))}")
    for name in reward_names:
        if availability(name, vlm):
            raise RuntimeError(f"reward judge '{name}' cannot run here: {availability(name, vlm)}")
    runnable = [n for n in referee_names if availability(n, vlm) is None]
    if not runnable:
        raise RuntimeError(f"no referee among '{','.join(referee_names)}' can run here: "
                           + "; ".join(f"{n}: {availability(n, vlm)}" for n in referee_names))
    cache = VerdictCache(run.cache_path)
    reward = UnanimousReward([make_judge(n, vlm) for n in reward_names], cache, seeds=run.reward_seeds,
                             orders=run.reward_orders)
    return DPOSetup(base=load(base_path), train_images={k: v for k, v in train_all.items() if k not in left_out},
                    validation={k: train_all[k] for k in sorted(left_out)}, holdout=holdout, reward=reward,
                    referee_names=runnable, vlm=vlm, cache=cache, cfg=cfg,
                    resume_dir=models / "codec_dpo.resume", out_path=models / "codec_dpo.safetensors")
