"""vlic.codec.flowmo.model against FlowMo's own code: golden tensors of a tiny FlowMo, the released models' parameter
schema, ``vlic flowmo check``, strict weight loading and the sampler's schedules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from vlic.cli import main
from vlic.codec.flowmo.model import (RELEASED, FlowMo, FlowMoConfig, FlowMoWeightsError, bits_to_code, decoder_condition,
                               flow_times, load_weights, null_condition, read_state_dict, rf_sample,
                               save_released_layout)
from vlic.codec.flowmo.check import OUTPUTS, TOLERANCE, check_fixture, load_fixture, max_abs_errors, recompute

FIXTURE = Path(__file__).parent / "fixtures" / "flowmo"


@pytest.fixture(scope="module")
def tiny():
    model, golden, meta = load_fixture(FIXTURE)
    return model, golden, meta


@pytest.fixture(scope="module")
def errors(tiny):
    model, golden, _ = tiny
    return max_abs_errors(recompute(model, golden), golden)


@pytest.mark.parametrize("name", OUTPUTS)
def test_every_golden_tensor_is_reproduced(errors, name):
    assert errors[name] <= TOLERANCE, f"{name}: max abs error {errors[name]:.3g}"


def test_the_whole_chain_reproduces_flowmo_from_pixels(tiny):
    """From the images alone (no golden intermediate): bits, decoder condition and the CFG samples."""
    model, golden, _ = tiny
    with torch.no_grad():
        q, bits = model.quantize(model.encode(golden["images"]))
        cond = decoder_condition(q)
        c = model.config
        samples = rf_sample(model.velocity, golden["z"], cond, c.sample_steps, c.schedule, c.cfg, c.cfg_interval)
    assert torch.equal(bits.flatten(), golden["indices"])  # FlowMo's LFQ indices: one bit per channel
    assert torch.equal(bits_to_code(bits), golden["code_quantized"])
    assert torch.equal(cond, golden["decoder_condition"])
    assert cond[..., -1].eq(1).all() and null_condition(cond).eq(0).all()
    assert (samples - golden["samples_cfg"]).abs().max() <= TOLERANCE
    t = golden["fm_t"].view(-1, 1, 1, 1)  # the flow-matching point: zt = (1 − t)·x + t·ε
    assert ((1 - t) * golden["images"] + t * golden["fm_eps"] - golden["fm_zt"]).abs().max() <= TOLERANCE


def test_the_fixture_checks_something(tiny):
    """The golden outputs are not trivially reproduced: the null code, CFG and the step count all change them."""
    model, golden, _ = tiny
    assert (golden["velocity"] - golden["velocity_null_code"]).abs().max() > 1e-3
    assert (golden["samples_cfg"] - golden["samples_1step"]).abs().max() > 1e-2
    c = model.config
    no_cfg = rf_sample(model.velocity, golden["z"], golden["decoder_condition"], c.sample_steps, c.schedule, 1.0, None)
    assert (no_cfg - golden["samples_cfg"]).abs().max() > 1e-3


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_full_size_configs_match_the_released_schema(name):
    schema = json.loads((FIXTURE / f"schema_{name}.json").read_text())
    config = FlowMoConfig.from_flowmo({"model": schema["config"]})
    assert config == RELEASED[name]
    with torch.device("meta"):
        model = FlowMo(config)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == schema["keys"]
    assert list(shapes) == list(schema["keys"])
    assert model.parameter_count() == schema["parameters"]
    assert 0.94e9 < model.parameter_count() < 0.95e9
    assert config.bits_per_image / 256**2 == pytest.approx({"flowmo_lo": 0.0703125, "flowmo_hi": 0.21875}[name])


def test_cli_check_passes_with_one_json_line(capsys):
    assert main(["flowmo", "check", str(FIXTURE), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["ok"] is True
    assert set(report["max_abs_error"]) == set(OUTPUTS)
    assert all(e <= TOLERANCE for e in report["max_abs_error"].values())


def _copy_fixture(dst: Path) -> Path:
    shutil.copytree(FIXTURE, dst)
    return dst


def test_one_perturbed_weight_fails_the_check(tmp_path, capsys):
    folder = _copy_fixture(tmp_path / "perturbed")
    state = load_file(str(folder / "tiny_state_dict.safetensors"))
    key = "decoder.final_layer_img.linear.bias"  # the velocity of one pixel channel per patch
    state[key] = state[key].clone()
    state[key][0] += 0.01
    save_file(state, str(folder / "tiny_state_dict.safetensors"))
    assert main(["flowmo", "check", str(folder), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    err = report["max_abs_error"]
    assert err["velocity"] == pytest.approx(0.01, rel=1e-3) and err["fm_velocity"] == pytest.approx(0.01, rel=1e-3)
    assert err["samples_cfg"] > TOLERANCE and err["samples_1step"] > TOLERANCE
    assert err["code_pre_quantization"] <= TOLERANCE  # a decoder weight: the encoder is untouched
    assert not check_fixture(folder)["ok"]


def test_incomplete_fixture_exits_2_with_one_line(tmp_path, capsys):
    folder = _copy_fixture(tmp_path / "incomplete")
    (folder / "golden.safetensors").unlink()
    assert main(["flowmo", "check", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "golden.safetensors" in err


# --- strict loading ------------------------------------------------------------------------------------------------

def test_released_pth_layout_round_trips(tiny, tmp_path):
    model, golden, _ = tiny
    path = save_released_layout(model, tmp_path / "tiny.pth", total_steps=7)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"total_steps", "model_ema_state_dict", "model_state_dict"} and raw["total_steps"] == 7
    again = load_weights(FlowMo(model.config), path)
    with torch.no_grad():
        assert torch.equal(again.encode(golden["images"]), model.encode(golden["images"]))
    # the EMA weights are the default; model_state_dict on request
    raw["model_state_dict"]["decoder.img_in.bias"] += 1
    torch.save(raw, path)
    assert torch.equal(read_state_dict(path)["decoder.img_in.bias"], model.state_dict()["decoder.img_in.bias"])
    assert not torch.equal(read_state_dict(path, "model_state_dict")["decoder.img_in.bias"],
                           model.state_dict()["decoder.img_in.bias"])


def _one_line(exc: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg


def test_wrong_files_fail_with_one_line_naming_file_and_key(tiny, tmp_path):
    model, _, _ = tiny
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fresh = lambda: FlowMo(model.config)  # noqa: E731

    missing = dict(state)
    del missing["encoder.txt_in.weight"]
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(FlowMoWeightsError) as e:
        load_weights(fresh(), tmp_path / "missing.safetensors")
    _one_line(e, "missing.safetensors", "encoder.txt_in.weight", "missing")

    extra = dict(state, **{"decoder.extra.weight": torch.zeros(2)})
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(FlowMoWeightsError) as e:
        load_weights(fresh(), tmp_path / "extra.safetensors")
    _one_line(e, "extra.safetensors", "decoder.extra.weight", "unexpected")

    shaped = dict(state, **{"decoder.txt_in.weight": torch.zeros(192, 19)})
    torch.save({"total_steps": 0, "model_ema_state_dict": shaped}, tmp_path / "shape.pth")
    with pytest.raises(FlowMoWeightsError) as e:
        load_weights(fresh(), tmp_path / "shape.pth")
    _one_line(e, "shape.pth", "decoder.txt_in.weight", "(192, 19)", "(192, 7)")

    torch.save({"total_steps": 0, "model_ema_state_dict": state}, tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(FlowMoWeightsError) as e:
        load_weights(fresh(), tmp_path / "truncated.pth")
    _one_line(e, "truncated.pth")

    (tmp_path / "truncated.safetensors").write_bytes((tmp_path / "missing.safetensors").read_bytes()[:1000])
    with pytest.raises(FlowMoWeightsError) as e:
        load_weights(fresh(), tmp_path / "truncated.safetensors")
    _one_line(e, "truncated.safetensors")

    with pytest.raises(FlowMoWeightsError) as e:
        load_weights(fresh(), tmp_path / "absent.pth")
    _one_line(e, "absent.pth", "not found")


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_pickled_code_is_never_run(tmp_path, capsys):
    torch.save({"model_ema_state_dict": {}, "payload": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(FlowMoWeightsError) as e:
        read_state_dict(tmp_path / "evil.pth")
    _one_line(e, "evil.pth")
    assert "unpickled code ran" not in capsys.readouterr().out


# --- sampling ------------------------------------------------------------------------------------------------------

def test_schedules():
    ts, dts = flow_times(4, "pow_0.25")
    assert torch.allclose(ts, torch.tensor([1.0, 0.75**4, 0.5**4, 0.25**4]))
    assert float((ts - dts)[-1]) == 0.0 and torch.allclose(dts.sum(), torch.tensor(1.0))  # ends exactly at t = 0
    ts, dts = flow_times(4, "linear")
    assert torch.allclose(ts, torch.tensor([1.0, 0.75, 0.5, 0.25])) and torch.allclose(dts, torch.full((4,), 0.25))
    for bad in ("cosine", "pow_x", "pow_0"):
        with pytest.raises(ValueError):
            flow_times(4, bad)


def test_cfg_only_inside_its_interval():
    """(.17, 1.02) in EDM σ is t ∈ [0.145, 0.505]: of pow_0.25's four times (1, .316, .0625, .0039) only .316."""
    calls = []

    def velocity(x, cond, t):
        calls.append((float(t[0]), bool(cond.abs().sum() == 0)))
        return torch.zeros_like(x)

    z, cond = torch.zeros(1, 3, 4, 4), torch.ones(1, 2, 3)
    rf_sample(velocity, z, cond, 4, "pow_0.25", 1.5, (0.17, 1.02))
    assert [t for t, null in calls if null] == [pytest.approx(0.75**4)]
    assert len([c for c in calls if not c[1]]) == 4
    calls.clear()
    rf_sample(velocity, z, cond, 4, "pow_0.25", 1.0, (0.17, 1.02))  # cfg 1: never the null branch
    assert not any(null for _, null in calls)
    calls.clear()
    rf_sample(velocity, z, cond, 4, "linear", 2.0, None)  # no interval: every step
    assert sum(null for _, null in calls) == 4


