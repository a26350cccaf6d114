"""The one place where parameters become typed objects: params.yaml's sections, a chapter's parameters, overrides.

A parameter is a dataclass field. :func:`build` makes the dataclass from any mapping of names to values — a section
of ``params.yaml`` (:func:`section`, for the CLI, tests and scripts) or the values papermill gave a chapter (the
chapter names them explicitly: ``build(DataConfig, dict(crop_size=crop_size, …))``) — and :func:`cast` is the one
conversion each value goes through, with a one-line :class:`ParamsError` naming the key. Lists are stored as
comma-separated strings (DVC cannot template YAML lists into a command line); :func:`as_list` splits them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ParamsError(ValueError):
    """params.yaml (or an override file) is missing, malformed, or has an unknown key."""


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
    ``0`` as None. Anything else is a :class:`ParamsError` naming ``key``."""
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
            return value
        try:
            number = None if isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            number = None
        if number is None or not number.is_integer():
            raise fail("an integer")
        return int(number)
    if hint is float:
        if isinstance(value, bool):
            raise fail("a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise fail("a number") from None
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
    merge(base, override)  # validates that every key exists
    args: list[str] = []
    for key, value in flatten(override).items():
        text = yaml.safe_dump(value, default_flow_style=True).strip()
        text = text[:-4].strip() if text.endswith("\n...") or text.endswith("...") else text
        args += ["-S", f"{key}={text}"]
    return args
