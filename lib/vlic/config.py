"""The one place where parameters become typed objects: params.yaml's sections, a chapter's parameters, overrides.

A parameter is a dataclass field. :func:`build` makes the dataclass from any mapping of names to values — a section
of ``params.yaml`` (:func:`section`, for the CLI, tests and scripts) or the values papermill gave a chapter (the
chapter names them explicitly: ``build(DataConfig, dict(crop_size=crop_size, …))``) — and :func:`cast` is the one
conversion each value goes through, with a one-line :class:`ParamsError` naming the key. Lists are stored as
comma-separated strings (DVC cannot template YAML lists into a command line); :func:`as_list` splits them.

Every numeric parameter has an allowed range in one table, :data:`RANGES` (``"section.key"`` → :class:`Range`).
:func:`cast` applies it whenever the key names its section (``build(..., where="dpo")``, :func:`section`), and
:func:`check_params` checks a whole params.yaml — ``vlic params check``, ``vlic params set-args`` (the merged result)
and every chapter's first line (:func:`vlic.notebooks.use_repo_root`) run it. NaN and ±inf are never a parameter.
A new numeric key in params.yaml needs a line in :data:`RANGES` (a test says so).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ParamsError(ValueError):
    """params.yaml (or an override file) is missing, malformed, or has an unknown key."""


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric parameter may take: ``low``/``high`` (None = unbounded; ``open_low``: ``low`` itself
    excluded), integers only when ``integer``. Always finite."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    integer: bool = False

    def describe(self) -> str:
        what = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            return f"{what} in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{what} {'>' if self.open_low else '≥'} {self.low:g}"
        if self.high is not None:
            return f"{what} ≤ {self.high:g}"
        return f"a finite {what[2:] if what.startswith('a ') else what[3:]}"

    def admits(self, x: float) -> bool:
        if not math.isfinite(x) or (self.integer and not float(x).is_integer()):
            return False
        if self.low is not None and (x <= self.low if self.open_low else x < self.low):
            return False
        return self.high is None or x <= self.high


def _int(low: int | None = 0, high: int | None = None) -> Range:
    return Range(low, high, integer=True)


def _num(low: float | None = 0.0, high: float | None = None) -> Range:
    return Range(low, high)


_POS = Range(0.0, open_low=True)      # a number > 0 (learning rates, timeouts, bit rates)
_PROB = Range(0.0, 1.0)               # a share or probability in [0, 1]
_SEED = _int(0)                       # seeds: numpy takes non-negative integers only
_COUNT = _int(1)                      # steps, sizes, widths, workers: at least one
_ORDERS = _int(1, 2)                  # 1 = one order, 2 = both

#: The allowed range of every numeric parameter of params.yaml and the profiles, keyed ``"section.key"``; a
#: comma-separated list (``eval_seeds: "0,1"``) is checked item by item. Keep one line per key, sorted by section.
RANGES: dict[str, Range] = {
    # data
    "data.max_side": _int(0), "data.crop_size": _COUNT, "data.train_crops_per_image": _COUNT,
    "data.holdout_crops_per_image": _COUNT, "data.seed": _SEED,
    # judges
    "judges.vlm_concurrency": _COUNT, "judges.vlm_temperature": _num(0, 2), "judges.vlm_max_tokens": _int(0),
    "judges.vlm_min_side": _int(0), "judges.vlm_timeout_s": _POS, "judges.vlm_max_retries": _int(0),
    "judges.vlm_retry_budget_s": _POS, "judges.vlm_breaker_failures": _COUNT, "judges.vlm_backoff_s": _POS,
    "judges.seeds": _COUNT, "judges.orders": _ORDERS, "judges.ladder_max_gap": _COUNT, "judges.compressed_bpp": _POS,
    "judges.bapps_max_per_family": _int(0), "judges.max_pairs": _int(0), "judges.bootstrap": _COUNT,
    "judges.seed": _SEED,
    # codec (chapter 02)
    "codec.low_downsample": _COUNT, "codec.low_fsq_levels": _int(2), "codec.high_downsample": _COUNT,
    "codec.high_fsq_levels": _int(2), "codec.patch": _COUNT, "codec.encoder_width": _COUNT,
    "codec.cond_channels": _COUNT, "codec.flow_widths": _COUNT, "codec.tile": _COUNT, "codec.overlap": _int(0),
    "codec.prior_dim": _COUNT, "codec.prior_layers": _COUNT, "codec.prior_block": _COUNT, "codec.steps": _COUNT,
    "codec.batch_size": _COUNT, "codec.lr": _POS, "codec.perceptual_weight": _num(0), "codec.cfg_dropout": _PROB,
    "codec.ema_decay": _PROB, "codec.prior_steps": _int(0), "codec.sample_steps": _COUNT,
    "codec.sample_start": Range(0.0, 1.0, open_low=True), "codec.start_time_share": _PROB,
    "codec.eval_steps": _COUNT, "codec.eval_seeds": _SEED, "codec.seed": _SEED, "codec.replicate_seeds": _SEED,
    "codec.threads": _int(0), "codec.workers": _COUNT,
    "codec.mini_context_dim": _COUNT, "codec.mini_code_length": _COUNT, "codec.mini_width": _COUNT,
    "codec.mini_heads": _COUNT, "codec.mini_enc_depth": _COUNT, "codec.mini_dec_depth": _COUNT,
    "codec.mini_steps": _COUNT, "codec.mini_lr": _POS, "codec.mini_perceptual_weight": _num(0),
    "codec.mini_prior_steps": _int(0), "codec.mini_sample_steps": _COUNT, "codec.mini_eval_steps": _COUNT,
    # dpo (chapter 04)
    "dpo.reward_seeds": _COUNT, "dpo.reward_orders": _ORDERS, "dpo.steps": _COUNT, "dpo.batch_size": _COUNT,
    "dpo.lr": _POS, "dpo.warmup": _int(0), "dpo.beta": _POS, "dpo.flow_weight": _num(0), "dpo.cfg_dropout": _PROB,
    "dpo.ref_weight": _num(0), "dpo.candidate_starts": Range(0.0, 1.0, open_low=True),
    "dpo.encoder_lr_scale": _num(0), "dpo.latent_decoder_lr_scale": _num(0), "dpo.oracle_seeds": _SEED, "dpo.buffer_capacity": _COUNT, "dpo.refresh_every": _COUNT,
    "dpo.refresh_size": _COUNT, "dpo.candidates": _int(2), "dpo.min_pairs": _COUNT, "dpo.judge_workers": _COUNT, "dpo.merge_after": _int(0),
    "dpo.eval_seeds": _SEED, "dpo.bootstrap": _COUNT, "dpo.seed": _SEED, "dpo.threads": _int(0),
    "dpo.checkpoint_every": _int(0), "dpo.robustness_seeds": _SEED, "dpo.pretrain_seeds": _SEED,
    "dpo.robustness_workers": _COUNT,
    # rewards (chapter 03)
    "rewards.weights": _num(0), "rewards.weighted_margin": _PROB, "rewards.seeds_grid": _COUNT,
    "rewards.orders_grid": _ORDERS, "rewards.max_pairs": _int(0), "rewards.sim_sensitivity": _num(0),
    "rewards.sim_noise": _num(0), "rewards.sim_position_bias": _num(None), "rewards.sim_lapse": _PROB,
    "rewards.sim_parse_failure": _PROB, "rewards.train_seeds": _SEED, "rewards.steps": _COUNT,
    "rewards.eval_seeds": _SEED, "rewards.workers": _COUNT, "rewards.threads": _int(0), "rewards.bootstrap": _COUNT,
    "rewards.seed": _SEED, "rewards.checkpoint_every": _int(0),
    # eval (chapter 05)
    "eval.seeds": _SEED, "eval.effnet_input": _COUNT, "eval.effnet_input_robustness": _COUNT,
    "eval.realism_patch_candidates": _COUNT, "eval.effnet_input_candidates": _COUNT,
    "eval.realism_validation_patches": _COUNT, "eval.realism_validation_levels": _int(0, 5),
    "eval.realism_validation_bpp": _POS, "eval.realism_validation_bootstrap": _int(0), "eval.distribution_bootstrap": _int(0),
    "eval.baseline_bpp": _POS, "eval.compressai_qualities": _int(1, 8), "eval.bootstrap": _COUNT, "eval.seed": _SEED,
    "eval.threads": _int(0),
    # machine (chapter 06)
    "machine.text_sizes": _COUNT, "machine.text_width": _COUNT, "machine.text_height": _COUNT,
    "machine.retrieval_patch": _COUNT, "machine.retrieval_per_image": _COUNT, "machine.retrieval_input": _COUNT,
    "machine.tag_threshold": _PROB, "machine.max_tags": _int(0), "machine.finetune_steps": _COUNT,
    "machine.finetune_batch": _COUNT, "machine.finetune_lr": _POS, "machine.sc_weight_flow_mid": _num(0),
    "machine.sc_weight_effnet": _num(0), "machine.tag_dropout": _PROB, "machine.tag_cfg_scale": _num(0),
    "machine.bootstrap": _COUNT, "machine.seed": _SEED,
    # lowlevel (chapter 07)
    "lowlevel.crop_size": _COUNT, "lowlevel.crops_per_photo": _COUNT, "lowlevel.eval_size": _COUNT,
    "lowlevel.width": _COUNT, "lowlevel.controller_steps": _COUNT, "lowlevel.task_steps": _COUNT,
    "lowlevel.universal_steps": _COUNT, "lowlevel.finetune_steps": _COUNT, "lowlevel.batch": _COUNT,
    "lowlevel.lr": _POS, "lowlevel.finetune_lr": _POS, "lowlevel.codec_lr": _POS, "lowlevel.alpha": _num(0),
    "lowlevel.beta": _num(0), "lowlevel.gamma": _num(0), "lowlevel.bootstrap": _COUNT, "lowlevel.seed": _SEED,
    "lowlevel.threads": _int(0), "lowlevel.workers": _COUNT,
}

_ITEM = re.compile(r"\[\d+\]$")


def range_of(key: str) -> Range | None:
    """The :data:`RANGES` entry of ``key`` (``"dpo.eval_seeds[1]"`` → that of ``"dpo.eval_seeds"``), if any."""
    return RANGES.get(_ITEM.sub("", key))


def _checked(number: float, value: Any, key: str) -> float:
    """``number`` (``value`` converted) if it is finite and within the range of ``key``; else a one-line error."""
    allowed = range_of(key)
    if allowed is not None and not allowed.admits(float(number)):
        raise ParamsError(f"parameter '{key}': expected {allowed.describe()}, got {value!r}")
    if not math.isfinite(float(number)):
        raise ParamsError(f"parameter '{key}': expected a finite number, got {value!r}")
    return number


def is_numeric(value: Any) -> bool:
    """Whether a params.yaml value is a number or a comma-separated list of numbers (what :data:`RANGES` covers)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return True
    items = as_list(value) if isinstance(value, str) else ()
    try:
        return bool(items) and all(isinstance(float(v), float) for v in items)
    except ValueError:
        return False


