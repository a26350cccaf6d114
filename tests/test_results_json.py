"""Results files: every chapter writes its JSON through write_metrics (with the numerics fingerprint), table cells
through json_value (NaN → null, rounded, numpy scalars as Python ones)."""

from __future__ import annotations

import json

import numpy as np

from vlic.notebooks import json_value, write_metrics


def test_json_value():
    assert json_value(float("nan")) is None and json_value(np.float32("nan")) is None
    assert json_value(np.float64(0.123456789)) == 0.12346 and json_value(0.123456789, 3) == 0.123
    assert json_value(np.int64(7)) == 7 and type(json_value(np.int64(7))) is int
    assert json_value(np.bool_(True)) is True and json_value("a") == "a" and json_value(None) is None


def test_write_metrics_adds_the_numerics_fingerprint(tmp_path):
    path = write_metrics(tmp_path / "r.json", {"psnr": json_value(np.float64(20.123456))})
    got = json.loads(path.read_text())
    assert got["psnr"] == 20.12346 and "numerics" in got
