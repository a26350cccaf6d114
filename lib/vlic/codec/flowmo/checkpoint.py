"""FlowMo codec checkpoints: a released FlowMo ``.pth`` (uniform token prior) or a ``vlic-flowmo/1`` safetensors
file (FlowMo weights + a token prior fitted to its tokens + the configuration), and the fingerprint written into every
``.vlic`` file so a file is only decoded by the model that made it.

A ``.pth``'s architecture is read off its tensor shapes (:func:`infer_config`, assuming FlowMo's ``dit_b_4`` DiT entry
and the released ``code_length``/``image_size``), or from a FlowMo config saved next to it as ``<name>.json``
(:func:`sidecar_config`). The token prior is the project's :class:`~vlic.codec.prior.TokenPrior` with
``context_dim`` binary channels and one block per tile (√code_length × √code_length tokens).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from vlic.codec.flowmo.model import FlowMo, FlowMoConfig, FlowMoWeightsError, check_state_dict, read_state_dict
from vlic.codec.checkpoint import WeightsFingerprint
from vlic.codec.prior import TokenPrior

FORMAT = "vlic-flowmo/1"
DEFAULT_PRIOR = {"dim": 64, "layers": 2, "heads": 4}


def infer_config(state: dict[str, torch.Tensor], name: str, base: FlowMoConfig | None = None) -> FlowMoConfig:
    """A FlowMo architecture from its tensor shapes, assuming FlowMo's DiT entry (``dit_b_4`` unless ``base`` says
    otherwise) and the released ``code_length`` / ``image_size`` (not visible in weights)."""
    base = base or FlowMoConfig()
    try:
        enc_hidden, in_ch = state["encoder.img_in.weight"].shape
        dec_hidden = state["decoder.img_in.weight"].shape[0]
        context_dim = state["encoder.txt_in.weight"].shape[1]
        head_dim = state["encoder.double_blocks.0.img_attn.norm.query_norm.scale"].shape[0]
        mlp_hidden = state["encoder.double_blocks.0.img_mlp.0.weight"].shape[0]
    except KeyError as e:
        raise FlowMoWeightsError(f"'{name}' is not a FlowMo state dict (no {e.args[0]!r})") from None
    unit = base.hidden_size // 4
    depth = lambda part: len({k.split(".")[2] for k in state if k.startswith(f"{part}.double_blocks.")})  # noqa: E731
    if enc_hidden % unit or dec_hidden % unit or enc_hidden // head_dim != base.num_heads:
        raise FlowMoWeightsError(f"'{name}': widths {enc_hidden}/{dec_hidden} with head dim {head_dim} do not follow the "
                                 f"DiT entry (hidden {base.hidden_size}, {base.num_heads} heads); put its FlowMo config "
                                 f"next to it as '{Path(name).with_suffix('.json').name}'")
    return FlowMoConfig.from_dict({**json.loads(base.to_json()), "patch_size": int(round(math.sqrt(in_ch / 3))),
                                   "enc_mup_width": enc_hidden // unit, "mup_width": dec_hidden // unit,
                                   "context_dim": context_dim, "enc_depth": depth("encoder"),
                                   "dec_depth": depth("decoder"), "mlp_ratio": mlp_hidden / enc_hidden})


def sidecar_config(path: Path) -> FlowMoConfig | None:
    """``<name>.json`` next to a checkpoint: FlowMo's nested config (``model``/``data``/``eval``, optional ``dit``)
    or a flat :class:`FlowMoConfig` JSON."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        raw = json.loads(side.read_text())
        if "model" in raw:
            return FlowMoConfig.from_flowmo(raw, raw.get("dit"))
        return FlowMoConfig.from_dict(raw)
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise FlowMoWeightsError(f"'{side}' is not a FlowMo config ({type(e).__name__}: {e})") from None


def build_token_prior(config: FlowMoConfig, dim: int = 64, layers: int = 2, heads: int = 4) -> TokenPrior:
    """The project's token prior over FlowMo tokens: ``context_dim`` binary channels, one block = one tile."""
    return TokenPrior((2,) * config.context_dim, dim, layers, heads, block=token_side(config))


def uniform_prior(config: FlowMoConfig) -> TokenPrior:
    """A token prior whose every probability is ½ (all weights zero): exactly one bit per coded bit."""
    prior = build_token_prior(config, dim=8, layers=1, heads=1)
    with torch.no_grad():
        for p in prior.parameters():
            p.zero_()
    return prior.eval()


def token_side(config: FlowMoConfig) -> int:
    side = math.isqrt(config.code_length)
    if side * side != config.code_length:
        raise ValueError(f"the FlowMo codec lays each tile's {config.code_length} tokens out as a square; "
                         f"code_length must be a square number")
    return side


