"""``dvc exp run`` of the paper's chain with the paper profile's codec section (``codec.family: flowmo``) pointed at
tiny FlowMo checkpoints in the released ``.pth`` layout, on CPU: raw → data → pretrain (import the checkpoints, fit
the token prior) → dpo (Diffusion-DPO of FlowMo) → evaluate (chapter 05 on the FlowMo codecs) → machine_vision
(chapter 06's machine tasks on the FlowMo codecs; its laptop-codec fine-tunes recorded as not built). The repository is
copied to a temporary git repository whose params.yaml carries the smoke runs' tiny settings
(``tests/smoke_params``), so the experiment takes a minute, not the study's half hour."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from vlic.codec.flowmo.model import FlowMo, FlowMoConfig, save_released_layout
from vlic.config import set_args
from vlic.pipeline import feeds

REPO = Path(__file__).resolve().parents[1]
CHAIN = ("data", "pretrain", "dpo", "evaluate", "machine_vision")
TINY = dict(patch_size=8, mup_width=1, enc_mup_width=1, code_length=16, enc_depth=1, dec_depth=1, hidden_size=256,
            num_heads=4, axes_dim=(8, 24, 32), mlp_ratio=2.0, image_size=64, sample_steps=2)
EXTRA = {"dpo": {"pretrain_seeds": "0"}}   # the released models are one pre-training each: no replicates to post-train


def _copy_repository(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _tiny_params(params: dict, pipeline: dict) -> dict:
    """params.yaml with every key a chain stage feeds from a smoke-run parameter set to its tiny value."""
    for stage in CHAIN:
        decl = pipeline["stages"][stage]
        smoke = yaml.safe_load((REPO / "tests" / "smoke_params" / f"{Path(decl['notebook']).stem}.yaml").read_text())
        for name, source, _ in feeds(stage, decl, params, REPO):
            if name in smoke and source.startswith("${") and "{work}" not in str(smoke[name]):
                section, key = source[2:-1].split(".")
                params[section][key] = smoke[name]
    for section, values in EXTRA.items():
        params[section].update(values)
    return params


@pytest.mark.slow
def test_dvc_exp_run_of_the_paper_chain_on_tiny_flowmo_checkpoints(tmp_path):
    repo = tmp_path / "repo"
    _copy_repository(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    paper = yaml.safe_load((repo / "params" / "paper.yaml").read_text())
    assert paper["codec"]["family"] == "flowmo"
    (repo / "params.yaml").write_text(yaml.safe_dump(_tiny_params(params, yaml.safe_load(
        (repo / "pipeline.yaml").read_text())), sort_keys=False))
    hub = repo / "hub"
    for name, bits in (("flowmo_lo", 4), ("flowmo_hi", 8)):   # two rate points, as FlowMo-Lo and FlowMo-Hi
        cfg = FlowMoConfig(context_dim=bits, **TINY)
        torch.manual_seed(bits)
        save_released_layout(FlowMo(cfg), hub / f"{name}.pth", total_steps=1)
        (hub / f"{name}.json").write_text(cfg.to_json())   # the architecture, which the weights alone do not tell
    override = tmp_path / "paper_codec.yaml"   # the paper profile's codec section, pointed at the tiny checkpoints
    override.write_text(yaml.safe_dump({"codec": {"family": paper["codec"]["family"], "flowmo_low": "hub/flowmo_lo.pth",
                                                  "flowmo_high": "hub/flowmo_hi.pth"}}))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    run = lambda *cmd: subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)  # noqa: E731
    for cmd in (("git", "init", "-q"), ("git", "add", "-A"), ("git", "commit", "-qm", "tiny")):
        assert run(*cmd).returncode == 0
    done = run("dvc", "exp", "run", *set_args(override, repo / "params.yaml"), "evaluate", "machine_vision")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    pretrain = json.loads((repo / "results" / "pretrain.json").read_text())
    assert pretrain["family"] == "flowmo"
    assert pretrain["low"]["bpp_before_entropy_coding"] == pytest.approx(16 * 4 / 64**2, abs=1e-4)
    assert pretrain["high"]["bpp_before_entropy_coding"] == pytest.approx(16 * 8 / 64**2, abs=1e-4)
    assert pretrain["low"]["mean_head_psnr"] is None and pretrain["low"]["bpp"] > 0
    dpo = json.loads((repo / "results" / "dpo.json").read_text())
    assert dpo["codec_family"] == "flowmo" and dpo["steps"] > 0 and dpo["memory_estimate"]["parameters"] > 0
    assert dpo["fingerprint_dpo"] != dpo["fingerprint_pretrained"]
    ev = json.loads((repo / "results" / "eval.json").read_text())
    learned = {row["codec"] for row in ev["table"] if row["family"] == "learned"}
    assert {"vlic", "vlic-dpo"} <= learned
    machine = json.loads((repo / "results" / "machine.json").read_text())
    assert {"vlic", "vlic-dpo"} <= {row["codec"] for row in machine["table"]}
    assert "FlowMo" in machine["not_available"]["fine-tuning"]
    exps = run("dvc", "exp", "show", "--json")
    assert exps.returncode == 0 and "codec.family" not in exps.stderr
