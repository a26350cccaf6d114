"""Issue #18, items 5–6: a DPO checkpoint is one atomic unit (kills injected between its writes resume to the same
weights), and replicate worker processes die with their parent and never share a resume directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from vlic import files
from vlic.training.dpo import trainer as dpo_trainer
from vlic.training.dpo.trainer import CHECKPOINT_DIR, train_dpo

from test_training_dpo_trainer import _cfg, closer_wins, photos, tiny  # noqa: F401  (fixtures)

LIB = str(Path(__file__).resolve().parents[1] / "lib")


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no ``except Exception`` catches it."""


def _kill_at_second(monkeypatch, obj, name):
    """Make ``obj.name`` do its work and then 'kill' the process on its second call (the second checkpoint)."""
    original = getattr(obj, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed(f"killed after {name}")
        return out

    monkeypatch.setattr(obj, name, wrapper)


def _between_renames(monkeypatch):
    """Force the two-rename fallback of replace_dir and kill between the renames of the second checkpoint."""
    monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    original, calls = os.replace, {"n": 0}

    def replace(src, dst):
        if str(src).endswith(".staging"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise Killed("killed between the two renames")
        return original(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)


@pytest.fixture(scope="module")
def full(tiny, photos):  # noqa: F811
    return train_dpo(tiny, photos, closer_wins, _cfg(checkpoint_every=2), progress=False)


@pytest.mark.parametrize("where", ["weights", "state", "manifest-swap", "between-renames"])
def test_a_kill_between_checkpoint_writes_resumes_to_the_same_weights(where, tiny, photos, full, tmp_path,  # noqa: F811
                                                                       monkeypatch):
    import safetensors.torch

    with monkeypatch.context() as m:
        if where == "weights":
            _kill_at_second(m, safetensors.torch, "save_file")
        elif where == "state":
            _kill_at_second(m, torch, "save")
        elif where == "manifest-swap":
            _kill_at_second(m, dpo_trainer, "replace_dir")  # killed right after the swap, before anything else
        else:
            _between_renames(m)
        with pytest.raises(Killed):
            train_dpo(tiny, photos, closer_wins, _cfg(checkpoint_every=2), resume_dir=tmp_path, progress=False)
    resumed = train_dpo(tiny, photos, closer_wins, _cfg(checkpoint_every=2), resume_dir=tmp_path, progress=False)
    assert resumed.resumed_from in (2, 4)
    for (n, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), n
    assert [c["loss"] for c in resumed.curves] == [c["loss"] for c in full.curves]


def test_a_damaged_checkpoint_is_refused_not_mixed(tiny, photos, tmp_path, capsys):  # noqa: F811
    train_dpo(tiny, photos, closer_wins, _cfg(checkpoint_every=2), resume_dir=tmp_path, progress=False, stop_at=2)
    weights = tmp_path / "rank0" / CHECKPOINT_DIR / "policy.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    again = train_dpo(tiny, photos, closer_wins, _cfg(checkpoint_every=2), resume_dir=tmp_path, progress=False,
                      stop_at=2)
    assert again.resumed_from == 0
    assert "is damaged (policy.safetensors do not match the manifest)" in capsys.readouterr().out


# --- 6. worker processes and resume directories --------------------------------------------------------------------

_PARENT = textwrap.dedent("""
    import sys, time
    from vlic.processes import worker_pool
    pool = worker_pool(1)
    pool.submit(time.sleep, 60)          # a long job, as a DPO replicate
    deadline = time.time() + 30
    while not pool._processes and time.time() < deadline:
        time.sleep(0.05)
    print(list(pool._processes)[0], flush=True)
    time.sleep(60)                       # bounded: the test kills us long before
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its (dead) parent's reaper counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_workers_die_when_their_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], env={**os.environ, "PYTHONPATH": LIB},
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        worker = int(parent.stdout.readline())
        time.sleep(0.5)  # the worker is running its job
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.time() + 10
        while _alive(worker) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the worker outlived its killed parent"
    finally:
        parent.kill()
        parent.wait(10)


def test_a_resume_directory_is_used_by_one_process_at_a_time(tiny, photos, tmp_path):  # noqa: F811
    from vlic.processes import ResumeDirBusy, ResumeLock

    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from vlic.processes import ResumeLock
        lock = ResumeLock({str(tmp_path / 'rank0')!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)], env={**os.environ, "PYTHONPATH": LIB}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResumeDirBusy, match=f"in use by process {holder.pid}"):
            train_dpo(tiny, photos, closer_wins, _cfg(), resume_dir=tmp_path, progress=False)
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: the lock file stays, with its pid
        holder.wait(10)
    finally:
        holder.kill()
        holder.wait(10)
    assert (tmp_path / "rank0" / ".lock").is_file()
    res = train_dpo(tiny, photos, closer_wins, _cfg(), resume_dir=tmp_path, progress=False)  # stale lock: runs
    assert res.resumed_from == 0
    with ResumeLock(tmp_path / "rank0"):  # released after the run
        pass


# --- issue #25, item 7: a resume state is data, never code ----------------------------------------------------------

class _Planted:
    """What an attacker plants: unpickling it runs a command (here: creates a marker file)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_planted_pretraining_state_is_refused_and_runs_nothing(tmp_path):
    from vlic.training.pretrain import UnsafeResumeState, load_resume_state

    marker = tmp_path / "pwned"
    path = tmp_path / "codec_low.resume.pt"
    torch.save({"key": "k", "step": 3, "payload": _Planted(marker)}, path)
    with pytest.raises(UnsafeResumeState) as e:
        load_resume_state(path, "k")
    assert not marker.exists()
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "refused" in msg and "Unsupported global" in msg, msg


def test_a_planted_dpo_state_is_refused_and_runs_nothing(tiny, photos, tmp_path):  # noqa: F811
    import hashlib
    import json

    from vlic.training.pretrain import UnsafeResumeState

    train_dpo(tiny, photos, closer_wins, _cfg(checkpoint_every=2), resume_dir=tmp_path, progress=False, stop_at=2)
    folder = tmp_path / "rank0" / CHECKPOINT_DIR
    marker = tmp_path / "pwned"
    torch.save({"step": 2, "payload": _Planted(marker)}, folder / "state.pt")
    manifest = json.loads((folder / "manifest.json").read_text())  # the attacker fixes the manifest too
    manifest["files"]["state.pt"] = hashlib.sha256((folder / "state.pt").read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UnsafeResumeState, match="refused"):
        train_dpo(tiny, photos, closer_wins, _cfg(checkpoint_every=2), resume_dir=tmp_path, progress=False, stop_at=4)
    assert not marker.exists()
