"""The machine-task suite (chapter 06): each evaluator pinned on a fixed image with its real pre-trained model, the
scoring arithmetic pinned on hand-computed values, and the suite end to end on a tiny image set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage import data

from vlic.machine import availability, classification, faces, ocr, retrieval, suite
from vlic.machine import images as machine_images

needs_effnet = pytest.mark.skipif(classification.availability() is not None,
                                  reason=str(classification.availability()))
needs_ocr = pytest.mark.skipif(ocr.availability() is not None, reason=str(ocr.availability()))
needs_faces = pytest.mark.skipif(faces.availability() is not None, reason=str(faces.availability()))


def test_availability_names_every_task():
    status = availability()
    assert set(status) == set(suite.TASKS)
    assert all(v is None or (isinstance(v, str) and "\n" not in v) for v in status.values())


def test_a_missing_package_is_a_one_line_reason_not_a_crash(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    monkeypatch.setitem(sys.modules, "mediapipe.python.solutions", None)
    status = availability()
    assert "rapidocr-onnxruntime" in status["ocr"] and "mediapipe" in status["faces"]
    assert all("\n" not in status[t] for t in ("ocr", "faces", "person_mask"))


# -- classification -----------------------------------------------------------------------------------------------

@needs_effnet
def test_classification_of_chelsea_and_agreement_with_itself():
    p = classification.probabilities([data.chelsea(), data.coffee()])
    assert p.shape == (2, 1000) and np.allclose(p.sum(1), 1)
    assert classification.top_classes(p[0], 1)[0][0] == "Egyptian cat"
    assert classification.top_classes(p[0], 1)[0][1] == pytest.approx(0.7738, abs=2e-3)   # = effnet.classify
    assert classification.top_classes(p[1], 1)[0][0] == "espresso"
    same = classification.agreement(p[0], p[0])
    assert same == {"top1": 1.0, "top5": 1.0, "kl": pytest.approx(0.0, abs=1e-9)}
    cross = classification.agreement(p[0], p[1])      # a cat is not an espresso
    assert cross["top1"] == 0.0 and cross["top5"] == 0.0 and cross["kl"] > 5


def test_agreement_arithmetic():
    ref = np.array([0.5, 0.3, 0.1, 0.05, 0.03, 0.02])
    dec = np.array([0.2, 0.4, 0.1, 0.1, 0.1, 0.1])
    a = classification.agreement(ref, dec)
    assert a["top1"] == 0.0 and a["top5"] == 1.0
    assert a["kl"] == pytest.approx(float(np.sum(ref * np.log(ref / dec))), rel=1e-9)
    dec6 = np.array([0.01, 0.3, 0.2, 0.2, 0.19, 0.1])   # class 0 ranks 6th
    assert classification.agreement(ref, dec6)["top5"] == 0.0
    with pytest.raises(ValueError, match="shapes"):
        classification.agreement(ref, dec[:3])


# -- retrieval ----------------------------------------------------------------------------------------------------

def test_retrieval_ranks_and_scores():
    gallery = np.eye(4)
    queries = np.array([[1.0, 0, 0, 0], [0.6, 0.8, 0, 0], [0.8, 0, 0.6, 0]])
    s = retrieval.scores(gallery, queries, [0, 1, 2])
    assert retrieval.ranks(gallery, queries, [0, 1, 2]).tolist() == [1, 1, 2]
    assert s["recall1"].tolist() == [1.0, 1.0, 0.0] and s["ap"].tolist() == [1.0, 1.0, 0.5]


def test_grid_boxes_spread_and_refuse_small_images():
    boxes = retrieval.grid_boxes(128, 256, 64, 0)
    assert boxes == [(0, 0), (0, 64), (0, 128), (0, 192), (64, 0), (64, 64), (64, 128), (64, 192)]
    assert retrieval.grid_boxes(128, 256, 64, 3) == [(0, 0), (64, 0), (64, 192)]   # boxes 0, 4, 7 of 8
    with pytest.raises(ValueError, match="does not fit"):
        retrieval.grid_boxes(32, 256, 64, 0)


@needs_effnet
def test_retrieval_finds_each_original_patch_of_astronaut():
    px = data.astronaut()[::4, ::4]      # 128 px
    boxes = retrieval.grid_boxes(*px.shape[:2], 32, 0)
    patches = [px[y : y + 32, x : x + 32] for y, x in boxes]
    g = retrieval.embed(patches, 64)
    assert g.shape == (16, 1280) and np.allclose(np.linalg.norm(g, axis=1), 1)
    s = retrieval.scores(g, g, np.arange(16))
    assert s["recall1"].mean() == 1.0
    noisy = [np.clip(p.astype(int) + np.random.default_rng(0).integers(-60, 61, p.shape), 0, 255).astype(np.uint8)
             for p in patches]
    assert retrieval.scores(g, retrieval.embed(noisy, 64), np.arange(16))["ap"].mean() < 1.0


# -- OCR ----------------------------------------------------------------------------------------------------------

def test_cer_and_levenshtein():
    assert ocr.levenshtein("kitten", "sitting") == 3
    assert ocr.cer("Kodak 2991", "Kodak 2991") == 0.0
    assert ocr.cer("Kodak2991", "Kodak 2991") == 0.0          # whitespace carries no information
    assert ocr.cer("kodak 2991", "Kodak 2991") == pytest.approx(1 / 9)   # case-sensitive
    assert ocr.cer("", "STOP") == 1.0 and ocr.cer("STOPSTOP", "STOP") == 1.0
    with pytest.raises(ValueError, match="empty"):
        ocr.cer("x", " ")


def test_render_places_known_lines_and_strings_are_reproducible():
    assert ocr.strings(3, seed=0) == ocr.strings(3, seed=0) != ocr.strings(3, seed=1)
    img, lines = ocr.render(data.coffee()[:256, :384], ["Kodak 2991", "exit 44"], [16, 28])
    assert img.shape == (256, 384, 3) and [ln.size for ln in lines] == [16, 28]
    assert lines[0].box[3] < lines[1].box[1]              # top to bottom, no overlap
    assert (img != data.coffee()[:256, :384]).any()
    with pytest.raises(ValueError, match="wider"):
        ocr.render(data.coffee()[:64, :64], ["a very long line"], [20])


def test_line_texts_assigns_boxes_to_lines_left_to_right():
    lines = [ocr.TextLine("AB 12", 16, (8, 10, 80, 26)), ocr.TextLine("CD", 28, (8, 60, 60, 88))]
    dets = [((40, 12, 70, 25), "12", 0.9), ((9, 11, 35, 26), "AB", 0.9), ((9, 62, 50, 86), "CD", 0.9),
            ((200, 200, 220, 210), "zz", 0.5)]
    assert ocr.line_texts(dets, lines) == ["AB 12", "CD zz"]


@needs_ocr
def test_ocr_reads_a_rendered_string_and_loses_it_under_heavy_blur():
    from PIL import Image, ImageFilter

    img, lines = ocr.render(data.coffee()[:128, :384], ["Kodak 2991"], [30])
    read = ocr.line_texts(ocr.reader()(img), lines)
    assert ocr.cer(read[0], "Kodak 2991") == 0.0
    blurred = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(6)))
    assert ocr.cer(ocr.line_texts(ocr.reader()(blurred), lines)[0], "Kodak 2991") > 0.5


# -- faces --------------------------------------------------------------------------------------------------------

def test_average_precision_arithmetic():
    gt = [(0, 0, 10, 10), (20, 20, 30, 30)]
    assert faces.average_precision(gt, [((0, 0, 10, 10), 0.9), ((20, 20, 30, 30), 0.8)]) == 1.0
    # a false positive ranked first: precision 1/2 at recall 1/2, 2/3 at recall 1 → AP = 2/3
    dets = [((50, 50, 60, 60), 0.95), ((0, 0, 10, 10), 0.9), ((20, 20, 30, 30), 0.8)]
    assert faces.average_precision(gt, dets) == pytest.approx(2 / 3)
    assert faces.average_precision(gt, [((0, 0, 10, 10), 0.9), ((0, 0, 10, 10), 0.8)]) == 0.5   # duplicate = FP
    assert faces.average_precision(gt, [((0, 0, 10, 16), 0.9)]) == 0.5   # IoU 100/160 ≥ 0.5: one of two found
    assert faces.average_precision(gt, [((0, 0, 10, 25), 0.9)]) == 0.0   # IoU 100/250 < 0.5
    assert faces.average_precision(gt, []) == 0.0
    assert np.isnan(faces.average_precision([], dets))
    assert faces.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[1:3] = True
    assert faces.mask_iou(a, b) == pytest.approx(4 / 12)
    assert np.isnan(faces.mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)))


@needs_faces
def test_blazeface_finds_the_face_in_astronaut_and_grace_hopper():
    import matplotlib.cbook

    from vlic.images import load_rgb

    found = faces.reference_faces(data.astronaut())
    assert len(found) == 1
    (x0, y0, x1, y1), score = found[0]
    assert score > 0.85 and 165 < x0 < 185 and 60 < y0 < 80 and 265 < x1 < 290 and 160 < y1 < 185
    grace = load_rgb(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).pixels
    assert len(faces.reference_faces(grace)) == 1
    assert faces.reference_faces(data.coffee()) == []
    mask = faces.person_mask(data.astronaut())
    assert 0.2 < mask.mean() < 0.8 and faces.mask_iou(mask, faces.person_mask(data.astronaut())) == 1.0
    assert faces.average_precision(found, faces.detect(data.astronaut())) == 1.0


# -- the suite ----------------------------------------------------------------------------------------------------

def _scores() -> pd.DataFrame:
    rows = []
    for codec, family, base in (("vlic", "learned", 0.5), ("vlic-dpo", "learned", 0.8), ("jpeg", "classical", 0.6)):
        for k, photo in enumerate("abcd"):
            rows.append({"codec": codec, "family": family, "rate_point": "low", "photo": photo, "seed": 0,
                         "matched": codec != "jpeg", "bpp": 0.1 + 0.01 * k, "top1": base + 0.05 * k,
                         "cer": np.nan if photo != "d" else 1 - base})
    return pd.DataFrame(rows)


def test_task_table_skips_images_a_metric_does_not_apply_to():
    t = suite.task_table(_scores(), ["top1", "cer"], n_boot=200)
    top1 = t[(t.codec == "vlic") & (t.metric == "top1")].iloc[0]
    assert top1.images == 4 and top1.value == pytest.approx(0.575) and top1.bpp == pytest.approx(0.115)
    assert top1.ci_low <= top1.value <= top1.ci_high and top1.task == "classification"
    cer = t[(t.codec == "vlic") & (t.metric == "cer")].iloc[0]
    assert cer.images == 1 and cer.value == pytest.approx(0.5) and np.isnan(cer.ci_low) and cer.bpp == pytest.approx(0.13)
    assert not t[t.codec == "jpeg"].matched.any()


def test_paired_difference_and_the_answers_read_from_it():
    df = _scores()
    d = suite.paired(df, "vlic-dpo", "vlic", "low", ["top1", "cer"], n_boot=200)
    assert d["top1"]["delta"] == pytest.approx(0.3) and d["top1"]["better"] == "vlic-dpo"
    assert d["top1"]["ci_low"] == pytest.approx(0.3) and d["top1"]["images"] == 4
    assert d["cer"]["images"] == 1 and d["cer"]["better"] == "none"    # one image: no interval, no verdict
    text = suite.dpo_answer(d, "low")
    assert "top-1 agreement: +0.300" in text and "→ helps" in text and "no detectable difference" in text
    table = suite.task_table(df, ["top1"], n_boot=100)
    (sentence,) = suite.classical_answer(table, "vlic", "low")
    assert "trails the best classical codec (none met the budget" in sentence and "jpeg 0.675" in sentence
    within = df.copy()   # a classical codec that scores higher but overspends is not the one compared with
    within.loc[within.codec == "vlic-dpo", ["codec", "family", "matched"]] = ["avif", "classical", False]
    within.loc[within.codec == "jpeg", "matched"] = True
    (sentence,) = suite.classical_answer(suite.task_table(within, ["top1"], n_boot=50), "vlic", "low")
    assert "trails the best classical codec within the budget, jpeg 0.675" in sentence
    with pytest.raises(ValueError, match="no rows"):
        suite.paired(df, "vlic", "avif", "low", ["top1"])


@needs_effnet
@needs_ocr
@needs_faces
def test_suite_end_to_end_on_packaged_photos(tmp_path):
    from vlic.eval.benchmark import baseline_reconstructions
    from vlic.images import save_png

    (tmp_path / "holdout").mkdir()
    save_png(data.astronaut()[::2, ::2], tmp_path / "holdout" / "astronaut.png")
    save_png(data.coffee()[::2, ::2], tmp_path / "holdout" / "coffee.png")
    assert machine_images.expand(["holdout", "camera", "coffee"], tmp_path) == ["astronaut", "coffee", "camera"]
    imgs = machine_images.build(tmp_path, ["holdout", "camera"], ["coffee"], [16, 28], text_size=(256, 128))
    assert imgs.source == {"astronaut": "holdout", "coffee": "holdout", "camera": "package skimage"}
    assert imgs.photos["camera"].shape == (512, 512, 3) and imgs.text["text:coffee"].shape == (128, 256, 3)
    with pytest.raises(FileNotFoundError, match="nowhere|not in"):
        machine_images.load_photo("nowhere", tmp_path)
    ref = suite.prepare(imgs, suite.TASKS, patch=32, per_image=4, retrieval_input=64)
    assert set(ref.faces) == {"astronaut", "camera"} and ref.gallery.shape == (12, 1280)
    top = suite.originals(imgs, ref)
    photos = top[top.kind == "photo"]
    assert (photos.top1 == 1).all() and (photos.recall1 == 1).all() and photos.kl.max() < 1e-9
    assert top.set_index("photo").loc["text:coffee", "cer"] == 0.0
    rec = baseline_reconstructions(imgs.all(), {"q": {p: 0.3 for p in imgs.all()}}, ("jpeg",), downscale=False)
    df = suite.score(rec, imgs, ref)
    assert len(df) == 4 and set(df.kind) == {"photo", "text"}
    assert df.face_ap.notna().sum() == 2 and df.cer.notna().sum() == 1 and "cer_16px" in df
    assert ((df.top1.dropna() == 0) | (df.top1.dropna() == 1)).all() and (df.kl.dropna() > 0).all()


@needs_faces
def test_mediapipe_writes_nothing_to_stderr():
    """Its C++ logs (TFLite's XNNPACK line, absl's feedback-manager warnings) would land in every executed chapter 06
    as stray stderr: a fresh process detects a face and a person and its stderr stays empty."""
    import os
    import subprocess
    import sys

    code = ("from skimage import data; from vlic.machine import faces; px = data.astronaut(); "
            "print(len(faces.detect(px)), round(float(faces.person_mask(px).mean()), 2))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "1" and r.stderr == ""


def test_chapter_06_figures_show_at_most_six_codecs_each():
    from vlic.machine.figures import codec_groups

    codecs = ["vlic", "vlic-dpo", "ft-baseline", "ft-sc_flow_mid", "ft-sc_effnet", "ft-tags", "ft-sc_tags", "jpeg",
              "jpeg-ds", "webp", "webp-ds", "avif", "avif-ds"]
    groups = codec_groups(codecs)
    assert list(groups) == ["machine_bpp.png", "machine_bpp_downscaled.png", "machine_bpp_finetunes.png"]
    assert groups["machine_bpp.png"][1] == ["vlic", "vlic-dpo", "jpeg", "webp", "avif"]
    assert groups["machine_bpp_downscaled.png"][1] == ["jpeg", "jpeg-ds", "webp", "webp-ds", "avif", "avif-ds"]
    assert groups["machine_bpp_finetunes.png"][1][0] == "vlic" and len(groups["machine_bpp_finetunes.png"][1]) == 6
    many = codec_groups(["vlic"] + [f"ft-{k}" for k in range(8)])["machine_bpp_finetunes.png"]
    assert len(many[1]) == 6 and "first 6 of 9" in many[0]
