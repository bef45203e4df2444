"""The op counter (perfmodel.counting) agrees with the pycls analytic complexity."""
from __future__ import annotations

import pytest

from perfmodel.models.registry import build_model, complexity, resolve

counter = pytest.importorskip("perfmodel.counting.counter")

NAMES = ["RegNetX-200MF", "RegNetY-200MF", "R-50-1x64d", "X-50-32x4d", "EN-B0"]


@pytest.mark.parametrize("name", NAMES)
def test_counter_agrees_with_pycls(name):
    p = resolve(name, resolution=64)  # small images keep the test fast
    cx = complexity(p)
    model = build_model(p, device="meta")
    c = counter.count_model(model, model.input_size, batch=2)
    assert c.params == cx.params
    assert c.macs == 2 * cx.macs
    assert c.acts == 2 * cx.acts
