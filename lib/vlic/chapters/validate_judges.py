"""Chapter 01 (``notebooks/01_vlm_2afc_validation.ipynb``): its set-up from its parameters and its results file
(``results/2afc.json``).

:func:`setup` does what the chapter's first cell did, in the same order: repository root, figure style, output
folders, the VLM settings, every judge's label and status (why it cannot run here, or None), and the judges that can.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vlic.chapters.parameters import open_chapter

CHAPTER = "01_vlm_2afc_validation"
PARAMETERS = (
    "prepared_dir", "twoafc_dir", "results_dir", "cache_path", "metrics", "vlm_backend", "vlm_model", "vlm_base_url",
    "vlm_api_key_env", "vlm_concurrency", "vlm_temperature", "vlm_max_tokens", "vlm_min_side", "vlm_send_seed",
    "vlm_timeout_s", "vlm_max_retries", "vlm_retry_budget_s", "vlm_breaker_failures", "seeds", "orders",
    "vote_judges", "ladder_families", "ladder_max_gap", "compressed_codecs", "compressed_bpp", "bapps_dir",
    "bapps_max_per_family", "max_pairs", "bootstrap", "seed")


@dataclass
class ValidateJudgesChapter:
    params: dict[str, Any]
    results: Path
    figures: Path
    vlm: Any            # VLMSettings
    names: list         # every judge asked for: "vlm" and the metrics
    label: dict         # judge → how to print it
    status: dict        # judge → why it cannot run here, or None
    judges: dict        # the judges that can run here

    def overview(self) -> pd.DataFrame:
        """Every judge: its label and whether it runs here."""
        return pd.DataFrame({"judge": self.names, "label": [self.label[n] for n in self.names],
                             "status": [self.status[n] or "ok" for n in self.names]}).set_index("judge")


def setup(namespace: dict) -> ValidateJudgesChapter:
    """Chapter 01's objects from the parameters in ``namespace`` (the notebook's ``globals()``)."""
    from vlic.config import as_list
    from vlic.judges.factory import VLMSettings, availability, make_judge
    from vlic.judges.metric import METRICS

    o = open_chapter(namespace, PARAMETERS, CHAPTER)
    p, results, figures = o.params, o.results, o.figures
    vlm = VLMSettings.from_params({k: v for k, v in p.items() if k.startswith("vlm_")})
    names = ["vlm", *as_list(p["metrics"])]
    label = {n: ((f"VLM {vlm.describe()}" if vlm.configured else "VLM") if n == "vlm" else METRICS[n].label)
             for n in names}
    status = {n: availability(n, vlm) for n in names}
    judges = {n: make_judge(n, vlm) for n in names if status[n] is None}
    return ValidateJudgesChapter(params=p, results=results, figures=figures, vlm=vlm, names=names, label=label,
                                 status=status, judges=judges)


def write_results(ch: ValidateJudgesChapter, *, sets: dict, overall: pd.DataFrame, off_diag: pd.DataFrame,
                  pair_agree: pd.DataFrame, costs: pd.DataFrame, votes: pd.DataFrame) -> dict:
    """Write ``results/2afc.json`` (:func:`vlic.judges.validation.summary_json`, :func:`vlic.notebooks.write_metrics`)
    and return its contents; the keys are the ones ``vlic results summary``/``compare`` and the tests read."""
    from vlic.judges.validation import summary_json
    from vlic.notebooks import write_metrics

    summary = summary_json(ch.names, ch.label, ch.status, ch.judges, sets, overall, off_diag, pair_agree, costs, votes,
                           ch.params["seeds"], ch.params["orders"])
    write_metrics(ch.results / "2afc.json", summary, default=float)
    return summary
