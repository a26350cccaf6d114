"""Raw data assembly, the split by image, crops and the data stage's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vlic.data.collections import list_images
from vlic.data.packaged import PHOTOS, PackagedDataError, PackagedPhoto, assemble, sha256_of
from vlic.data.prepare import DataConfig, load_split, prepare
from vlic.data.splits import Crops, crop_statistics, random_crops, split_by_image


def test_assembly_copies_every_photo_byte_for_byte(packaged_raw):
    folder = packaged_raw / "packaged"
    for photo in PHOTOS:
        path = folder / f"{photo.name}{photo.suffix}"
        assert path.stat().st_size == photo.size
        assert sha256_of(path) == photo.sha256
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [p["name"] for p in manifest["photos"]] == [p.name for p in PHOTOS]
    assert len(PHOTOS) >= 10  # "about a dozen real photos"


def test_assembly_is_idempotent_and_repairs(packaged_raw, tmp_path):
    raw = tmp_path / "raw"
    assemble(raw)
    victim = raw / "packaged" / "coffee.png"
    victim.write_bytes(b"damaged")
    assemble(raw)
    assert sha256_of(victim) == next(p for p in PHOTOS if p.name == "coffee").sha256


def test_assembly_refuses_foreign_files(tmp_path):
    assemble(tmp_path)
    (tmp_path / "packaged" / "stray.txt").write_text("x")
    with pytest.raises(PackagedDataError, match="stray.txt"):
        assemble(tmp_path)


def test_a_changed_package_file_is_named(tmp_path, monkeypatch):
    import vlic.data.packaged as packaged

    wrong = PackagedPhoto("coffee", "skimage", "data", "coffee.png", "0" * 64, 1, "test")
    monkeypatch.setattr(packaged, "PHOTOS", (wrong,))
    with pytest.raises(PackagedDataError, match="coffee.*ships a different file"):
        assemble(tmp_path)


def test_a_missing_package_is_named(tmp_path, monkeypatch):
    import vlic.data.packaged as packaged

    ghost = PackagedPhoto("ghost", "no_such_package_xyz", "data", "g.png", "0" * 64, 1, "test")
    monkeypatch.setattr(packaged, "PHOTOS", (ghost,))
    with pytest.raises(PackagedDataError, match="no_such_package_xyz.*not installed"):
        assemble(tmp_path)


def test_list_images_explains_how_to_fill_a_missing_collection(tmp_path):
    with pytest.raises(FileNotFoundError, match="vlic data download kodak"):
        list_images(tmp_path, "kodak")
    with pytest.raises(FileNotFoundError, match="make data"):
        list_images(tmp_path, "packaged")


def test_split_by_image():
    s = split_by_image(["a", "b", "c", "d"], ["c", "a"])
    assert s.train == ("b", "d") and s.holdout == ("a", "c")
    with pytest.raises(ValueError, match="not among"):
        split_by_image(["a", "b"], ["z"])
    with pytest.raises(ValueError, match="no training"):
        split_by_image(["a"], ["a"])
    with pytest.raises(ValueError, match="no holdout"):
        split_by_image(["a", "b"], [])


def test_random_crops_are_seeded_and_inside_their_image():
    rng = np.random.default_rng(0)
    imgs = {"x": rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), "y": rng.integers(0, 256, (33, 33, 3), dtype=np.uint8)}
    a = random_crops(imgs, 16, 5, seed=3)
    b = random_crops(imgs, 16, 5, seed=3)
    assert np.array_equal(a.pixels, b.pixels) and np.array_equal(a.box, b.box)
    assert len(a) == 10 and a.names == ("x", "y")
    for k in range(len(a)):
        name = a.names[a.image[k]]
        y, x = a.box[k]
        assert np.array_equal(a.pixels[k], imgs[name][y : y + 16, x : x + 16])
    with pytest.raises(ValueError, match="smaller than the crop size"):
        random_crops(imgs, 34, 1, seed=0)


def test_crops_save_load_round_trip(tmp_path):
    c = random_crops({"x": np.arange(20 * 20 * 3, dtype=np.uint8).reshape(20, 20, 3)}, 8, 3, seed=1)
    c.save(tmp_path / "c.npz")
    d = Crops.load(tmp_path / "c.npz")
    assert np.array_equal(c.pixels, d.pixels) and d.names == ("x",)


def test_crop_statistics_of_a_flat_crop():
    c = Crops(np.full((1, 4, 4, 3), 255, np.uint8), np.zeros(1, np.int64), np.zeros((1, 2), np.int64), ("w",))
    (row,) = crop_statistics(c)
    assert row == {"image": "w", "luminance_mean": pytest.approx(1.0), "luminance_std": 0.0, "gradient_mean": 0.0}


def test_prepare_never_crops_holdout_photos_for_training(packaged_raw, tmp_path):
    cfg = DataConfig(raw_dir=str(packaged_raw), out_dir=str(tmp_path / "prep"), holdout_images=("astronaut", "coffee"),
                     max_side=96, crop_size=24, train_crops_per_image=3, holdout_crops_per_image=2)
    prep = prepare(cfg)
    assert set(prep.split.holdout) == {"astronaut", "coffee"}
    assert not set(prep.train_crops.names) & set(prep.split.holdout)
    assert set(prep.holdout_crops.names) == {"astronaut", "coffee"}
    assert all(max(im.shape[:2]) <= 96 for im in prep.images.values())
    record = load_split(tmp_path / "prep")
    assert record["holdout"] == ["astronaut", "coffee"]
    assert sorted(p.stem for p in (tmp_path / "prep" / "train").glob("*.png")) == sorted(record["train"])
    assert prep.summary()["n_train_crops"] == 3 * len(record["train"])


def test_prepare_refuses_a_name_in_two_collections(packaged_raw, tmp_path):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(packaged_raw / "packaged", raw / "packaged")
    (raw / "extra").mkdir()
    shutil.copy(raw / "packaged" / "coffee.png", raw / "extra" / "coffee.png")
    cfg = DataConfig(raw_dir=str(raw), out_dir=str(tmp_path / "p"), train_collections=("packaged",),
                     holdout_collections=("extra",), max_side=64, crop_size=16)
    with pytest.raises(ValueError, match="'coffee' appears in both 'packaged' and 'extra'"):
        prepare(cfg)


def test_whole_collection_can_be_held_out(packaged_raw, tmp_path):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(packaged_raw / "packaged", raw / "packaged")
    (raw / "kodak").mkdir()
    shutil.move(raw / "packaged" / "coffee.png", raw / "kodak" / "kodim99.png")
    cfg = DataConfig(raw_dir=str(raw), out_dir=str(tmp_path / "p"), holdout_collections=("kodak",),
                     max_side=64, crop_size=16, train_crops_per_image=1, holdout_crops_per_image=1)
    prep = prepare(cfg)
    assert prep.split.holdout == ("kodim99",)
    assert "kodim99" not in prep.split.train


def test_photos_of_a_split_load_in_name_order_and_a_missing_split_says_which_stage(tmp_path):
    from vlic.data.prepare import load_photos
    from vlic.images import save_png

    for name in ("b", "a"):
        save_png(np.full((4, 6, 3), ord(name), np.uint8), tmp_path / "holdout" / f"{name}.png")
    photos = load_photos(tmp_path, "holdout")
    assert list(photos) == ["a", "b"] and photos["b"].shape == (4, 6, 3) and photos["b"][0, 0, 0] == ord("b")
    with pytest.raises(FileNotFoundError, match="dvc repro data"):
        load_photos(tmp_path, "train")
    with pytest.raises(ValueError, match="part must be"):
        load_photos(tmp_path, "test")


def test_crop_boxes_cut_the_same_regions_again():
    from vlic.data.splits import crop_boxes, cut_patches

    imgs = {"x": np.arange(40 * 40 * 3, dtype=np.uint8).reshape(40, 40, 3), "y": np.zeros((40, 40, 3), np.uint8)}
    crops = random_crops(imgs, 16, 3, seed=2)
    boxes = crop_boxes(crops, ["x"])
    assert len(boxes["x"]) == 3
    for k, patch in enumerate(cut_patches(imgs["x"], boxes["x"], 16)):
        np.testing.assert_array_equal(patch, crops.pixels[k])
