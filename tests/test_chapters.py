"""The chapters' plumbing (``vlic.chapters``): parameters picked by name with a one-line error for a missing one, each
chapter's small pieces of logic pinned with real values. The chapters themselves run in tests/test_notebooks.py."""

from __future__ import annotations

import pytest

from vlic.chapters import dpo
from vlic.chapters.parameters import open_chapter, pick


def test_pick_takes_the_named_parameters_in_order_and_names_a_missing_one():
    assert pick({"b": 2, "a": 1, "other": 3}, ("a", "b"), "04_dpo_posttrain") == {"a": 1, "b": 2}
    with pytest.raises(NameError, match=r"^chapter 04_dpo_posttrain needs its parameter 'seed', which is not defined"):
        pick({"a": 1}, ("a", "seed"), "04_dpo_posttrain")


def test_open_chapter_makes_the_folders_and_sets_threads_only_when_asked(tmp_path, monkeypatch):
    import torch

    import vlic.notebooks

    monkeypatch.setattr(vlic.notebooks, "use_repo_root", lambda: None)
    before = torch.get_num_threads()
    ns = {"results_dir": str(tmp_path / "res"), "threads": 1, "unused": 0}
    try:
        torch.set_num_threads(2)
        o = open_chapter(ns, ("results_dir", "threads"), "05_evaluate")
        assert o.params == {"results_dir": str(tmp_path / "res"), "threads": 1}
        assert o.figures == tmp_path / "res" / "figures" and o.figures.is_dir()
        assert torch.get_num_threads() == 2              # threads per worker process: the notebook's own count stays
        open_chapter(ns, ("results_dir", "threads"), "05_evaluate", set_threads=True)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(NameError, match=r"^chapter 05_evaluate needs its parameter 'threads'"):
        open_chapter({"results_dir": str(tmp_path)}, ("results_dir", "threads"), "05_evaluate")


def test_dpo_setup_reads_every_parameter_of_the_chapter_but_the_oracle_ones(repo):
    from vlic.notebooks import parameter_names

    names = parameter_names(repo / "notebooks" / "04_dpo_posttrain.ipynb")
    assert list(dpo.PARAMETERS) == [n for n in names if not n.startswith("oracle_")]


def test_dpo_claim_reads_the_seed_summary():
    nested = {"training_judge": {"n": 3, "mean": 0.4219, "ci_low": 0.3831, "ci_high": 0.4607, "above_half": 0,
                                 "groups": 3, "runs": 9, "runs_above_half": 2},
              "ms_gmsd": {"n": 3, "mean": 0.4271, "ci_low": 0.3486, "ci_high": 0.5055, "above_half": 0, "groups": 3,
                          "runs": 9, "runs_above_half": 2}}
    assert dpo.claim(nested, ["training_judge", "ms_gmsd", "psnr"], nested=True) == [
        "training_judge: mean win-rate 0.422, 95 % t-interval [0.383, 0.461] over 3 pre-trained models × 3 DPO seeds "
        "— below chance; 2 of 9 runs above 0.5",
        "ms_gmsd: mean win-rate 0.427, 95 % t-interval [0.349, 0.505] over 3 pre-trained models × 3 DPO seeds — not "
        "distinguishable from chance; 2 of 9 runs above 0.5"]
    flat = {"psnr": {"n": 3, "mean": 0.6, "ci_low": 0.55, "ci_high": 0.65, "above_half": 3}}
    assert dpo.claim(flat, ["psnr"], nested=False) == [
        "psnr: mean win-rate 0.600, 95 % t-interval [0.550, 0.650] over 3 DPO seeds — above chance; 3 of 3 runs above 0.5"]
    assert dpo.claim({}, ["psnr"], nested=False) == []


@pytest.mark.parametrize("module,notebook", [("pretrain", "02_pretrain_codec"), ("evaluate", "05_evaluate"),
                                           ("machine_vision", "06_machine_vision"),
                                           ("low_level_vision", "07_low_level_vision"),
                                           ("reward_ablations", "03_reward_ablations"),
                                           ("validate_judges", "01_vlm_2afc_validation"), ("data", "00_data")])
def test_setup_reads_every_parameter_of_its_chapter(repo, module, notebook):
    import importlib

    from vlic.notebooks import parameter_names

    chapter = importlib.import_module(f"vlic.chapters.{module}")
    assert chapter.CHAPTER == notebook
    assert list(chapter.PARAMETERS) == parameter_names(repo / "notebooks" / f"{notebook}.ipynb")


def test_json_tree_writes_nested_results_as_json_values():
    import json

    import numpy as np

    from vlic.notebooks import json_tree

    tree = {"a": (np.float32(0.1234567), np.int64(3), np.bool_(True)), 2: {"nan": float("nan"), "inf": np.inf},
            "s": "x", "n": None, "f": 1.000004}
    out = json_tree(tree)
    assert out == {"a": [0.12346, 3, True], "2": {"nan": None, "inf": None}, "s": "x", "n": None, "f": 1.0}
    assert type(out["a"][1]) is int and type(out["a"][2]) is bool
    json.dumps(out, allow_nan=False)          # valid JSON, nothing numpy left


def test_cpu_seconds_counts_this_process_and_its_waited_for_children():
    import subprocess
    import sys

    from vlic.processes import cpu_seconds

    t0 = cpu_seconds()
    subprocess.run([sys.executable, "-c", "s = 0\nfor i in range(3_000_000): s += i"], check=True)
    assert cpu_seconds() - t0 > 0.05          # the child's CPU time arrives once it has been waited for