def params_problems(params: Mapping[str, Any]) -> list[str]:
    """One line for each value of a loaded params.yaml (or profile, or a merge of both) outside its range."""
    out: list[str] = []
    for key, value in flatten(dict(params)).items():
        allowed = RANGES.get(key)
        if allowed is None or value is None or (isinstance(value, str) and not value.strip()):
            continue
        items = [(key, value)] if not isinstance(value, str) or "," not in value else \
            [(f"{key}[{i}]", v) for i, v in enumerate(as_list(value))]
        for name, item in items:
            try:
                cast(item, int if allowed.integer else float, name)
            except ParamsError as e:
                out.append(str(e))
    return out


def check_params(params: Mapping[str, Any], source: str = "") -> None:
    """:class:`ParamsError` with the first value of ``params`` outside its :data:`RANGES` range (one line, prefixed
    by ``source``, e.g. the file name), and how many more there are."""
    found = params_problems(params)
    if found:
        more = f" (and {len(found) - 1} more: `vlic params check` lists them)" if len(found) > 1 else ""
        raise ParamsError(f"{source + ': ' if source else ''}{found[0]}{more}")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"parameters file '{path}' not found")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ParamsError(f"parameters file '{path}' is not valid YAML: {e}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"parameters file '{path}' must hold a mapping of sections")
    return params


def as_list(value: Any) -> tuple[str, ...]:
    """``"a, b,c"`` → ``("a", "b", "c")``; empty/None → ``()``; lists pass through."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(s.strip() for s in str(value).split(",") if s.strip())


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def cast(value: Any, hint: Any, key: str = "value") -> Any:
    """``value`` as type ``hint`` — the one conversion every parameter goes through (params.yaml sections, a chapter's
    papermill parameters, ``-S`` overrides). Accepts what DVC's templating and YAML 1.1 make of a value: ``3e-05``
    arrives as a string (no dot), ``"0"`` may arrive as ``0``, booleans as ``true``/``"false"``; a list is a
    comma-separated string (``tuple[int, ...]`` from ``"1,2"``); ``X | None`` takes ``None``, ``""``, ``"none"`` or
    ``0`` as None. A number must be finite and, when ``key`` names its section (``"dpo.lr"``), within its
    :data:`RANGES` range. Anything else is a :class:`ParamsError` naming ``key``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)

    def fail(expected: str) -> ParamsError:
        return ParamsError(f"parameter '{key}': expected {expected}, got {value!r}")

    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")) or \
                (value == 0 and not isinstance(value, bool)):
            return None
        return cast(value, next(a for a in args if a is not type(None)), key)
    if origin is tuple:
        inner = args[0] if args else str
        return tuple(cast(v, inner, f"{key}[{i}]") for i, v in enumerate(as_list(value)))
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise fail("true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return _checked(value, value, key)
        try:
            number = None if isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            number = None
        allowed = range_of(key)
        if number is None or not math.isfinite(number) or not number.is_integer():
            raise fail(allowed.describe() if allowed and allowed.integer else "an integer")
        return _checked(int(number), value, key)
    if hint is float:
        allowed = range_of(key)
        expected = allowed.describe() if allowed and not allowed.integer else "a number"
        if isinstance(value, bool):
            raise fail(expected)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise fail(expected) from None
        return _checked(number, value, key)
    if hint is str:
        if isinstance(value, (bool, list, dict)):
            raise fail("a string")
        return "" if value is None else str(value)
    return value


def build(cls: type[T], values: Mapping[str, Any], where: str = "", prefix: str = "", strict: bool = False) -> T:
    """Dataclass ``cls`` from ``values``: each field ``f`` from ``values[prefix + f]``, :func:`cast` to the field's
    declared type; missing fields keep their defaults (a field without one is required); other keys are ignored (``strict``: an error). ``where``
    names the source in errors (``dpo`` → "parameter 'dpo.lr': …")."""
    hints = typing.get_type_hints(cls)
    fields = {prefix + f.name: f.name for f in dataclasses.fields(cls)}
    if strict:
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ParamsError(f"section '{where}' has unknown keys {unknown}; {cls.__name__} knows {sorted(fields)}")
    dot = f"{where}." if where else ""
    required = [dot + prefix + f.name for f in dataclasses.fields(cls) if prefix + f.name not in values
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if required:
        raise ParamsError(f"{cls.__name__} needs parameter(s) {', '.join(required)}")
    return cls(**{name: cast(values[key], hints[name], dot + key) for key, name in fields.items() if key in values})


def section(params: Mapping[str, Any], name: str, cls: type[T], prefix: str = "", strict: bool = True) -> T:
    """Dataclass ``cls`` from section ``name`` of a loaded params.yaml (:func:`build`; unknown keys are an error
    unless ``strict=False``, for a class that reads only some keys of a section, e.g. the ``vlm_*`` of ``judges``)."""
    if name not in params:
        raise ParamsError(f"parameters have no section '{name}'")
    return build(cls, params[name] or {}, where=name, prefix=prefix, strict=strict)


def merge(base: dict[str, Any], override: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``; an override key absent from base is an error."""
    out = dict(base)
    for key, value in override.items():
        path = f"{where}.{key}" if where else key
        if key not in base:
            raise ParamsError(f"override key '{path}' does not exist in the base parameters")
        out[key] = merge(base[key], value, path) if isinstance(value, dict) and isinstance(base[key], dict) else value
    return out


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        path = f"{prefix}.{key}" if prefix else key
        out.update(flatten(value, path) if isinstance(value, dict) else {path: value})
    return out


def set_args(override_path: str | Path, base_path: str | Path = "params.yaml") -> list[str]:
    """``dvc exp run`` arguments (``-S key=value`` pairs) that apply an override file to params.yaml."""
    base, override = load_params(base_path), load_params(override_path)
    check_params(merge(base, override), str(override_path))  # every key exists, every value within its range
    args: list[str] = []
    for key, value in flatten(override).items():
        text = yaml.safe_dump(value, default_flow_style=True).strip()
        text = text[:-4].strip() if text.endswith("\n...") or text.endswith("...") else text
        args += ["-S", f"{key}={text}"]
    return args
