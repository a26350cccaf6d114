"""params.yaml views, profile overrides and the environment files staying in sync."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from vlic.config import ParamsError, as_list, build, cast, load_params, merge, section, set_args
from vlic.data.prepare import DataConfig
from vlic.judges.factory import VLMSettings
from vlic.judges.simulated import SimulationSettings

REPO = Path(__file__).resolve().parents[1]


def test_as_list():
    assert as_list("a, b,c") == ("a", "b", "c")
    assert as_list("") == () and as_list(None) == ()
    assert as_list(["x", " y "]) == ("x", "y")


def test_data_section_builds_a_typed_config():
    cfg = section(load_params(REPO / "params.yaml"), "data", DataConfig)
    assert cfg.train_collections == ("packaged",)
    assert cfg.holdout_images == ("astronaut", "coffee", "china")
    assert isinstance(cfg.crop_size, int)


def test_unknown_keys_are_errors():
    with pytest.raises(ParamsError, match="unknown keys \\['crop'\\]"):
        section({"data": {"crop": 3}}, "data", DataConfig)
    with pytest.raises(ParamsError, match="no section 'codec'"):
        section({}, "codec", DataConfig)


@pytest.mark.parametrize("value,hint,expected", [
    ("3e-05", float, 3e-05),            # DVC writes small floats so; YAML 1.1 reads them back as strings
    (2, float, 2.0), ("40", int, 40), (40.0, int, 40),
    ("false", bool, False), ("True", bool, True), (False, bool, False),
    (0, str, "0"), ("0", str, "0"),     # eval_seeds: "0" overridden with -S …=0
    ("1, 2", tuple[int, ...], (1, 2)), ("", tuple[str, ...], ()), ("a,b", tuple[str, ...], ("a", "b")),
    (0, int | None, None), ("", str | None, None), (512, int | None, 512),
])
def test_cast_accepts_what_dvc_and_yaml_make_of_a_value(value, hint, expected):
    got = cast(value, hint, "k")
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value,hint,message", [
    ("abc", float, "parameter 'dpo.lr': expected a number > 0, got 'abc'"),  # the key's range (#25) is named
    (3.5, int, "parameter 'dpo.lr': expected an integer, got 3.5"),
    (True, int, "parameter 'dpo.lr': expected an integer, got True"),
    ("maybe", bool, "parameter 'dpo.lr': expected true or false, got 'maybe'"),
    (True, str, "parameter 'dpo.lr': expected a string, got True"),
    ("1,x", tuple[int, ...], r"parameter 'dpo.lr\[1\]': expected an integer, got 'x'"),
])
def test_a_bad_type_is_one_line_naming_the_key(value, hint, message):
    with pytest.raises(ParamsError, match=message) as e:
        cast(value, hint, "dpo.lr")
    assert "\n" not in str(e.value)


def test_every_section_of_params_yaml_builds_its_typed_objects():
    from vlic.training.dpo.setup import DPORun
    from vlic.training.dpo.trainer import DPOConfig

    for profile in (load_params(REPO / "params.yaml"),
                    merge(load_params(REPO / "params.yaml"), load_params(REPO / "params" / "paper.yaml"))):
        vlm = VLMSettings.from_params(profile["judges"], where="judges")
        assert vlm.concurrency == profile["judges"]["vlm_concurrency"] and isinstance(vlm.timeout_s, float)
        cfg = build(DPOConfig, profile["dpo"], where="dpo")
        assert isinstance(cfg.lr, float) and cfg.lr == float(profile["dpo"]["lr"])
        run = build(DPORun, {**profile["dpo"], "prepared_dir": "p", "models_dir": "m", "cache_path": "c"}, "dpo")
        assert run.referees == as_list(profile["dpo"]["referees"]) and isinstance(run.reward_seeds, int)
        sim = SimulationSettings.from_params(profile["rewards"], where="rewards")
        assert sim.lapse == profile["rewards"]["sim_lapse"] and isinstance(sim.sensitivity, float)
        assert section(profile, "data", DataConfig).crop_size == profile["data"]["crop_size"]
    with pytest.raises(ParamsError, match="parameter 'judges.vlm_concurrency': expected an integer ≥ 1, got 'many'"):
        VLMSettings.from_params({"vlm_concurrency": "many"}, where="judges")


def test_max_side_zero_means_full_size():
    assert section({"data": {"max_side": 0}}, "data", DataConfig).max_side is None


def test_paper_profile_overrides_only_existing_keys():
    base = load_params(REPO / "params.yaml")
    paper = load_params(REPO / "params" / "paper.yaml")
    merged = merge(base, paper)
    assert merged["data"]["holdout_collections"] == "kodak"
    with pytest.raises(ParamsError, match="'data.nope' does not exist"):
        merge(base, {"data": {"nope": 1}})


def test_set_args_for_dvc_exp_run():
    args = set_args(REPO / "params" / "paper.yaml", REPO / "params.yaml")
    pairs = dict(a.split("=", 1) for a in args[1::2])
    assert args[::2] == ["-S"] * len(pairs)
    assert pairs["data.holdout_collections"] == "kodak"
    assert pairs["data.crop_size"] == "256"
    assert pairs["data.holdout_images"] == "''"


def test_cli_prints_set_args():
    out = subprocess.run([sys.executable, "-m", "vlic.cli", "params", "set-args", "params/paper.yaml"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "-S data.holdout_collections=kodak" in out


def test_environment_yml_matches_pyproject_and_makefile():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    make_torch = re.search(r"^TORCH\s*\?=\s*(.+)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
    assert [p for p in pip if p.startswith("torch")] == make_torch
    assert "-e .[dev]" in pip
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert py.split("=")[1] >= project["requires-python"].lstrip(">=")


def test_environment_yml_installs_the_makefiles_no_deps_wheels():
    nodeps = re.search(r"^MACHINE_NODEPS\s*\?=\s*(.+)$", (REPO / "Makefile").read_text(), re.M).group(1).strip()
    assert f"pip install --no-deps {nodeps}" in (REPO / "environment.yml").read_text()


# --- issue #25, item 10: every numeric parameter has a range, checked in the one config layer ------------------------

def _bad(params: dict, key: str, allowed: str, got: str) -> None:
    from vlic.config import check_params

    with pytest.raises(ParamsError) as e:
        check_params(params)
    assert str(e.value) == f"parameter '{key}': expected {allowed}, got {got}", str(e.value)
    assert "\n" not in str(e.value)


def test_out_of_range_values_are_refused_with_the_key_and_the_range():
    _bad({"data": {"crop_size": -64}}, "data.crop_size", "an integer ≥ 1", "-64")
    _bad({"data": {"train_crops_per_image": -256}}, "data.train_crops_per_image", "an integer ≥ 1", "-256")
    _bad({"codec": {"steps": -300}}, "codec.steps", "an integer ≥ 1", "-300")
    _bad({"codec": {"lr": -1}}, "codec.lr", "a number > 0", "-1")
    _bad({"dpo": {"lr": float("nan")}}, "dpo.lr", "a number > 0", "nan")
    _bad({"dpo": {"lr": "nan"}}, "dpo.lr", "a number > 0", "'nan'")
    _bad({"dpo": {"beta": float("inf")}}, "dpo.beta", "a number > 0", "inf")
    _bad({"dpo": {"steps": "many"}}, "dpo.steps", "an integer ≥ 1", "'many'")
    _bad({"dpo": {"cfg_dropout": 1.5}}, "dpo.cfg_dropout", "a number in [0, 1]", "1.5")
    _bad({"dpo": {"eval_seeds": "0,-1"}}, "dpo.eval_seeds[1]", "an integer ≥ 0", "'-1'")
    # and the typed views refuse them too, whichever way a section is read
    with pytest.raises(ParamsError, match=r"^parameter 'data.crop_size': expected an integer ≥ 1, got -64$"):
        section({"data": {"crop_size": -64}}, "data", DataConfig)
    with pytest.raises(ParamsError, match=r"^parameter 'judges.vlm_timeout_s': expected a number > 0, got nan$"):
        VLMSettings.from_params({"vlm_timeout_s": float("nan")}, where="judges")
    with pytest.raises(ParamsError, match="expected a finite number, got 'inf'"):
        cast("inf", float, "anything")  # NaN and inf are never a parameter


def test_every_numeric_parameter_has_a_range_and_the_profiles_pass():
    from vlic.config import RANGES, check_params, flatten, is_numeric

    for profile in ("params.yaml", "params/paper.yaml"):
        params = load_params(REPO / profile)
        missing = [k for k, v in flatten(params).items() if is_numeric(v) and k not in RANGES]
        assert not missing, f"{profile}: numeric parameters without a range in vlic.config.RANGES: {missing}"
        check_params(params)
    check_params(merge(load_params(REPO / "params.yaml"), load_params(REPO / "params" / "paper.yaml")))


def test_set_args_and_params_check_refuse_out_of_range_values(tmp_path, capsys):
    from vlic.cli import main

    override = tmp_path / "many.yaml"
    override.write_text("dpo:\n  steps: many\n")
    assert main(["params", "set-args", str(override), "--base", str(REPO / "params.yaml")]) == 2
    err = capsys.readouterr().err
    assert "parameter 'dpo.steps': expected an integer ≥ 1, got 'many'" in err and err.count("\n") == 1
    assert main(["params", "check", str(REPO / "params.yaml"), str(REPO / "params" / "paper.yaml")]) == 0
    bad = tmp_path / "params.yaml"
    bad.write_text("data:\n  crop_size: -64\ndpo:\n  lr: .nan\n")
    assert main(["params", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "parameter 'data.crop_size': expected an integer ≥ 1, got -64" in err
    assert "parameter 'dpo.lr': expected a number > 0, got nan" in err


def test_a_chapter_refuses_to_start_on_an_out_of_range_params_yaml(tmp_path, monkeypatch):
    from vlic.notebooks import use_repo_root

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("codec:\n  lr: -1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VLIC_ROOT", raising=False)
    with pytest.raises(ParamsError, match=r"params.yaml: parameter 'codec.lr': expected a number > 0, got -1"):
        use_repo_root()
