"""The two codec families behind one door: the laptop UNet codec (``vlic-codec/1`` safetensors,
:mod:`vlic.codec.checkpoint`) and FlowMo (a released ``.pth``, or ``vlic-flowmo/1`` safetensors with a fitted token
prior, :mod:`vlic.codec.flowmo.checkpoint`). Chapters, the CLI and the trainers load, wrap and save codecs only
through here, so every one of them accepts both families.

Both checkpoint kinds have ``model`` (networks with the calls of :mod:`vlic.codec.flow_model`), ``prior``, ``rate``,
``training``, ``path``, ``fingerprint``, ``config`` and ``save(path)``; both codecs (:class:`ImageCodec`,
:class:`~vlic.codec.flowmo.codec.FlowMoCodec`) have ``compress``, ``decompress``, ``decode_condition``, ``sample``,
``mean_pixels`` (None for FlowMo: it has no mean head), ``decode_codes`` and ``tokens``.
"""

from __future__ import annotations

from pathlib import Path

from vlic.codec import checkpoint as unet_checkpoint
from vlic.codec.flowmo import checkpoint as flowmo_checkpoint

FAMILIES = ("unet", "flowmo")


class CodecLoadError(ValueError):
    """A codec checkpoint cannot be loaded (one line naming the file)."""


def _format(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format")
    except Exception:
        return None


def family_of(path: str | Path) -> str:
    """``"flowmo"`` for a ``.pth``/``.pt`` or ``vlic-flowmo/1`` file, else ``"unet"`` (what :func:`load` will try)."""
    return "flowmo" if flowmo_checkpoint.is_flowmo_checkpoint(path) else "unet"


def load(path: str | Path):
    """A :class:`~vlic.codec.checkpoint.Checkpoint` or :class:`~vlic.codec.flowmo.checkpoint.FlowMoCheckpoint`,
    by the file's format; :class:`CodecLoadError` (one line) if it is neither or does not load."""
    from vlic.codec.flowmo.model import FlowMoWeightsError

    path = Path(path)
    if not path.is_file():
        raise CodecLoadError(f"codec checkpoint '{path}' not found (train or import it with `dvc repro pretrain`)")
    try:
        if family_of(path) == "flowmo":
            return flowmo_checkpoint.load_codec_checkpoint(path)
        return unet_checkpoint.load(path)
    except (FlowMoWeightsError, unet_checkpoint.CheckpointError) as e:
        raise CodecLoadError(str(e)) from None


def image_codec(ck):
    """The codec (pixels ⇄ ``.vlic`` bytes) of a checkpoint of either family."""
    if isinstance(ck, flowmo_checkpoint.FlowMoCheckpoint):
        from vlic.codec.flowmo.codec import FlowMoCodec

        return FlowMoCodec(ck)
    from vlic.codec.image_codec import ImageCodec

    return ImageCodec(ck)


def load_codec(path: str | Path):
    return image_codec(load(path))


def read_fingerprint(path: str | Path) -> str | None:
    """The fingerprint in a codec checkpoint's metadata, either family (None for other files and for a bare ``.pth``,
    whose fingerprint needs its weights hashed)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:
        return None
    return meta.get("fingerprint") if meta.get("format") in (unet_checkpoint.FORMAT, flowmo_checkpoint.FORMAT) else None


def family(ck) -> str:
    return "flowmo" if isinstance(ck, flowmo_checkpoint.FlowMoCheckpoint) else "unet"


class FamilyError(ValueError):
    """A chapter built for one codec family was given the other (one line saying what to run instead)."""


def require_unet(path: str | Path, what: str) -> None:
    """:class:`FamilyError` if ``path`` is a FlowMo codec: for the chapters whose training is built on the laptop
    codec's own parts (its mean head, FSQ rate term or UNet decoder)."""
    if Path(path).is_file() and family_of(path) == "flowmo":
        raise FamilyError(f"{what}; '{path}' is a FlowMo codec (codec.family: flowmo), for which this chapter is not "
                          f"built — run it with codec.family: unet (the VLIC chain under FlowMo ends at "
                          f"`dvc exp run evaluate`)")
