"""A **simulated** stochastic judge: a metric's preference seen through a documented noise model.

No VLM runs offline, and metric judges are deterministic and order-free, so on the laptop profile self-ensembling
over seeds and the order swap would change nothing. To show what those mechanisms *do* to a reward, chapter 03 uses
``sim_vlm(<metric>)``: a judge that answers like a sampled VLM — with sampling noise, a position bias and occasional
lapses and unparseable answers — but whose underlying preference is a metric's. It is **not a VLM and not evidence
about any VLM**; every table and figure that shows it says "simulated".

**Noise model.** For a query (reference, A, B, seed) with metric distances d_A, d_B and the relative difference
δ = (d_B − d_A) / max(d_A, d_B) ∈ [−1, 1] (positive when A, shown first, is closer):

* with probability ``parse_failure`` the answer has no rating (an explicit ``parse`` failure, as a VLM's can);
* else with probability ``lapse`` the judge ignores the images: r is uniform on {−5, …, 5};
* else the evidence is  y = sensitivity · δ + position_bias + noise · ε,  ε ~ N(0, 1),
  and the rating is r = −clip(round(5 · tanh(y)), −5, 5) (negative = A closer, the judges' convention).

``position_bias`` > 0 favours whichever candidate is shown first, so asking both orders cancels it; ``noise`` makes
one call unreliable, so summing seeds helps. All randomness comes from a generator seeded by the SHA-256 of the
query's content key (images, order, seed) and the judge's parameters: the same query always gets the same answer,
like a VLM server that honours the request's seed, and the verdict cache stays valid.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import asdict, dataclass, replace
from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np

from vlic.config import build
from vlic.judges.base import JudgeBase, JudgeError, OnVerdict, Query, Verdict, image_digest
from vlic.judges.metric import METRICS, MetricJudge

NAME = re.compile(r"^sim_vlm\((\w+)\)$")


@dataclass(frozen=True)
class SimulationSettings:
    """The noise model's parameters (module docstring). Defaults: see ``rewards.sim_*`` in params.yaml."""

    sensitivity: float = 25.0
    noise: float = 1.0
    position_bias: float = 0.5
    lapse: float = 0.05
    parse_failure: float = 0.02

    def __post_init__(self) -> None:
        for k in ("lapse", "parse_failure"):
            v = getattr(self, k)
            if not 0.0 <= v <= 1.0:
                raise JudgeError(f"simulated judge: {k} must be a probability in [0, 1], got {v}")
        if self.noise < 0 or self.sensitivity <= 0:
            raise JudgeError(f"simulated judge: noise must be ≥ 0 and sensitivity > 0, got {self.noise}, {self.sensitivity}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], where: str = "") -> "SimulationSettings":
        """The settings from the ``sim_*`` keys of params.yaml's ``rewards`` section or of a chapter's parameters
        (``sim_lapse`` → ``lapse``), typed by :func:`vlic.config.build`; other keys are ignored."""
        return build(cls, params, where=where, prefix="sim_")


def is_simulated(name: str) -> bool:
    return bool(NAME.match(name or ""))


def simulated_metric(name: str) -> str:
    """``sim_vlm(haarpsi)`` → ``haarpsi``; anything else is an error naming the expected form."""
    m = NAME.match(name or "")
    if not m or m.group(1) not in METRICS:
        raise JudgeError(f"'{name}' is not a simulated judge; expected sim_vlm(<metric>) with a metric in "
                         f"{', '.join(METRICS)}")
    return m.group(1)


class SimulatedVLMJudge(JudgeBase):
    """``SimulatedVLMJudge("haarpsi").judge(ref, a, b, seed=3).rating`` — stochastic, position-biased, simulated."""

    deterministic = False
    antisymmetric = False

    def __init__(self, metric: str, settings: SimulationSettings | None = None, batch_size: int = 64):
        self.metric = MetricJudge(metric, batch_size=batch_size)
        self.settings = settings or SimulationSettings()
        self.name = f"sim_vlm({metric})"
        self._distances: dict[tuple[str, str], float] = {}
        self._identity_text = json.dumps(self.identity(), sort_keys=True, default=str)

    def identity(self) -> dict[str, Any]:
        return {"backend": "simulated", "metric": self.metric.identity(), "noise_model": "sim-v1",
                **asdict(self.settings)}

    def _distance_many(self, refs: list[np.ndarray], xs: list[np.ndarray]) -> np.ndarray:
        keys = [(image_digest(r, "reference"), image_digest(x, "candidate")) for r, x in zip(refs, xs)]
        todo = [i for i, k in enumerate(keys) if k not in self._distances]
        if todo:
            d = self.metric.distances([refs[i] for i in todo], [xs[i] for i in todo])
            for i, v in zip(todo, d):
                self._distances[keys[i]] = float(v)
        return np.array([self._distances[k] for k in keys])

    def _rng(self, q: Query) -> np.random.Generator:
        h = hashlib.sha256((q.content_key() + self._identity_text).encode())
        return np.random.default_rng(int.from_bytes(h.digest()[:8], "little"))

    def answer(self, q: Query, d_a: float, d_b: float) -> Verdict:
        """The simulated answer to ``q`` given the metric's distances (the noise model of the module docstring)."""
        s = self.settings
        rng = self._rng(q)
        u_fail, u_lapse, eps, u_rand = rng.random(), rng.random(), rng.standard_normal(), rng.integers(-5, 6)
        scores = (d_a, d_b)
        if not (math.isfinite(d_a) and math.isfinite(d_b)):
            return Verdict.failed(f"{self.metric.spec.label} returned a non-finite distance", "parse", scores=scores)
        if u_fail < s.parse_failure:
            text = "SIMULATED answer without a rating line (parse failure of the noise model)."
            return Verdict.failed("simulated: no RATING line", "parse", text=text, rationale=text, scores=scores)
        big = max(abs(d_a), abs(d_b))
        delta = 0.0 if big == 0 else (d_b - d_a) / big
        if u_lapse < s.lapse:
            rating = int(u_rand)
            why = "lapse: the simulated judge ignored the images"
        else:
            y = s.sensitivity * delta + s.position_bias + s.noise * eps
            rating = -int(np.clip(round(5 * math.tanh(y)), -5, 5))
            why = (f"evidence y = {s.sensitivity:g}·δ + {s.position_bias:g} (position bias) + {s.noise:g}·ε "
                   f"= {y:+.2f}, ε = {eps:+.2f}")
        rationale = (f"SIMULATED judge ({self.metric.spec.label} seen through a noise model; not a VLM). "
                     f"{self.metric.spec.label} distance of A: {d_a:.4f}, of B: {d_b:.4f}; δ = {delta:+.3f} "
                     f"(positive: A closer). {why}.")
        return Verdict(rating=rating, text=f"{rationale}\nRATING: {rating}", rationale=rationale, scores=scores)

    def judge_many(self, queries: Sequence[Query], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        out: list[Verdict] = []
        if not queries:
            return out
        # every distance the queries need, deduplicated and batched once (seeds and orders repeat the same images)
        refs_all = [q.ref for q in queries]
        self._distance_many(refs_all + refs_all, [q.a for q in queries] + [q.b for q in queries])
        step = self.metric.batch_size
        for s in range(0, len(queries), step):
            chunk = list(queries[s : s + step])
            t0 = time.perf_counter()
            refs = [q.ref for q in chunk]
            d = self._distance_many(refs + refs, [q.a for q in chunk] + [q.b for q in chunk])
            each = (time.perf_counter() - t0) / len(chunk)
            for k, q in enumerate(chunk):
                v = self.answer(q, float(d[k]), float(d[len(chunk) + k]))
                v = replace(v, latency_s=each)
                out.append(v)
                if on_verdict:
                    on_verdict(s + k, v)
        return out