def fingerprint(config: FlowMoConfig, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(FORMAT.encode() + config.to_json().encode())
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class FlowMoCheckpoint(WeightsFingerprint):
    model: FlowMo
    prior: TokenPrior
    path: Path | None = None
    prior_kind: str = "uniform"  # "uniform" (a bare FlowMo checkpoint) or "fitted"
    training: dict | None = None
    rate: str = ""               # the study's rate point ("low", "high") once imported by chapter 02

    fingerprint_of = staticmethod(fingerprint)

    @property
    def config(self) -> FlowMoConfig:
        return self.model.config

    def save(self, path: str | Path) -> Path:
        return save_codec_checkpoint(self, path)


def is_flowmo_checkpoint(path: str | Path) -> bool:
    """True for ``.pth``/``.pt`` files and for safetensors written by :func:`save_codec_checkpoint`."""
    path = Path(path)
    if path.suffix in (".pth", ".pt"):
        return True
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return (f.metadata() or {}).get("format") == FORMAT
        except Exception:
            return False
    return False


def _metadata_json(path: Path, meta: dict, field: str, default=None) -> dict:
    """Metadata field ``field`` of a ``vlic-flowmo/1`` file, a JSON object; one line naming the file and field."""
    if field not in meta:
        if default is not None:
            return default
        raise FlowMoWeightsError(f"'{path}': metadata field '{field}' is missing (a {FORMAT} checkpoint records it)")
    try:
        value = json.loads(meta[field])
    except (ValueError, TypeError) as e:
        raise FlowMoWeightsError(f"'{path}': metadata field '{field}' is not JSON ({e})") from None
    if not isinstance(value, dict):
        raise FlowMoWeightsError(f"'{path}': metadata field '{field}' is a JSON {type(value).__name__}, expected an object")
    return value


def _described_model(path: Path, meta: dict) -> tuple[FlowMo, TokenPrior, FlowMoConfig]:
    """The (untrained) FlowMo and token prior a ``vlic-flowmo/1`` file's metadata describes."""
    raw = _metadata_json(path, meta, "config")
    try:
        cfg = FlowMoConfig.from_dict(raw)
        model = FlowMo(cfg)
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise FlowMoWeightsError(f"'{path}': metadata field 'config' is not a consistent FlowMo configuration ({e})") from None
    prior_dims = _metadata_json(path, meta, "prior", DEFAULT_PRIOR)
    try:
        prior = build_token_prior(cfg, **prior_dims)
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise FlowMoWeightsError(f"'{path}': metadata field 'prior' does not describe a token prior ({e})") from None
    return model, prior, cfg


def load_codec_checkpoint(path: str | Path, config: FlowMoConfig | None = None, key: str | None = None) -> FlowMoCheckpoint:
    """A released-layout ``.pth`` (uniform prior) or a ``vlic-flowmo/1`` safetensors checkpoint (fitted prior)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        if not path.is_file():
            raise FlowMoWeightsError(f"FlowMo codec checkpoint '{path}' not found")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
        except Exception as e:
            raise FlowMoWeightsError(f"'{path}' is not a readable safetensors file ({type(e).__name__})") from None
        if meta.get("format") != FORMAT:
            raise FlowMoWeightsError(f"'{path}' is not a FlowMo codec checkpoint (format {meta.get('format')!r}, "
                                     f"expected {FORMAT!r})")
        model, prior, cfg = _described_model(path, meta)
        state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        check_state_dict(model, state, str(path))
        model.load_state_dict(state)
        prior_state = {k[6:]: v for k, v in tensors.items() if k.startswith("prior.")}
        check_state_dict(prior, prior_state, str(path))
        prior.load_state_dict(prior_state)
        return FlowMoCheckpoint(model.eval(), prior.eval(), path, "fitted", _metadata_json(path, meta, "training", {}),
                                meta.get("rate", ""))
    state = read_state_dict(path, key)
    cfg = config or sidecar_config(path) or infer_config(state, str(path))
    with torch.device("meta"):
        model = FlowMo(cfg)
    check_state_dict(model, state, str(path))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    return FlowMoCheckpoint(model.eval(), uniform_prior(cfg), path, "uniform")


def save_codec_checkpoint(ck: FlowMoCheckpoint, path: str | Path, prior_dims: dict | None = None) -> Path:
    """FlowMo weights + fitted token prior + configuration in one safetensors file (format ``vlic-flowmo/1``)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = ck.tensors()
    prior = prior_dims or {"dim": ck.prior.bos.shape[0], "layers": len(ck.prior.layers), "heads": ck.prior.layers[0].heads}
    meta = {"format": FORMAT, "config": ck.config.to_json(), "prior": json.dumps(prior, sort_keys=True),
            "fingerprint": fingerprint(ck.config, tensors), "training": json.dumps(ck.training or {}, sort_keys=True),
            "rate": ck.rate}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    ck.path = path
    return path
