"""Building judges by name: a metric name (``haarpsi``, ``lpips_vgg``, …), ``vlm`` with :class:`VLMSettings`, or a
*simulated* stochastic judge ``sim_vlm(<metric>)`` with :class:`~vlic.judges.simulated.SimulationSettings`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vlic.config import build
from vlic.judges.base import Judge, JudgeError
from vlic.judges.metric import METRICS, MetricJudge
from vlic.judges.metric import availability as metric_availability

VLM_BACKENDS = ("api", "local")


@dataclass(frozen=True)
class VLMSettings:
    """How to reach the VLM. ``backend``: "" (none configured), "api" (OpenAI-compatible HTTP) or "local"."""

    backend: str = ""
    model: str = ""
    base_url: str = ""
    api_key_env: str = ""        # the NAME of the environment variable holding the key ("" for keyless servers)
    concurrency: int = 8
    temperature: float = 1.0
    max_tokens: int = 0          # 0 = server default
    min_side: int = 0            # nearest-neighbour upscale small patches to at least this many pixels
    batch_size: int = 4          # local backend
    send_seed: bool = True
    reasoning: bool = True       # False: the direct prompt, rating line only (chapter 03's ablation)
    timeout_s: float = 120.0     # api: deadline of one request (the whole request, not per byte)
    max_retries: int = 5         # api: retries of a query after HTTP 429/5xx or a timeout
    retry_budget_s: float = 600.0  # api: total time one query may take, retries and backoff included
    breaker_failures: int = 20   # api: failed requests in a row that stop the run (circuit breaker)

    @property
    def configured(self) -> bool:
        return bool(self.backend)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], where: str = "") -> "VLMSettings":
        """The settings from the ``vlm_*`` keys of params.yaml's ``judges`` section or of a chapter's parameters
        (``vlm_temperature`` → ``temperature``), typed by :func:`vlic.config.build`; other keys are ignored, missing
        ones keep their defaults."""
        return build(cls, params, where=where, prefix="vlm_")

    def describe(self) -> str:
        if not self.configured:
            return "not configured"
        where = self.base_url if self.backend == "api" else "local transformers"
        return f"{self.model} ({where})"


def make_judge(name: str, vlm: VLMSettings | None = None, batch_size: int = 64, sim=None) -> Judge:
    """``name`` is a metric from :data:`vlic.judges.metric.METRICS`, ``vlm`` (then ``vlm`` settings are used),
    ``sim_vlm(<metric>)`` (then ``sim``, a :class:`~vlic.judges.simulated.SimulationSettings`, or its defaults) or
    ``flipped(<any of these>)`` (its verdicts negated: the anti-oracle of :mod:`vlic.judges.oracle`) or ``coin`` (a
    fair coin seeded by the images: the null of the same module)."""
    from vlic.judges.oracle import COIN, CoinJudge, FlippedJudge, flipped_inner, is_flipped
    from vlic.judges.simulated import SimulatedVLMJudge, is_simulated, simulated_metric

    if name == COIN:
        return CoinJudge()
    if is_flipped(name):
        return FlippedJudge(make_judge(flipped_inner(name), vlm, batch_size, sim))
    if is_simulated(name):
        return SimulatedVLMJudge(simulated_metric(name), sim, batch_size=batch_size)
    if name in METRICS:
        return MetricJudge(name, batch_size=batch_size)
    if name == "vlm":
        vlm = vlm or VLMSettings()
        if vlm.backend == "api":
            from vlic.judges.vlm_api import OpenAICompatibleJudge

            return OpenAICompatibleJudge(
                vlm.model, vlm.base_url, vlm.api_key_env, name="vlm", concurrency=vlm.concurrency,
                temperature=vlm.temperature, max_tokens=vlm.max_tokens or None, send_seed=vlm.send_seed,
                min_side=vlm.min_side, reasoning=vlm.reasoning, timeout_s=vlm.timeout_s, max_retries=vlm.max_retries,
                retry_budget_s=vlm.retry_budget_s, breaker_failures=vlm.breaker_failures,
            )
        if vlm.backend == "local":
            from vlic.judges.vlm_local import TransformersJudge

            return TransformersJudge(vlm.model, name="vlm", batch_size=vlm.batch_size, temperature=vlm.temperature,
                                     max_new_tokens=vlm.max_tokens or 512, min_side=vlm.min_side,
                                     reasoning=vlm.reasoning)
        raise JudgeError(f"VLM backend '{vlm.backend}' unknown or not configured; expected one of {VLM_BACKENDS}")
    raise JudgeError(f"unknown judge '{name}'; known: vlm, sim_vlm(<metric>), flipped(<judge>), coin, "
                     f"{', '.join(METRICS)}")


def availability(name: str, vlm: VLMSettings | None = None) -> str | None:
    """None if judge ``name`` can be built here, else the plain reason ("not configured", "not available offline …")."""
    from vlic.judges.oracle import COIN, flipped_inner, is_flipped
    from vlic.judges.simulated import NAME

    if name == COIN:
        return None
    if is_flipped(name):
        return availability(flipped_inner(name), vlm)
    if name == "vlm":
        return None if (vlm and vlm.configured) else "not configured"
    m = NAME.match(name or "")
    return metric_availability(m.group(1)) if m else metric_availability(name)
