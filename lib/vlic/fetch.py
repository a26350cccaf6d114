"""Resumable, checksummed HTTP downloads (datasets, model checkpoints): one line on failure, never a traceback.

A download resumes from a ``.part`` file with an HTTP ``Range`` request and is kept only when its size and SHA-256
match. Without network it stops with one line saying which host could not be reached.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tqdm.auto import tqdm


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class DownloadError(RuntimeError):
    """A download failed (offline, HTTP error, or checksum mismatch); the message is one line."""


@dataclass(frozen=True)
class RemoteFile:
    url: str
    filename: str
    sha256: str | None  # None: not published — the caller records the hash of the first download (see vlic.codec.flowmo.download)
    size: int | None = None
    extract: bool = False     # unpack (zip / tar.gz) into the collection folder after verifying


def fetch(remote: RemoteFile, dest_dir: Path, timeout: float = 60.0, chunk: int = 1 << 20) -> Path:
    """Download ``remote`` into ``dest_dir`` (resuming a ``.part`` file) and verify size and SHA-256. Without a pinned
    SHA-256 an existing file is kept as it is and a new download must reach the server's Content-Length."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / remote.filename
    if target.is_file() and (remote.sha256 is None or sha256_of(target) == remote.sha256):
        return target
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(remote.url, headers={"User-Agent": "vlic-compendium"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    host = urlsplit(remote.url).netloc
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have and response.status == 206
            if have and not resumed:  # the server ignored Range: start over
                have = 0
            total = response.headers.get("Content-Length")
            total = int(total) + have if total is not None else remote.size
            with open(part, "ab" if resumed else "wb") as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=remote.filename
            ) as bar:
                for block in iter(lambda: response.read(chunk), b""):
                    out.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{remote.url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(
            f"cannot download {remote.filename} from {host} ({reason}); this download needs network access — "
            f"the laptop profile runs without it"
        ) from None
    size = part.stat().st_size
    expected = remote.size if remote.size is not None or remote.sha256 is not None else total
    if expected is not None and size != expected:
        raise DownloadError(
            f"{remote.filename}: got {size} bytes, expected {expected}; the partial file '{part}' is kept, rerun to resume"
        )
    got = sha256_of(part)
    if remote.sha256 is not None and got != remote.sha256:
        part.unlink()
        raise DownloadError(f"{remote.filename}: sha256 {got[:12]}… does not match the pinned {remote.sha256[:12]}…; deleted")
    part.replace(target)
    return target


def hub_dir() -> Path:
    """torch.hub's cache folder (``$TORCH_HOME/hub``): where hub weights are found when a user has them. Nothing in the
    laptop profile fills it; every "available offline, else why" check of hub weights looks here."""
    import torch

    return Path(torch.hub.get_dir())


def hub_checkpoints() -> Path:
    """``hub_dir() / "checkpoints"``: torch.hub's downloaded weight files."""
    return hub_dir() / "checkpoints"
