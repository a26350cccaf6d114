"""Writing files without losing data: refuse to overwrite an input, check a destination before expensive work,
replace files and directories atomically.

A file is written to a temporary name in its destination folder, flushed, fsync'ed and renamed over the target with
:func:`os.replace` — a reader (or a crash, a full disk, ``ulimit -f``) sees the old file or the new one, never a cut
one. A directory is replaced the same way, in one rename of a fully written sibling (:func:`replace_dir`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


class DestinationError(ValueError):
    """An output path cannot be written (or would overwrite an input); the message names the path."""


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name one file (symlinks and hard links resolved); False if ``b`` does not exist."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def check_destination(output: str | Path, inputs: tuple[str | Path, ...] = ()) -> Path:
    """Raise :class:`DestinationError` unless ``output`` can be (over)written and is none of ``inputs``.

    Checked before any expensive work: the path is not an input, not a directory, its folder exists or can be
    created and is writable (a probe file is created and removed there), an existing file is writable.
    """
    out = Path(output)
    for i in inputs:
        if same_file(i, out):
            raise DestinationError(f"output '{out}' is the input '{i}'; refusing to overwrite it")
    if out.is_dir():
        raise DestinationError(f"output '{out}' is a directory, expected a file name")
    if str(out).endswith(os.sep) or out.name in ("", ".", ".."):
        raise DestinationError(f"output '{out}' is not a file name")
    folder = out.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DestinationError(f"cannot create folder '{folder}' for output '{out}': '{existing}' is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DestinationError(f"cannot write output '{out}': folder '{existing}' is not writable")
    if out.exists() and not out.is_file():
        raise DestinationError(f"output '{out}' exists and is not a regular file (a device, pipe or socket)")
    if out.exists() and not os.access(out, os.W_OK):
        raise DestinationError(f"cannot write output '{out}': the existing file is read-only")
    if folder.is_dir():
        try:
            fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise DestinationError(f"cannot write output '{out}': {e.strerror or e}") from None
    return out


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + fsync + :func:`os.replace`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def replace_dir(staging: str | Path, target: str | Path) -> Path:
    """Make the fully written directory ``staging`` become ``target`` in one step.

    Linux: ``renameat2(RENAME_EXCHANGE)`` swaps the two atomically when ``target`` exists, then the old one is
    deleted; elsewhere (or when the call is unavailable) the old target is first renamed aside, so at every moment one
    complete directory exists under ``target`` or under ``target.old`` (which a reader then uses, see
    :func:`recover_dir`).
    """
    staging, target = Path(staging), Path(target)
    if target.exists() and _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # now holds the old contents
        return target
    old = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def recover_dir(target: str | Path) -> Path | None:
    """The complete directory to read for ``target``: itself, or ``target.old`` after a crash mid-:func:`replace_dir`."""
    target = Path(target)
    if target.is_dir():
        return target
    old = target.with_name(target.name + ".old")
    return old if old.is_dir() else None


def _exchange(a: Path, b: Path) -> bool:
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(AT_FDCWD, os.fsencode(str(a)), AT_FDCWD, os.fsencode(str(b)), RENAME_EXCHANGE) == 0
