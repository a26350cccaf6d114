"""`vlic results summary`: each chapter's headline read from its results file — numbers as written, a missing file
said to be missing, a file without the field said to lack it — and the README's chapters table rendered from the
same rows (and checked against the committed results)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlic import study_summary
from vlic.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_answers_read_the_numbers_the_stages_wrote(tmp_path):
    (tmp_path / "data.json").write_text(json.dumps({"n_train_images": 8, "n_holdout_images": 3, "n_train_crops": 2048,
                                                    "crop_size": 64}))
    (tmp_path / "dpo.json").write_text(json.dumps({
        "seeds": {"winrate": {"training_judge": {"n": 3, "runs": 9, "mean": 0.4123, "ci_low": 0.3691,
                                                 "ci_high": 0.4552}}},
        "oracle": {"passed": False, "oracle_winrate_mean": 0.47, "flipped_winrate_mean": 0.3, "null_winrate_mean": 0.2}}))
    (tmp_path / "rewards.json").write_text(json.dumps({"answers": ["nothing"]}))
    rows = {r["stage"]: r for r in study_summary.answers(tmp_path)}
    assert list(rows) == [c.stage for c in study_summary.CHAPTERS]
    assert rows["data"]["answer"] == "8 training and 3 holdout photos; 2048 training crops of 64 px"
    assert rows["dpo"]["answer"] == ("training-judge win-rate 0.412 [0.369, 0.455] over 9 runs (below chance); oracle "
                                     "check FAILED: PSNR 0.470, flipped 0.300, coin 0.200")
    assert rows["evaluate"]["answer"].startswith("not run yet") and "dvc repro evaluate" in rows["evaluate"]["answer"]
    assert rows["reward_ablations"]["answer"] == "nothing"            # no training-signal sentence: the first answer
    (tmp_path / "machine.json").write_text(json.dumps({"answers": {}}))
    bad = {r["stage"]: r for r in study_summary.answers(tmp_path)}["machine_vision"]["answer"]
    assert "lacks what the summary reads" in bad and "dvc repro machine_vision" in bad


def test_the_readme_table_is_rendered_between_its_markers_and_checked(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "data.json").write_text(json.dumps({"n_train_images": 1, "n_holdout_images": 2,
                                                                "n_train_crops": 3, "crop_size": 4}))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{study_summary.START}\nold | table\n{study_summary.END}\n\nrest\n")
    args = ["results", "summary", "--results", str(tmp_path / "results")]
    assert main([*args, "--check", "--readme", str(readme)]) == 1
    assert "disagrees" in capsys.readouterr().err
    assert main([*args, "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "| 00 | which photos, split how? | 1 training and 2 holdout photos; 3 training crops of 4 px |" in text
    assert text.endswith(f"{study_summary.END}\n\nrest\n") and "old | table" not in text
    assert main([*args, "--check", "--readme", str(readme)]) == 0
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="no chapters-table markers"):
        study_summary.render_readme(tmp_path / "results", readme)


def test_the_committed_readme_table_matches_the_committed_results(tmp_path):
    """Either the working tree's results (just re-rendered) or the committed ones (a rerun on another machine rewrites
    results/; the README still shows the committed run, which is what it was rendered from)."""
    from vlic.reproduce import committed_json

    if not (REPO / "results" / "data.json").is_file():
        pytest.skip("no results/ in this checkout yet (run the study)")
    committed = tmp_path / "committed"
    committed.mkdir()
    for ch in study_summary.CHAPTERS:
        d = committed_json(f"results/{ch.results}", repo=REPO)
        if d is not None:
            (committed / ch.results).write_text(json.dumps(d))
    assert any(study_summary.render_readme(r, REPO / "README.md", check=True) for r in (REPO / "results", committed)), \
        "README.md's chapters table disagrees with results/ (working tree and committed): run `vlic results summary --readme`"


def test_the_printed_summary_names_every_chapter_and_its_report(capsys):
    assert main(["results", "summary", "--results", str(REPO / "results")]) == 0
    out = capsys.readouterr().out
    for ch in study_summary.CHAPTERS:
        assert f"{ch.number} {ch.question}" in out and ch.report in out


def test_the_readme_is_a_front_door_whose_links_resolve():
    """README.md stays short (≤ 250 lines); every relative link in it and in docs/ points to a file that exists
    (links into what the study writes — reports/, results/, models/, data/ — exist only after `make study`)."""
    import re

    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250, f"README.md has {len(readme.splitlines())} lines (the front door: ≤ 250)"
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://", "reports/", "results/", "models/", "data/")):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def _dpo_results() -> dict:
    w = {"winrate": 0.388, "ci_low": 0.3203, "ci_high": 0.4531}
    return {"reward": "haarpsi ∧ deep_effnet", "referee": "ms_gmsd", "heldout_patches": 96, "heldout_seeds": 2,
            "heldout": {"training_judge": w, "ms_gmsd": {"winrate": 0.2865, "ci_low": 0.2031, "ci_high": 0.3646}},
            "claim": ["training_judge: mean win-rate 0.422, 95 % t-interval [0.383, 0.461] — below chance"],
            "seeds": {"winrate": {"training_judge": {"n": 3, "runs": 9, "mean": 0.4219, "ci_low": 0.3831,
                                                     "ci_high": 0.4607}}},
            "oracle": {"judge": "psnr", "run_count": 6, "passed": False, "oracle_winrate_mean": 0.479,
                       "flipped_winrate_mean": 0.286, "null_winrate_mean": 0.268},
            "bpp_pretrained": 0.048817, "bpp_dpo": 0.048776, "bpp_change_percent": -0.083, "tokens_changed": 0.02181,
            "steps": 120, "buffer": {"acceptance_rate": 0.58203125, "judged": 256},
            "implicit_accuracy_second_half": 0.8104}


def test_what_we_found_is_the_headline_then_the_findings_with_intervals(tmp_path):
    (tmp_path / "dpo.json").write_text(json.dumps(_dpo_results()))
    md = study_summary.what_we_found("04", tmp_path)
    lines = md.splitlines()
    assert lines[0] == "## What we found"
    headline = {r["chapter"]: r["answer"] for r in study_summary.answers(tmp_path)}["04"]
    assert lines[2] == f"*Does Diffusion-DPO make the decoder better by its judges?* {headline}."
    assert ("the training judge (haarpsi ∧ deep_effnet) prefers the DPO decoder at a win-rate of 0.388 [0.320, 0.453] "
            "(below chance); the referee ms_gmsd, never trained on, at 0.286 [0.203, 0.365] (below chance).") in md
    assert "- **Across runs**, training_judge: mean win-rate 0.422, 95 % t-interval [0.383, 0.461] — below chance." in lines
    assert "0.479 with psnr as the reward, 0.286 with it flipped, with a coin for a judge 0.268 — FAILED" in md
    assert "0.04882 → 0.04878 bpp (-0.08 %), 2.18 % of latent tokens changed" in md
    assert lines[-1] == f"(Every number above is read from `{tmp_path / 'dpo.json'}`.)"


def test_what_we_found_says_what_is_missing(tmp_path):
    assert "not run yet" in study_summary.what_we_found("04", tmp_path)
    (tmp_path / "dpo.json").write_text(json.dumps({**_dpo_results(), "oracle": {}}))
    md = study_summary.what_we_found("04", tmp_path)
    assert "lacks what the summary reads" in md           # the headline's own message, once
    with pytest.raises(KeyError, match="no chapter '09'"):
        study_summary.what_we_found("09", tmp_path)


@pytest.mark.parametrize("chapter", study_summary.CHAPTERS, ids=lambda c: c.number)
def test_what_we_found_reads_the_committed_results(chapter):
    """Every chapter's closing section renders from the results the study wrote, all of its findings included."""
    if not (REPO / "results" / chapter.results).is_file():
        pytest.skip(f"no results/{chapter.results} in this checkout (run the study)")
    md = study_summary.what_we_found(chapter.number, REPO / "results")
    assert md.startswith("## What we found\n") and "lacks what" not in md
    if chapter.findings is not None:
        assert sum(line.startswith("- ") for line in md.splitlines()) >= 2, "findings beyond the headline"
