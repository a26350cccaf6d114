"""Chapter 04's post-training run, assembled from its parameters in one place.

Chapter 04 (in-process, one CPU or GPU) and ``accelerate launch -m vlic.training.dpo_launch`` (many processes)
both call :func:`setup_dpo` with the same parameters, so they build the same base codec, photos, reward and
:class:`~vlic.training.dpo_trainer.DPOConfig` — and therefore the same resume key: a run launched on many GPUs
leaves its final state in ``models/codec_dpo.resume/``, and the chapter then *resumes* it at its last step (no
further training) and evaluates it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlic.codec.checkpoint import Checkpoint, load
from vlic.config import as_list
from vlic.data.prepare import load_photos
from vlic.judges.cache import VerdictCache
from vlic.judges.factory import VLMSettings, availability, make_judge
from vlic.training.dpo_trainer import DPOConfig
from vlic.training.reward import UnanimousReward


@dataclass
class DPOSetup:
    base: Checkpoint                       # the pre-trained codec of ``rate``
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


def _cast(value, hint):
    # DVC renders small floats as e.g. 3e-05, which YAML 1.1 (papermill's -y) reads back as a string
    if hint is bool:
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    return hint(value)


def dpo_config(**values) -> DPOConfig:
    """A :class:`DPOConfig` from chapter parameters: its own fields, cast to their declared types; others ignored."""
    hints = typing.get_type_hints(DPOConfig)
    return DPOConfig(**{f.name: _cast(values[f.name], hints[f.name]) for f in dataclasses.fields(DPOConfig)
                        if f.name in values})


def setup_dpo(prepared_dir: str, models_dir: str, cache_path: str, rate: str, reward_judges: str, reward_seeds: int,
              reward_orders: int, referees: str, validation_images: str = "", **params) -> DPOSetup:
    """Everything a post-training run needs, from chapter 04's parameters (names as in its ``parameters`` cell)."""
    prepared, models = Path(prepared_dir), Path(models_dir)
    left_out = set(as_list(validation_images))
    train_all, holdout = load_photos(prepared, "train"), load_photos(prepared, "holdout")
    if not left_out <= set(train_all):
        raise ValueError(f"validation_images {sorted(left_out - set(train_all))} are not training photos "
                         f"({', '.join(train_all)})")
    base_path = models / f"codec_{rate}.safetensors"
    if not base_path.is_file():
        raise FileNotFoundError(f"no pre-trained codec at {base_path}: run `dvc repro pretrain` first")
    vlm = VLMSettings.from_params(params)
    reward_names, referee_names = list(as_list(reward_judges)), list(as_list(referees))
    if set(reward_names) & set(referee_names):
        raise ValueError(f"a referee must not be one of the training judges: {sorted(set(reward_names) & set(referee_names))}")
    for name in reward_names:
        if availability(name, vlm):
            raise RuntimeError(f"reward judge '{name}' cannot run here: {availability(name, vlm)}")
    runnable = [n for n in referee_names if availability(n, vlm) is None]
    if not runnable:
        raise RuntimeError(f"no referee among '{referees}' can run here: "
                           + "; ".join(f"{n}: {availability(n, vlm)}" for n in referee_names))
    cache = VerdictCache(cache_path)
    reward = UnanimousReward([make_judge(n, vlm) for n in reward_names], cache, seeds=int(reward_seeds),
                             orders=int(reward_orders))
    return DPOSetup(base=load(base_path), train_images={k: v for k, v in train_all.items() if k not in left_out},
                    validation={k: train_all[k] for k in sorted(left_out)}, holdout=holdout, reward=reward,
                    referee_names=runnable, vlm=vlm, cache=cache, cfg=dpo_config(**params),
                    resume_dir=models / "codec_dpo.resume", out_path=models / "codec_dpo.safetensors")
