"""Codec checkpoints: one safetensors file holding the autoencoder, the token prior and the configuration.

Metadata (strings): ``format`` = "vlic-codec/1", ``config`` (CodecConfig JSON), ``rate`` (e.g. "low"),
``fingerprint`` (16 hex digits: SHA-256 over the config and every tensor, first 8 bytes — written into each .vlic
file so a file is never decoded by a different model), ``training`` (JSON summary of how it was trained).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vlic.codec.autoencoder import CodecConfig, DiffusionCodec
from vlic.codec.prior import TokenPrior

FORMAT = "vlic-codec/1"


class CheckpointError(ValueError):
    """A checkpoint file is missing or not a vlic codec checkpoint (one-line message naming the file)."""


def build_prior(cfg: CodecConfig) -> TokenPrior:
    return TokenPrior(cfg.fsq_levels, cfg.prior_dim, cfg.prior_layers, cfg.prior_heads, cfg.prior_block)


def fingerprint(cfg: CodecConfig, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(cfg.to_json().encode())
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(name.encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


class WeightsFingerprint:
    """``tensors()`` (model + prior, as saved) and their ``fingerprint``, shared by every codec checkpoint kind."""

    fingerprint_of = None  # set below: the fingerprint function of the checkpoint kind (config, tensors) → str

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        out.update({f"prior.{k}": v for k, v in self.prior.state_dict().items()})
        return {k: v.detach().contiguous().cpu() for k, v in out.items()}

    @property
    def fingerprint(self) -> str:
        return type(self).fingerprint_of(self.config, self.tensors())


@dataclass
class Checkpoint(WeightsFingerprint):
    model: DiffusionCodec
    prior: TokenPrior
    rate: str = ""
    training: dict = field(default_factory=dict)
    path: Path | None = None

    fingerprint_of = staticmethod(fingerprint)

    @property
    def config(self) -> CodecConfig:
        return self.model.config

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = self.tensors()
        meta = {"format": FORMAT, "config": self.config.to_json(), "rate": self.rate,
                "fingerprint": fingerprint(self.config, tensors), "training": json.dumps(self.training, sort_keys=True)}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)
        self.path = path
        return path


def load(path: str | Path) -> Checkpoint:
    """Load a codec checkpoint; :class:`CheckpointError` if it is missing or not one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"codec checkpoint '{path}' not found (train it with `dvc repro pretrain`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"'{path}' is not a readable safetensors file ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a vlic codec checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})")
    if "config" not in meta:
        raise CheckpointError(f"'{path}' has no codec configuration in its metadata")
    try:
        cfg = CodecConfig.from_json(meta["config"])
    except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as e:  # JSONDecodeError: ValueError
        raise CheckpointError(f"'{path}' has an unreadable codec configuration ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    try:
        training = json.loads(meta.get("training", "{}") or "{}")
    except ValueError:
        training = {}
    try:
        model, prior = DiffusionCodec(cfg), build_prior(cfg)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        prior.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("prior.")})
    except (RuntimeError, ValueError, TypeError, ArithmeticError) as e:  # missing/unexpected keys, bad shapes
        first = str(e).strip().splitlines()
        raise CheckpointError(f"'{path}': its tensors do not fit its configuration "
                              f"({' '.join(x.strip() for x in first[:2])[:300]})") from None
    model.eval(), prior.eval()
    return Checkpoint(model, prior, meta.get("rate", ""), training, path)


def read_fingerprint(path: str | Path) -> str | None:
    """The fingerprint recorded in a checkpoint's metadata (None if the file is not a codec checkpoint)."""
    from safetensors.torch import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:
        return None
    return meta.get("fingerprint") if meta.get("format") == FORMAT else None