# --- issue #25, item 8: a bad FlowMo file is one line naming the file and the field, exit 2 --------------------------

def _variant(tmp_path, name, edit_meta=None, edit_golden=None):
    folder = tmp_path / name
    shutil.copytree(FIXTURE, folder)
    if edit_meta:
        meta = json.loads((folder / "fixture.json").read_text())
        edit_meta(meta)
        (folder / "fixture.json").write_text(json.dumps(meta))
    if edit_golden:
        golden = load_file(str(folder / "golden.safetensors"))
        edit_golden(golden)
        save_file(golden, str(folder / "golden.safetensors"))
    return folder


@pytest.mark.parametrize("name,edit_meta,edit_golden,names", [
    ("null_config", lambda m: m.update(config=None), None, ("fixture.json", "'config'")),
    ("model_not_a_mapping", lambda m: m["config"].update(model=[1, 2]), None, ("fixture.json", "'config.model'")),
    ("heads", lambda m: m["tiny_dit_b_4_override"].update(num_heads=7), None,
     ("fixture.json", "'tiny_dit_b_4_override'", "num_heads")),
    ("axes", lambda m: m["tiny_dit_b_4_override"].update(axes_dim=[8, 12, 16]), None,
     ("fixture.json", "'tiny_dit_b_4_override'")),
    ("images_shape", None, lambda g: g.update(images=g["images"][:, :, :30, :30].contiguous()),
     ("golden.safetensors", "'images'", "(2, 3, 30, 30)")),
    ("t_shape", None, lambda g: g.update(t=torch.zeros(5)), ("golden.safetensors", "'t'")),
])
def test_flowmo_check_on_a_broken_fixture_is_one_line_naming_the_file_and_field(tmp_path, capsys, name, edit_meta,
                                                                                 edit_golden, names):
    folder = _variant(tmp_path, name, edit_meta, edit_golden)
    assert main(["flowmo", "check", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for part in names:
        assert part in err, (part, err)


@pytest.mark.parametrize("meta,field", [
    ({"format": "vlic-flowmo/1"}, "'config'"),
    ({"format": "vlic-flowmo/1", "config": "{not json"}, "'config'"),
    ({"format": "vlic-flowmo/1", "config": "[1, 2]"}, "'config'"),
    ({"format": "vlic-flowmo/1", "config": "GOOD", "prior": "{oops"}, "'prior'"),
])
def test_a_vlic_flowmo_file_with_a_bad_config_is_one_line_naming_the_file_and_field(tmp_path, capsys, meta, field):
    from PIL import Image

    if meta.get("config") == "GOOD":  # a good (tiny) configuration, a broken prior description
        fixture = json.loads((FIXTURE / "fixture.json").read_text())
        meta = {**meta, "config": FlowMoConfig.from_flowmo(fixture["config"], fixture["tiny_dit_b_4_override"]).to_json()}
    path = tmp_path / "codec_bad.safetensors"
    save_file({"model.x": torch.zeros(1)}, str(path), metadata=meta)
    image = tmp_path / "in.png"
    Image.new("RGB", (32, 32)).save(image)
    assert main(["compress", str(image), str(tmp_path / "out.vlic"), "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(path) in err and field in err, err
