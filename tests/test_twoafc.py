"""2AFC sets: BAPPS round trip, severity ladder ground truth, compressed pairs, BAPPS scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlic.data.distortions import FAMILIES, LADDERS, distort
from vlic.data.splits import random_crops
from vlic.data.twoafc import (
    TwoAFCSet,
    compressed_pairs,
    human_ceiling,
    pillow_reconstructor,
    read_bapps,
    severity_ladder,
    twoafc_credit,
    write_bapps,
)


@pytest.fixture(scope="module")
def photos():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64]
    base = np.stack([x * 3, y * 4, (x + y) * 2], -1) + rng.normal(0, 12, (48, 64, 3))
    return {"p": np.clip(base, 0, 255).astype(np.uint8), "q": np.clip(255 - base, 0, 255).astype(np.uint8)}


@pytest.fixture(scope="module")
def crops(photos):
    return random_crops(photos, size=32, per_image=2, seed=0)


def test_credit_is_the_bapps_formula():
    # score = (d0<d1)*(1-gt) + (d1<d0)*gt + 0.5*(d0==d1); preference < 0 means p0 chosen (d0 < d1)
    pref = np.array([-1, 1, 0, -2, np.nan])
    gt = np.array([0.2, 0.2, 0.9, 1.0, 0.3])
    assert twoafc_credit(pref, gt).tolist() == pytest.approx([0.8, 0.2, 0.5, 0.0, 0.5])
    assert human_ceiling([0.0, 1.0, 0.5]) == pytest.approx((1 + 1 + 0.5) / 3)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_ladder_is_monotone_in_mse(family, crops):
    img = crops.pixels[0]
    mse = [((distort(img, family, lv, seed=3).astype(float) - img) ** 2).mean() for lv in range(len(LADDERS[family]))]
    assert all(b > a for a, b in zip(mse, mse[1:])), mse


def test_severity_ladder_ground_truth_by_construction(crops):
    s = severity_ladder(crops, families=("blur", "noise"), seed=0)
    assert len(s) == 2 * len(crops) and s.has_ground_truth
    t = s.table()
    assert set(t["human"]) <= {0.0, 1.0}
    assert ((t["human"] == 1.0) == (t["level_p1"] < t["level_p0"])).all()  # p1 preferred iff milder
    assert t["gap"].between(1, 3).all()
    assert np.array_equal(s.ref[0], crops.pixels[0])
    with pytest.raises(ValueError, match="unknown distortion families"):
        severity_ladder(crops, families=("sepia",))


def test_bapps_round_trip(tmp_path, crops):
    s = severity_ladder(crops, families=("jpeg", "colour"), seed=1)
    write_bapps(s, tmp_path / "ladder")
    assert (tmp_path / "ladder" / "jpeg" / "judge" / "000000.npy").is_file()
    back = read_bapps(tmp_path / "ladder")
    assert back.family == sorted(s.family) and len(back) == len(s)
    for fam in ("jpeg", "colour"):
        i = s.family.index(fam)
        j = back.family.index(fam)
        assert np.array_equal(back.p1[j], s.p1[i]) and back.human[j] == s.human[i]
    assert "level_p0" in back.meta
    assert len(read_bapps(tmp_path / "ladder", families=["jpeg"], max_per_family=2)) == 2
    with pytest.raises(FileNotFoundError, match="has no families"):
        read_bapps(tmp_path / "ladder", families=["cnn"])


def test_read_bapps_reads_the_original_layout(tmp_path):
    """BAPPS val: <family>/{ref,p0,p1}/<id>.png and judge/<id>.npy holding the fraction of humans choosing p1."""
    from vlic.images import save_png

    for k in range(2):
        for part in ("ref", "p0", "p1"):
            save_png(np.full((64, 64, 3), 10 * k, np.uint8), tmp_path / "cnn" / part / f"{k:06d}.png")
        (tmp_path / "cnn" / "judge").mkdir(exist_ok=True)
        np.save(tmp_path / "cnn" / "judge" / f"{k:06d}.npy", np.array([0.25 + 0.5 * k]))
    s = read_bapps(tmp_path)
    assert s.family == ["cnn", "cnn"] and s.human.tolist() == [0.25, 0.75]
    np.save(tmp_path / "cnn" / "judge" / "000000.npy", np.array([3.0]))
    with pytest.raises(ValueError, match="expected a fraction"):
        read_bapps(tmp_path)


def test_compressed_pairs_cut_matching_regions_of_whole_photo_reconstructions(photos, crops):
    def grey(img, bpp):
        return np.full_like(img, 128), 0.1

    def same(img, bpp):
        return img.copy(), 0.2

    s = compressed_pairs(photos, crops, {"grey": grey, "same": same}, targets_bpp=[0.1, 0.2], seed=0)
    assert len(s) == 2 * len(crops) and not s.has_ground_truth
    t = s.table()
    assert set(t["family"]) == {"grey-vs-same"}
    for i in range(len(s)):
        exact = s.p0[i] if t.loc[i, "codec_p0"] == "same" else s.p1[i]
        assert np.array_equal(exact, s.ref[i])
    with pytest.raises(ValueError, match="at least two codecs"):
        compressed_pairs(photos, crops, {"same": same}, [0.1])


def test_pillow_reconstructors_stay_within_the_target(photos):
    for codec in ("jpeg", "webp", "avif"):
        rec, bpp = pillow_reconstructor(codec)(photos["p"], 4.0)
        assert rec.shape == photos["p"].shape and 0 < bpp <= 4.0


def test_limit_and_subset_keep_fields_aligned(crops):
    s = severity_ladder(crops, families=("noise",), seed=0).limit(2, seed=0)
    assert len(s) == 2 and len(s.meta) == 2 and isinstance(s, TwoAFCSet)
    assert isinstance(s.table(), pd.DataFrame)
