"""The released FlowMo checkpoints: resumable download and a SHA-256 lock file (``vlic models download``).

FlowMo's authors publish ``flowmo_lo.pth`` and ``flowmo_hi.pth`` on the Hugging Face hub (FlowMo's README) without
checksums. The first download records each file's SHA-256 and size in a lock file (``models/flowmo.lock.json``:
commit it); every later download — on this machine or any other — must match it or is refused. Downloads resume from
a ``.part`` file (:func:`vlic.data.download.fetch`); without network the command stops with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlic.fetch import sha256_of
from vlic.fetch import DownloadError, RemoteFile, fetch

RELEASED_URLS = {
    "flowmo_lo": "https://huggingface.co/ksarge/FlowMo/resolve/main/flowmo_lo.pth",
    "flowmo_hi": "https://huggingface.co/ksarge/FlowMo/resolve/main/flowmo_hi.pth",
}
DEFAULT_DIR = Path("models")
DEFAULT_LOCK = DEFAULT_DIR / "flowmo.lock.json"


def read_lock(lock: Path) -> dict:
    if not lock.is_file():
        return {}
    try:
        data = json.loads(lock.read_text())
    except json.JSONDecodeError as e:
        raise DownloadError(f"lock file '{lock}' is not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise DownloadError(f"lock file '{lock}' should hold an object of {{name: {{sha256, size, url}}}}")
    return data


def download_model(name: str, dest_dir: str | Path = DEFAULT_DIR, lock: str | Path = DEFAULT_LOCK,
                   urls: dict[str, str] | None = None, timeout: float = 60.0) -> tuple[Path, str, bool]:
    """Download released model ``name`` into ``dest_dir``; returns (path, sha256, whether the lock was written now).
    Verified against the lock file if it has ``name``; otherwise its SHA-256 and size are recorded there."""
    urls = urls or RELEASED_URLS
    if name not in urls:
        raise DownloadError(f"unknown model '{name}'; known: {', '.join(sorted(urls))}")
    lock = Path(lock)
    entries = read_lock(lock)
    pinned = entries.get(name)
    url = urls[name]
    filename = url.rsplit("/", 1)[-1]
    remote = RemoteFile(url, filename, pinned["sha256"] if pinned else None, pinned.get("size") if pinned else None)
    path = fetch(remote, Path(dest_dir), timeout=timeout)
    digest = sha256_of(path)
    if pinned:
        return path, digest, False  # fetch verified size and SHA-256 against the lock
    entries[name] = {"sha256": digest, "size": path.stat().st_size, "url": url}
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    return path, digest, True
