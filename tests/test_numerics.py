"""Pinned numerics: the pin overrides whatever kernels the caller's environment asked for, and results compare."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vlic import numerics, reproduce

PROBE = r"""
import hashlib, torch
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(16, 3, 3, padding=1))
opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
x = torch.randn(4, 3, 24, 24)
for _ in range(5):
    loss = ((net(x) - x) ** 2).mean() + (net[0].weight @ net[0].weight.transpose(-1, -2)).abs().mean()
    opt.zero_grad(); loss.backward(); opt.step()
h = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest()[:16]
print(h, torch.backends.cpu.get_cpu_capability())
"""


def _probe(extra_env: dict[str, str], pinned: bool) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED and k not in numerics.DEFAULT_THREADS}
    env.update(extra_env)
    env[numerics.SWITCH] = "pinned" if pinned else "native"
    code = ("import vlic.numerics as n; n.pin()\n" if pinned else "") + PROBE
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    digest, capability = out.stdout.split()
    return digest, capability


@pytest.mark.skipif(not numerics._cpu_flags() >= {"avx2", "fma"}, reason="the pin targets x86-64 CPUs with AVX2")
def test_pin_overrides_the_callers_kernel_choices():
    reference = _probe({}, pinned=True)
    assert reference[1] == "AVX2"
    for hostile in ({"ATEN_CPU_CAPABILITY": "default"}, {"DNNL_MAX_CPU_ISA": "AVX512_CORE", "ONEDNN_MAX_CPU_ISA": "ALL"},
                    {"MKL_CBWR": "COMPATIBLE"}):
        assert _probe(hostile, pinned=True) == reference, hostile
    # and without the pin the same program computes different floats (so the probe can tell kernels apart)
    assert _probe({"ATEN_CPU_CAPABILITY": "default"}, pinned=False)[0] != reference[0]


def test_pin_switch_and_defaults():
    env: dict[str, str] = {"OMP_NUM_THREADS": "7"}
    assert numerics.pin(env) and env["ATEN_CPU_CAPABILITY"] == "avx2" and env["OMP_NUM_THREADS"] == "7"
    assert env["MKL_NUM_THREADS"] == "2"
    off = {numerics.SWITCH: "native"}
    assert not numerics.pin(off) and "ATEN_CPU_CAPABILITY" not in off


def test_startup_hook_pins_a_fresh_interpreter(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    hook = numerics.install_hook(site)
    assert hook.read_text() == numerics.hook_text()
    code = f"import site, os; site.addsitedir({str(site)!r}); print(os.environ.get('ATEN_CPU_CAPABILITY'))"
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    env[numerics.SWITCH] = "pinned"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "avx2", out.stderr


def test_fingerprint_is_recorded_and_stable():
    a, b = numerics.fingerprint(), numerics.fingerprint()
    assert a == b and len(a["id"]) == 12 and a["torch"] and "settings" in a


def test_compare_skips_timings_and_finds_changed_numbers():
    old = {"a": 1.0, "seconds": 3.2, "nested": {"win_rate": 0.61, "train_seconds": 5}, "rows": [1, 2, float("nan")],
           "numerics": {"id": "x"}}
    new = {"a": 1.0, "seconds": 9.9, "nested": {"win_rate": 0.62, "train_seconds": 7}, "rows": [1, 2, float("nan")],
           "numerics": {"id": "y"}}
    cmp = reproduce.compare(old, new)
    assert cmp.compared == 5 and [d[0] for d in cmp.differ] == ["nested.win_rate"] and not cmp.missing
    assert reproduce.compare(old, json.loads(json.dumps(old))).identical
    assert reproduce.compare({"a": 1}, {"a": 1.0}).differ  # a type change is a change
    assert reproduce.compare({"a": 1}, {"b": 1}).missing == ["a", "b"]
    # how many model calls a run made depends on the verdict cache, not on the study
    assert reproduce.compare({"j": {"model_calls_this_run": 0, "model_s_per_pair": 0.1, "score": 0.9}},
                             {"j": {"model_calls_this_run": 576, "model_s_per_pair": 0.2, "score": 0.9}}).identical
    assert reproduce.compare({"buffer": {"judge_calls": 0, "judged": 256}}, {"buffer": {"judge_calls": 512, "judged": 256}}).identical


# --- issue #25, item 1: numpy/scipy's OpenBLAS is pinned too ----------------------------------------------------------

def _blas_in_subprocess(extra_env: dict[str, str], pinned: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED and k not in numerics.DEFAULT_THREADS}
    env.update(extra_env)
    env[numerics.SWITCH] = "pinned" if pinned else "native"
    code = ("import vlic.numerics as n; n.pin()\n" if pinned else "import vlic.numerics as n\n") + \
        "import json, numpy, scipy.linalg; fp = n.fingerprint(); print(json.dumps({'blas': fp['blas'], 'id': fp['id']}))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_openblas_core_type_and_threads_are_pinned_and_in_the_fingerprint():
    assert numerics.PINNED["OPENBLAS_CORETYPE"] == "Haswell" and numerics.DEFAULT_THREADS["OPENBLAS_NUM_THREADS"]
    # the machine may set its own core type (some do, for older OpenBLAS builds): the pin overrides it
    pinned = _blas_in_subprocess({"OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_NUM_THREADS": "1"}, pinned=True)
    assert pinned["blas"] and all(b["architecture"] == "Haswell" for b in pinned["blas"]), pinned
    assert all(b["threads"] == 1 for b in pinned["blas"])  # a thread count the user chose is kept, and recorded
    other_core = _blas_in_subprocess({"OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_NUM_THREADS": "1"}, pinned=False)
    assert {b["architecture"] for b in other_core["blas"]} != {"Haswell"} and other_core["id"] != pinned["id"]
    two_threads = _blas_in_subprocess({"OPENBLAS_NUM_THREADS": "2"}, pinned=True)
    assert all(b["threads"] == 2 for b in two_threads["blas"]) and two_threads["id"] != pinned["id"]


def test_fingerprint_changes_with_the_blas_thread_count():
    from threadpoolctl import threadpool_limits

    fp = numerics.fingerprint()
    assert fp["settings"]["OPENBLAS_CORETYPE"] == os.environ.get("OPENBLAS_CORETYPE", "")
    with threadpool_limits(limits=7, user_api="blas"):
        changed = numerics.fingerprint()
    assert {b["threads"] for b in changed["blas"]} == {7} and changed["id"] != fp["id"]
    assert numerics.fingerprint() == fp


def test_compare_skips_run_records_such_as_the_resumed_step():
    # issue #25 item 2: results/dpo.json recorded `resumed_from_step: 120` (a resumed run); a fresh clone writes 0
    committed = {"dpo": {"resumed_from_step": 120, "win_rate": 0.19, "cache_hits": 12, "judge_calls": 512}}
    fresh = {"dpo": {"resumed_from_step": 0, "win_rate": 0.19, "cache_hits": 0, "judge_calls": 0}}
    cmp = reproduce.compare(committed, fresh)
    assert cmp.identical and cmp.compared == 1
    assert not reproduce.compare({"win_rate": 0.19}, {"win_rate": 0.2}).identical  # results are still compared
