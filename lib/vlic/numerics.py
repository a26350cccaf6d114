"""Pinned numerics: the one place that decides which CPU kernels the study's floating-point arithmetic runs on.

Two x86-64 machines compute different floats for the same PyTorch program when their kernels differ, and PyTorch,
oneDNN and MKL each choose kernels by instruction set at run time (AVX-512 on one machine, AVX2 on the next, and MKL
takes vendor-specific paths). Measured on this study's codec (20 training steps, one thread): the default, ATen
capped at AVX2, ATen at its portable ``default`` kernels, oneDNN capped at AVX2, ``MKL_CBWR=COMPATIBLE`` and two
threads instead of one give six different sets of weights. A change in the last bit of one step grows into a
different pre-trained codec, a different DPO run and different headline numbers.

numpy and scipy do not use MKL: their wheels bundle OpenBLAS, which picks its kernels by CPU too (``SkylakeX`` on an
AVX-512 machine, ``Haswell`` on an AVX2 one) and honours ``OPENBLAS_CORETYPE`` — some machines set that variable
themselves, to another value. So the study runs with every dispatcher capped at **AVX2** (which every x86-64 machine
of the last decade has):

    ATEN_CPU_CAPABILITY=avx2   ONEDNN_MAX_CPU_ISA=AVX2 (and DNNL_MAX_CPU_ISA)   MKL_CBWR=AVX2,STRICT
    OPENBLAS_CORETYPE=Haswell  (OpenBLAS's AVX2 kernels; overrides whatever the machine set)

plus a fixed default thread count (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` = 2 unless the
user sets them; the stages also set their thread counts from params, which are part of the recipe). These variables must be in the
environment before torch initialises its CPU backends, so they are applied at interpreter start-up by a ``.pth``
hook that ``vlic numerics install`` writes into the environment's site-packages (``make install`` runs it). Every
Python process of that environment then honours them — ``make study``, ``dvc repro`` with the venv active, the
papermill kernels, ``pytest`` and ``accelerate launch`` — without any of them doing anything. ``VLIC_NUMERICS=native``
turns the pin off for one command (for speed, or to measure the noise band).

:func:`fingerprint` records what a run computed with (torch/numpy versions, the pinned settings, the capability
ATen really used, the core type and thread count each loaded OpenBLAS really uses — read by ``threadpoolctl`` — and
the CPU flags the pin relies on); every results JSON carries it, so a reader can tell whether
two runs are comparable bit for bit. Machines that are not x86-64 (ARM, a GPU) cannot match these bits; the README
states how far the headline numbers move between numerics settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path

PINNED: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2,STRICT",
    "OPENBLAS_CORETYPE": "Haswell",  # numpy's and scipy's bundled OpenBLAS: its AVX2 kernels
}
DEFAULT_THREADS: dict[str, str] = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
SWITCH = "VLIC_NUMERICS"  # "native" = no pin (the machine's own kernels)
HOOK_NAME = "vlic_numerics.pth"
CPU_FLAGS = ("avx2", "fma", "f16c")  # what the AVX2 kernels need (avx512 presence does not matter under the pin)


def enabled(environ: os._Environ | dict | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(SWITCH, "pinned").strip().lower() not in ("native", "off", "0", "no")


def pin(environ: os._Environ | dict | None = None) -> bool:
    """Put the pinned settings into ``environ`` (default: this process's environment, inherited by child processes).

    Returns whether the pin is on. Safe to call more than once. It cannot change kernels that torch has already
    chosen: call it before ``import torch`` (the start-up hook does).
    """
    env = os.environ if environ is None else environ
    if not enabled(env):
        return False
    env.update(PINNED)
    for key, value in DEFAULT_THREADS.items():
        env.setdefault(key, value)
    return True


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def blas() -> list[dict]:
    """The BLAS libraries loaded in this process (numpy's and scipy's OpenBLAS, …) as ``threadpoolctl`` sees them:
    which kernels (``architecture``, OpenBLAS's core type) and how many threads each really uses."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # a declared dependency; without it the fingerprint says so
        return [{"library": "unknown (threadpoolctl is not installed)"}]
    rows = [{"library": Path(i.get("filepath", "")).name.split("-")[0], "api": i.get("internal_api"),
             "version": i.get("version"), "architecture": i.get("architecture"), "threads": i.get("num_threads")}
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return sorted(rows, key=lambda r: (str(r["library"]), str(r["api"])))


def fingerprint() -> dict:
    """What this process computes with. Equal ``id`` ⇒ the study's numbers are expected to match bit for bit."""
    import numpy
    import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS, so it is recorded)
    import torch

    flags = _cpu_flags()
    fields = {
        "pinned": all(os.environ.get(k) == v for k, v in PINNED.items()),
        "settings": {k: os.environ.get(k, "") for k in (*PINNED, *DEFAULT_THREADS)},
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": blas(),
        "machine": platform.machine(),
        "cpu_flags": {f: f in flags for f in CPU_FLAGS},
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": "{}.{}".format(*sys.version_info[:2]),
    }
    fields["id"] = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return fields


def hook_text() -> str:
    # A .pth line that starts with "import" is executed at interpreter start-up (site.py). Keep it one line, no torch.
    # A missing or broken vlic must never stop Python from starting: the fingerprint then says "pinned": false.
    return ('import sys; exec("try:\\n    import vlic.numerics as _n\\n    _n.pin()\\nexcept Exception:\\n    pass\\n")\n')


def install_hook(site_dir: str | Path | None = None) -> Path:
    """Write the start-up hook into ``site_dir`` (default: this interpreter's site-packages). Idempotent."""
    import sysconfig

    target = Path(site_dir or sysconfig.get_paths()["purelib"]) / HOOK_NAME
    target.write_text(hook_text())
    return target


def hook_installed() -> bool:
    import sysconfig

    path = Path(sysconfig.get_paths()["purelib"]) / HOOK_NAME
    return path.is_file() and path.read_text() == hook_text()
