"""Proof that :mod:`vlic.codec.flowmo.model` computes what FlowMo's own code computes: recompute a golden fixture.

A fixture folder (``tests/fixtures/flowmo/`` is one; its README says how it was made) holds ``fixture.json`` (FlowMo's
``config`` and the DiT entry ``tiny_dit_b_4_override``), ``tiny_state_dict.safetensors`` (a small FlowMo's weights)
and ``golden.safetensors`` (inputs and FlowMo's outputs). :func:`check_fixture` loads the weights into this
implementation, recomputes every output from the fixture's inputs and returns the largest absolute error of each:

* ``code_pre_quantization`` — the encoder's code of ``images``; ``code_quantized`` — its LFQ signs;
* ``velocity`` / ``velocity_null_code`` — the decoder at (``z``, ``t``) with the golden decoder condition and with
  its null (× 0) version;
* ``samples_cfg`` — ``eval.sampling`` of the config (steps, schedule, CFG scale and interval) from ``z``;
  ``samples_1step`` — one linear step without CFG;
* ``fm_velocity`` — the decoder at the flow-matching point (``fm_zt``, ``fm_t``).

Decoder outputs start from the golden ``decoder_condition``, so each number measures one stage (a sign flip in the
encoder shows up in ``code_quantized``, not as a cascade). ``vlic flowmo check DIR`` prints them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vlic.codec.flowmo.model import FlowMo, FlowMoConfig, load_weights, null_condition, rf_sample

TOLERANCE = 1e-4
OUTPUTS = ("code_pre_quantization", "code_quantized", "velocity", "velocity_null_code", "samples_cfg",
           "samples_1step", "fm_velocity")
INPUTS = ("images", "z", "t", "decoder_condition", "fm_zt", "fm_t")


class FixtureError(ValueError):
    """A fixture folder is incomplete or malformed (one-line message)."""


def load_fixture(folder: str | Path) -> tuple[FlowMo, dict[str, torch.Tensor], dict]:
    """(model with the fixture's weights, golden tensors, fixture.json)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta_path = folder / "fixture.json"
    for p in (meta_path, folder / "tiny_state_dict.safetensors", folder / "golden.safetensors"):
        if not p.is_file():
            raise FixtureError(f"'{p}' not found: a FlowMo fixture folder holds fixture.json, tiny_state_dict.safetensors "
                               f"and golden.safetensors")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FixtureError(f"'{meta_path}' is not a FlowMo fixture description ({type(e).__name__}: {e})") from None
    model = FlowMo(_fixture_config(meta, meta_path))
    model = load_weights(model, folder / "tiny_state_dict.safetensors")
    golden_path = folder / "golden.safetensors"
    try:
        golden = load_file(str(golden_path))
    except Exception as e:
        raise FixtureError(f"'{golden_path}' is not readable ({type(e).__name__})") from None
    missing = [k for k in INPUTS + OUTPUTS if k not in golden]
    if missing:
        raise FixtureError(f"'{golden_path}' lacks the tensor '{missing[0]}'")
    for name, shape in expected_shapes(model.config, golden["images"].shape[0]).items():
        got = tuple(golden[name].shape)
        if got != shape:
            raise FixtureError(f"'{golden_path}': tensor '{name}' has shape {got}, expected {shape} (from the "
                               f"configuration in fixture.json)")
    return model, golden, meta


def _fixture_config(meta, meta_path: Path) -> FlowMoConfig:
    """The :class:`FlowMoConfig` of a fixture.json; :class:`FixtureError` naming the field that is wrong."""
    def kind(v) -> str:
        return "null" if v is None else f"a {type(v).__name__}"

    if not isinstance(meta, dict):
        raise FixtureError(f"'{meta_path}' holds {kind(meta)}, expected a mapping with 'config'")
    config, override = meta.get("config"), meta.get("tiny_dit_b_4_override")
    if not isinstance(config, dict):
        raise FixtureError(f"'{meta_path}': field 'config' is {kind(config)}, expected FlowMo's configuration (a mapping)")
    for field, value in (("config.model", config.get("model", {})), ("config.data", config.get("data", {})),
                         ("config.eval", config.get("eval", {})),
                         ("config.eval.sampling", (config.get("eval") or {}).get("sampling", {}))):
        if not isinstance(value, dict):
            raise FixtureError(f"'{meta_path}': field '{field}' is {kind(value)}, expected a mapping")
    if override is not None and not isinstance(override, dict):
        raise FixtureError(f"'{meta_path}': field 'tiny_dit_b_4_override' is {kind(override)}, expected a mapping")
    fields = "'config'" + (" and 'tiny_dit_b_4_override'" if override else "")
    try:
        config = FlowMoConfig.from_flowmo(config, override)
        FlowMo(config)  # the transformer's own checks (widths, heads, RoPE axes) run when it is built
    except (TypeError, ValueError, ZeroDivisionError, SyntaxError) as e:
        raise FixtureError(f"'{meta_path}': fields {fields} do not make a consistent FlowMo ({e})") from None
    return config


def expected_shapes(c: FlowMoConfig, batch: int) -> dict[str, tuple[int, ...]]:
    """The shapes of the golden inputs for a FlowMo of configuration ``c`` and ``batch`` images."""
    image = (batch, 3, c.image_size, c.image_size)
    return {"images": image, "z": image, "t": (batch,), "decoder_condition": (batch, c.code_length, c.context_dim + 1),
            "fm_zt": image, "fm_t": (batch,)}


@torch.no_grad()
def recompute(model: FlowMo, golden: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every output of :data:`OUTPUTS` from the golden inputs."""
    c = model.config
    code = model.encode(golden["images"])
    cond = golden["decoder_condition"]
    return {
        "code_pre_quantization": code,
        "code_quantized": model.quantize(code)[0],
        "velocity": model.velocity(golden["z"], cond, golden["t"]),
        "velocity_null_code": model.velocity(golden["z"], null_condition(cond), golden["t"]),
        "samples_cfg": rf_sample(model.velocity, golden["z"], cond, c.sample_steps, c.schedule, c.cfg, c.cfg_interval),
        "samples_1step": rf_sample(model.velocity, golden["z"], cond, 1, "linear", 1.0, None),
        "fm_velocity": model.velocity(golden["fm_zt"], cond, golden["fm_t"]),
    }


def max_abs_errors(outputs: dict[str, torch.Tensor], golden: dict[str, torch.Tensor]) -> dict[str, float]:
    errors = {}
    for k in OUTPUTS:
        if outputs[k].shape != golden[k].shape:
            errors[k] = float("inf")
        else:
            errors[k] = float((outputs[k].double() - golden[k].double()).abs().max())
    return errors


def check_fixture(folder: str | Path, tolerance: float = TOLERANCE) -> dict:
    """``{"max_abs_error": {output: error}, "ok": all errors ≤ tolerance}`` for a fixture folder."""
    model, golden, _ = load_fixture(folder)
    errors = max_abs_errors(recompute(model, golden), golden)
    return {"max_abs_error": errors, "ok": all(e <= tolerance for e in errors.values())}

