"""The pre-trained models chapter 02 commits to git (``cache: false`` outputs of the ``pretrain`` stage) are the
ones its results describe, and still match the recipe: their fingerprints are those ``results/pretrain.json``
records, and their recorded recipe keys are the ones params.yaml, the training photos and today's training code give.
A mismatch means the study would retrain them (≈ 5 min on 2 cores) — rebuild them with ``dvc repro pretrain`` and
commit the files, instead of finding out in CI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlic.config import load_params

REPO = Path(__file__).resolve().parents[1]


def _committed() -> dict[str, Path]:
    """Chapter 02's committed model files by name (the replicates: every replicate seed but the rate point's own)."""
    models, codec = REPO / "models", load_params(REPO / "params.yaml")["codec"]
    rate, seeds = codec["replicate_rate"], [int(s) for s in str(codec["replicate_seeds"]).split(",")]
    return {"low": models / "codec_low.safetensors", "high": models / "codec_high.safetensors",
            **{f"{rate}_seed{k}": models / "replicates" / f"codec_{rate}_seed{k}.safetensors"
               for k in seeds if k != int(codec["seed"])},
            "mini": models / "codec_mini.safetensors"}


def test_the_committed_models_are_the_ones_the_results_describe():
    from vlic.codec.checkpoint import load
    from vlic.codec.flowmo.checkpoint import load_codec_checkpoint

    results = REPO / "results" / "pretrain.json"
    if not results.is_file():
        pytest.skip("no results/pretrain.json in this checkout (run the study)")
    recorded = json.loads(results.read_text())
    if recorded.get("family") != "unet":
        pytest.skip("the committed results are not of the laptop (UNet) codec")
    expected = {"low": recorded["low"]["fingerprint"], "high": recorded["high"]["fingerprint"],
                "mini": recorded["architecture"]["flowmo_mini"]["fingerprint"],
                **{f"{recorded['replicates']['rate']}_seed{k}": v
                   for k, v in recorded["replicates"]["fingerprints"].items()}}
    for name, path in _committed().items():
        if name not in expected:
            continue
        assert path.is_file(), f"{path.relative_to(REPO)} is not in this checkout (it is committed to git)"
        ck = load_codec_checkpoint(path) if name == "mini" else load(path)
        assert ck.fingerprint == expected[name], \
            f"{path.relative_to(REPO)} is not the model results/pretrain.json describes"


KEYS = """
import dataclasses, json, sys
from vlic.chapters import pretrain as chapter
from vlic.config import load_params
from vlic.notebooks import stage_parameters
from vlic.training.flowmo_pretrain import recipe_key as mini_key
from vlic.training.pretrain import recipe_key

params = load_params("params.yaml")
ch = chapter.setup(stage_parameters("pretrain", params, "dvc.yaml"))   # exactly what chapter 02 receives
photos = list(ch.train_images.values())
keys = {"low": recipe_key(ch.configs["low"], ch.train_cfg, photos),
        "high": recipe_key(ch.configs["high"], ch.train_cfg, photos),
        "mini": mini_key(ch.flowmo_mini, ch.mini_train_cfg, photos)}
rate, codec = params["codec"]["replicate_rate"], params["codec"]
for k in [int(s) for s in str(codec["replicate_seeds"]).split(",") if int(s) != int(codec["seed"])]:
    keys[f"{rate}_seed{k}"] = recipe_key(ch.configs[rate], dataclasses.replace(ch.train_cfg, seed=k), photos)
print(json.dumps(keys))
"""


def test_the_committed_models_match_todays_recipe():
    """The keys are computed in a fresh interpreter, as chapter 02's worker processes compute them: the pinned
    numerics' fingerprint (part of the key) records the process's BLAS thread count, which earlier tests change."""
    import subprocess
    import sys

    from vlic.codec.checkpoint import load
    from vlic.codec.flowmo.checkpoint import load_codec_checkpoint

    params = load_params(REPO / "params.yaml")
    if not (REPO / params["data"]["out_dir"]).is_dir() or params["codec"]["family"] != "unet":
        pytest.skip("the training photos are not prepared in this checkout (dvc repro data), or the codec family "
                    "is not the laptop's")
    out = subprocess.run([sys.executable, "-c", KEYS], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    wanted = json.loads(out.stdout.strip().splitlines()[-1])
    stale = []
    for name, path in _committed().items():
        ck = load_codec_checkpoint(path) if name == "mini" else load(path)
        if (ck.training or {}).get("recipe") != wanted[name]:
            stale.append(str(path.relative_to(REPO)))
    assert not stale, (f"{', '.join(stale)} were trained with another recipe than params.yaml, the photos and the "
                       f"training code now give: the study would retrain them (≈ 5 min); rebuild them with "
                       f"`dvc repro pretrain` and commit the files")
