"""Chapter 04's run assembled from its parameters: dvc.yaml → parameters, the setup, the seed summary, and the
same trainer on two processes (Accelerate's multi-CPU launcher) and through `vlic.training.dpo.launch`."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from vlic.config import ParamsError, build, load_params
from vlic.notebooks import parameter_names, stage_parameters
from vlic.training.dpo.seed_study import across_seeds
from vlic.training.dpo.setup import setup_dpo
from vlic.training.dpo.trainer import DPOConfig

ROOT = Path(__file__).resolve().parents[1]


def test_stage_parameters_render_dvc_yaml_like_dvc_and_papermill():
    values = stage_parameters("dpo", load_params(ROOT / "params.yaml"), ROOT / "dvc.yaml")
    assert set(values) == set(parameter_names(ROOT / "notebooks/04_dpo_posttrain.ipynb"))
    assert values["prepared_dir"] == load_params(ROOT / "params.yaml")["data"]["out_dir"]
    assert isinstance(values["vlm_send_seed"], bool) and values["vlm_backend"] == ""
    assert values["lr"] == load_params(ROOT / "params.yaml")["dpo"]["lr"]
    odd = stage_parameters("dpo", {**load_params(ROOT / "params.yaml"),
                                   "dpo": {**load_params(ROOT / "params.yaml")["dpo"], "lr": 3e-05}}, ROOT / "dvc.yaml")
    assert odd["lr"] == "3e-05"                  # DVC writes 3e-05; YAML 1.1 reads it back as a string …
    assert build(DPOConfig, odd).lr == 3e-05     # … and the config casts it to the declared type
    assert build(DPOConfig, {**values, "train_encoder": "false"}).train_encoder is False
    with pytest.raises(KeyError, match="no stage"):
        stage_parameters("nope", {}, ROOT / "dvc.yaml")
    with pytest.raises(KeyError, match="do not define"):
        stage_parameters("dpo", {"data": {}}, ROOT / "dvc.yaml")


def test_across_seeds_is_a_t_interval_over_runs():
    s = across_seeds([0.4, 0.6])
    assert s["mean"] == 0.5 and s["n"] == 2 and s["above_half"] == 1
    assert s["ci_high"] - 0.5 == pytest.approx(12.7062 * 0.141421 / np.sqrt(2), abs=1e-3)   # t(0.975, 1 df) = 12.706
    one = across_seeds([0.7])
    assert one["mean"] == 0.7 and np.isnan(one["ci_low"])
    with pytest.raises(ValueError):
        across_seeds([])


# ---- a tiny workspace: prepared photos, a tiny pre-trained codec, a dvc.yaml/params.yaml with only the dpo stage ----

@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    from vlic.codec.checkpoint import Checkpoint, build_prior
    from vlic.codec.autoencoder import DiffusionCodec
    from test_training_dpo_trainer import TINY

    w = tmp_path_factory.mktemp("dpo_ws")
    rng = np.random.default_rng(0)
    for split, names in (("train", ["a", "b", "c"]), ("holdout", ["h"])):
        (w / "prepared" / split).mkdir(parents=True)
        for n in names:
            Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(w / "prepared" / split / f"{n}.png")
    torch.manual_seed(0)
    model = DiffusionCodec(TINY).eval()
    torch.nn.init.normal_(model.flow.out[-1].weight, std=0.05)
    (w / "models").mkdir()
    Checkpoint(model, build_prior(TINY).eval(), rate="low").save(w / "models" / "codec_low.safetensors")
    stage = ROOT / "dvc.yaml"
    import yaml

    dpo = yaml.safe_load(stage.read_text())["stages"]["dpo"]
    (w / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"dpo": {"cmd": dpo["cmd"]}}}))
    params = load_params(ROOT / "params.yaml")
    params["data"]["out_dir"] = str(w / "prepared")
    params["judges"]["cache"] = str(w / "verdicts.sqlite")
    params["codec"]["sample_steps"] = 2   # the tiny codec samples from t = 1: one step would be refused by DPO
    params["dpo"].update(reward_judges="haarpsi,ssim", referees="gmsd", steps=4, batch_size=2, warmup=1,
                         refresh_every=2, refresh_size=4, min_pairs=2, buffer_capacity=16, checkpoint_every=2,
                         merge_after=1, judge_workers=0)
    (w / "params.yaml").write_text(yaml.safe_dump(params))
    return w


def _values(w: Path) -> dict:
    values = stage_parameters("dpo", load_params(w / "params.yaml"), w / "dvc.yaml")
    return {**values, "models_dir": str(w / "models")}


def test_setup_builds_the_chapters_run_and_refuses_bad_parameters(workspace):
    values = _values(workspace)
    s = setup_dpo(**values)
    assert list(s.train_images) == ["a", "b", "c"] and list(s.holdout) == ["h"] and s.referee_names == ["gmsd"]
    assert s.reward.name == "haarpsi ∧ ssim" and isinstance(s.cfg, DPOConfig) and s.cfg.steps == 4
    assert list(setup_dpo(**{**values, "validation_images": "b"}).train_images) == ["a", "c"]
    with pytest.raises(ValueError, match="not training photos"):
        setup_dpo(**{**values, "validation_images": "h"})
    with pytest.raises(ValueError, match="referee must not be"):
        setup_dpo(**{**values, "referees": "ssim"})
    with pytest.raises(FileNotFoundError, match="dvc repro pretrain"):
        setup_dpo(**{**values, "rate": "high"})
    with pytest.raises(RuntimeError, match="cannot run here"):
        setup_dpo(**{**values, "reward_judges": "vlm,ssim"})
    with pytest.raises(ParamsError, match="parameter 'reward_seeds': expected an integer, got 'three'"):
        setup_dpo(**{**values, "reward_seeds": "three"})
    with pytest.raises(ParamsError, match="DPORun needs parameter\\(s\\) rate"):
        setup_dpo(**{k: v for k, v in values.items() if k != "rate"})


def test_launched_run_is_the_run_the_chapter_resumes(workspace, monkeypatch):
    """`python -m vlic.training.dpo.launch` trains and leaves its state; the chapter's call then resumes it at the
    last step (no training) and gets the same weights."""
    from vlic.training.dpo import launch as dpo_launch
    from vlic.training.dpo.trainer import train_dpo

    shutil.rmtree(workspace / "models" / "codec_dpo.resume", ignore_errors=True)
    (workspace / "p.yaml").write_text(textwrap.dedent(f"""
        dpo:
          steps: 4
        data:
          out_dir: {workspace / 'prepared'}
    """))
    monkeypatch.chdir(workspace)   # dvc.yaml's dpo stage writes to models/ relative to the project
    assert dpo_launch.main(["--params", "params.yaml", "--profile", "p.yaml"]) == 0
    state = torch.load(workspace / "models" / "codec_dpo.resume" / "rank0" / "checkpoint" / "state.pt", weights_only=False)
    assert state["step"] == 4
    s = setup_dpo(**stage_parameters("dpo", load_params("params.yaml"), "dvc.yaml"))
    again = train_dpo(s.base, list(s.train_images.values()), s.reward, s.cfg, resume_dir=s.resume_dir,
                      reward_name=s.reward.name, progress=False)
    assert again.resumed_from == 4 and again.seconds < 5
    fresh = train_dpo(s.base, list(s.train_images.values()), s.reward, s.cfg, reward_name=s.reward.name,
                      progress=False)
    for (n, a), (_, b) in zip(again.model.state_dict().items(), fresh.model.state_dict().items()):
        assert torch.equal(a, b), n


def _two_process_run(out: str) -> None:
    from accelerate import Accelerator

    from test_training_dpo_trainer import TINY, _cfg, closer_wins
    from vlic.codec.autoencoder import DiffusionCodec
    from vlic.codec.checkpoint import Checkpoint, build_prior
    from vlic.training.dpo.trainer import train_dpo

    torch.manual_seed(0)
    model = DiffusionCodec(TINY).eval()
    torch.nn.init.normal_(model.flow.out[-1].weight, std=0.05)
    rng = np.random.default_rng(0)
    photos = [(rng.random((64, 64, 3)) * 255).astype(np.uint8) for _ in range(3)]
    acc = Accelerator()
    res = train_dpo(Checkpoint(model, build_prior(TINY).eval(), rate="t"), photos, closer_wins, _cfg(steps=3),
                    accelerator=acc, progress=False, resume_dir=f"{out}/resume")
    torch.save({"weights": res.model.state_dict(), "judged": res.stats["judged"], "world": acc.num_processes,
                "type": str(acc.distributed_type)}, f"{out}/rank{acc.process_index}.pt")


def test_the_trainer_runs_data_parallel_on_two_processes(tmp_path):
    """Accelerate's multi-CPU launcher (gloo DDP, as `accelerate launch` on GPUs): two ranks, each with its own
    buffer and candidates, end with identical weights (DDP averages the gradients)."""
    from accelerate import debug_launcher
    from accelerate.state import AcceleratorState

    # an Accelerator made earlier in this process (e.g. by another test) would be inherited by the forked ranks
    AcceleratorState._reset_state(reset_partial_state=True)
    debug_launcher(_two_process_run, args=(str(tmp_path),), num_processes=2)
    r0, r1 = (torch.load(tmp_path / f"rank{k}.pt", weights_only=False) for k in (0, 1))
    assert r0["world"] == r1["world"] == 2 and "MULTI_CPU" in r0["type"]
    assert all(torch.equal(r0["weights"][k], r1["weights"][k]) for k in r0["weights"])
    assert r0["judged"] > 0 and r1["judged"] > 0
    assert (tmp_path / "resume" / "rank1" / "checkpoint" / "state.pt").is_file()



def test_two_level_interval_uses_pretrained_models_as_the_unit():
    import pandas as pd
    from scipy import stats

    from vlic.training.dpo.seed_study import pretrained_path, two_level

    runs = pd.DataFrame({"pretrain_seed": [0, 0, 0, 1, 1, 1, 2, 2, 2],
                         "w": [0.60, 0.62, 0.64, 0.50, 0.52, 0.54, 0.70, 0.72, 0.74]})
    s = two_level(runs, "w")
    means = np.array([0.62, 0.52, 0.72])
    half = stats.t.ppf(0.975, 2) * means.std(ddof=1) / np.sqrt(3)
    assert s["groups"] == 3 and s["runs"] == 9 and s["n"] == 3
    assert s["mean"] == pytest.approx(0.62) and s["ci_low"] == pytest.approx(0.62 - half, abs=1e-4)
    assert s["sd_between_groups"] == pytest.approx(0.1, abs=1e-4) and s["sd_within_groups"] == pytest.approx(0.02, abs=1e-4)
    # nine runs treated as independent would give a much narrower (wrong) interval
    naive = across_seeds(runs["w"])
    assert naive["ci_high"] - naive["ci_low"] < s["ci_high"] - s["ci_low"]
    assert pretrained_path("models", "low", 0).as_posix() == "models/codec_low.safetensors"
    assert pretrained_path("models", "low", 2).as_posix() == "models/replicates/codec_low_seed2.safetensors"


def test_start_order_starts_each_pretrained_model_once_before_repeating_one():
    from vlic.training.dpo.seed_study import start_order

    bases = [0, 0, 1, 1, 1, 2, 2, 2, 0, 0]
    order = start_order(bases)
    assert sorted(order) == list(range(len(bases)))
    assert [bases[i] for i in order[:3]] == [0, 1, 2]          # the first run of each model starts first
    for b in set(bases):                                       # each model's runs keep their own order
        mine = [i for i in order if bases[i] == b]
        assert mine == sorted(mine)
    assert start_order([]) == []


def test_background_runs_are_the_runs_started_alone(workspace):
    """Chapter 04 starts its replicate and oracle runs in worker processes before its main run; their tables are
    those of `replicates` and `oracle_check` run on their own (timings aside)."""
    from vlic.training.dpo.seed_study import Background, oracle_check, replicates

    from vlic.data.prepare import load_photos
    from vlic.data.splits import random_crops

    values = _values(workspace)
    random_crops(load_photos(Path(values["prepared_dir"]), "holdout"), 32, 4, seed=0).save(
        Path(values["prepared_dir"]) / "holdout_crops.npz")
    timing = ["train_seconds", "seconds"]

    def fresh():   # no resume states or memoised decodes left by the other way of running
        shutil.rmtree(workspace / "models" / "codec_dpo.resume", ignore_errors=True)
        shutil.rmtree(Path(values["cache_path"]).parent / "decodes", ignore_errors=True)

    fresh()
    background = Background(values, [(0, 1)], oracle_seeds=[0], judge="psnr", workers=1)
    rows, oracle = background.replicates(), background.oracle()
    assert background.finished is not None and background.seconds() > 0
    fresh()
    alone = replicates(values, [(0, 1)], workers=1)
    pd.testing.assert_frame_equal(rows.drop(columns=timing), alone.drop(columns=timing))
    fresh()
    alone = oracle_check(values, seeds=[0], judge="psnr", workers=1)
    pd.testing.assert_frame_equal(oracle.drop(columns=["train_seconds"]), alone.drop(columns=["train_seconds"]))
