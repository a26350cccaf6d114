"""The realism-metric validation (vlic.eval.realism_validation): rank agreement with known severity orders, the
sampling floor, the choice of configuration and its determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_photo

from vlic.eval.realism_validation import (Configuration, RealismValidation, adjacent_ordered, choose_configuration,
                                          kendall_tau, ladder_distances, ladder_patches, score_configurations,
                                          validate_realism_configuration)


def test_kendall_tau_and_adjacent_share_known_values():
    assert kendall_tau([1, 2, 3, 4]) == 1.0
    assert kendall_tau([4, 3, 2, 1]) == -1.0
    assert kendall_tau([1, 3, 2, 4]) == pytest.approx(4 / 6)      # one discordant pair of six
    assert adjacent_ordered([1, 3, 2, 4]) == pytest.approx(2 / 3)
    assert kendall_tau([1, 1, 2]) == pytest.approx(2 / 3)         # a tie counts as neither
    np.testing.assert_allclose(kendall_tau(np.array([[1, 2, 3], [3, 2, 1]])), [1.0, -1.0])   # leading axes kept


def _table(rows: dict[tuple[int, int], list[float]], floor: dict[tuple[int, int], float] | None = None,
           n_patches: int = 10) -> pd.DataFrame:
    """A hand-built distance table: one ladder 'blur' per configuration, the same values for both metrics."""
    out = []
    for (patch, size), vals in rows.items():
        for metric in ("fd_effnet", "kid_effnet"):
            base = {"patch": patch, "input_size": size, "metric": metric, "n_patches": n_patches}
            out += [base | {"ladder": "blur", "kind": "severity", "level": k, "value": v} for k, v in enumerate(vals)]
            if floor is not None:
                out.append(base | {"ladder": "elsewhere", "kind": "floor", "level": -1, "value": floor[(patch, size)]})
    return pd.DataFrame(out)


def test_the_scorer_ranks_a_configuration_that_orders_the_ladder_above_one_that_does_not():
    values = _table({(64, 224): [1, 3, 2, 4], (64, 96): [1, 2, 3, 4]})
    scores = score_configurations(values)
    assert list(scores.input_size) == [96, 224] and list(scores["rank"]) == [1, 2]
    assert scores.kendall_tau.tolist() == pytest.approx([1.0, 4 / 6])
    assert scores.adjacent_ordered.tolist() == pytest.approx([1.0, 2 / 3])
    assert scores.cost.tolist() == pytest.approx([1.0, (224 / 96) ** 2])
    chosen, reason = choose_configuration(scores)
    assert chosen == Configuration(64, 96) and "orders the ladders best" in reason


def test_the_sampling_floor_is_every_ladders_mildest_rung():
    # both order the rungs; at 96 px the two mildest rungs are no further from the originals than real photographs
    values = _table({(64, 96): [1, 2, 3, 4], (64, 224): [1, 2, 3, 4]}, floor={(64, 96): 2.5, (64, 224): 0.5})
    scores = score_configurations(values).set_index("input_size")
    assert scores.loc[224, "kendall_tau"] == 1.0 and scores.loc[224, "above_floor"] == 1.0
    # order floor, 1, 2, 3, 4 with the floor at 2.5: pairs (floor, 1) and (floor, 2) discordant → (10 − 4) / 10
    assert scores.loc[96, "kendall_tau"] == pytest.approx(0.6) and scores.loc[96, "above_floor"] == 0.5
    assert scores.loc[96, "kendall_tau_rungs"] == 1.0
    assert choose_configuration(score_configurations(values))[0] == Configuration(64, 224)


def test_a_tie_goes_to_the_cheaper_configuration():
    values = _table({(64, 224): [1, 2, 3], (64, 160): [1, 2, 3], (64, 96): [1, 5, 9]})
    chosen, reason = choose_configuration(score_configurations(values))
    assert chosen == Configuration(64, 96) and "costs 2.8× less" in reason


def _tiny_features(size: int):
    """A fixed random conv net (seeded per input size): a cheap, deterministic stand-in for EfficientNet-Lite0."""
    import torch

    g = torch.Generator().manual_seed(size)
    w = torch.randn(16, 3, 5, 5, generator=g) / 8

    def fn(x):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
        h = torch.relu(torch.nn.functional.conv2d(x - 0.5, w, stride=2))
        return torch.cat([h.mean((2, 3)), h.std((2, 3))], 1)

    return fn


@pytest.fixture(scope="module")
def photos():
    return {f"p{i}": synthetic_photo(160, 192, seed=i) for i in range(3)}


def test_ladder_patches_cut_the_same_positions_from_originals_and_rungs(photos):
    lp = ladder_patches(photos, [64, 32], families=("blur",), codecs=("jpeg-ds",), bpp=(1.0, 0.3), patches_per_photo=3)
    assert len(lp.patches[64]["originals"]) == len(lp.patches[64]["elsewhere"]) == 9 == len(lp.patches[64][("blur", 5)])
    assert lp.photo_of[64].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert len(lp.patches[32]["originals"]) == 9 and lp.patches[32]["originals"][0].shape == (32, 32, 3)
    # elsewhere = other positions of the same photos, undistorted: never one of the originals' patches
    originals = {p.tobytes() for p in lp.patches[64]["originals"]}
    assert not originals & {p.tobytes() for p in lp.patches[64]["elsewhere"]}
    rate = lp.rungs[lp.rungs.kind == "rate"]
    assert rate.strength.tolist() == [1.0, 0.3] and (rate.bpp.diff().dropna() < 0).all()
    thin = ladder_patches(photos, [64], families=("blur",), codecs=(), patches_per_photo=1, levels=(1, 3))
    assert thin.rungs.level.tolist() == [1, 3] and thin.rungs.strength.tolist() == [0.7, 1.5]
    with pytest.raises(ValueError, match="outside the blur ladder"):
        ladder_patches(photos, [64], families=("blur",), codecs=(), levels=(6,))


def test_validation_is_deterministic_and_reports_every_configuration(photos):
    kw = dict(patch_sizes=(64,), input_sizes=(48, 96), families=("blur",), codecs=("jpeg-ds",),
              bpp=(1.0, 0.25), patches_per_photo=3, n_boot=4, feature_fn=_tiny_features)
    a, b = validate_realism_configuration(photos, **kw), validate_realism_configuration(photos, **kw)
    assert isinstance(a, RealismValidation) and a.chosen == b.chosen and a.reason == b.reason
    cols = [c for c in a.scores if c != "seconds"]
    pd.testing.assert_frame_equal(a.scores[cols], b.scores[cols])
    assert set(zip(a.scores.patch, a.scores.input_size)) == {(64, 48), (64, 96)}
    assert set(a.values.ladder) == {"blur", "jpeg-ds", "elsewhere"}
    assert a.boots.draw.nunique() == 4 and a.scores["rank"].tolist() == [1, 2]
    assert a.robustness_input() == ({48, 96} - {a.chosen.input_size}).pop()


def test_robustness_row_is_the_candidate_furthest_from_the_choice():
    scores = pd.DataFrame({"input_size": [96, 160, 224]})
    v = RealismValidation(pd.DataFrame(), pd.DataFrame(), scores, pd.DataFrame(), Configuration(64, 96), "", 0.0)
    assert v.robustness_input() == 224
    v.chosen = Configuration(64, 224)
    assert v.robustness_input() == 96 and v.robustness_input([160, 224]) == 160


def test_stronger_blur_gives_a_higher_fd_effnet_at_a_fixed_configuration(photos):
    from vlic.eval.metrics import availability

    if availability("fd_effnet"):
        pytest.skip(availability("fd_effnet"))
    import torch

    from vlic.data.packaged import PHOTOS, locate
    from vlic.images import load_rgb

    torch.set_num_threads(1)
    # corners of two training photos (never the holdout); on the synthetic photo, whose texture is white noise,
    # FD falls again past σ = 1 px — blurring it away leaves smooth, photo-like gradients
    real = {p.name: load_rgb(locate(p)).pixels[:160, :192] for p in PHOTOS if p.name in ("chelsea", "rocket")}
    lp = ladder_patches(real, [64], families=("blur",), codecs=(), patches_per_photo=3)
    values, boots, _ = ladder_distances(lp, [Configuration(64, 96)], metrics=("fd_effnet",))
    blur = values[values.ladder == "blur"].sort_values("level").value.to_numpy()
    assert len(boots) == 0 and (np.diff(blur) > 0).all(), blur.tolist()
    assert 10 < blur[0] < 30 and 1300 < blur[-1] < 1700   # measured 18.2 and 1485 (σ = 0.4 and 3 px)
