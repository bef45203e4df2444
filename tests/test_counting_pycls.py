"""Counting the pycls baselines reproduces pycls's analytic params, MACs and acts exactly."""
from __future__ import annotations

import pytest

from perfmodel.counting import count_model
from perfmodel.models.cnn_configs import CNN_CONFIGS
from perfmodel.models.registry import build_model, complexity

# (MACs, params, acts) at 224x224, batch 1, as computed by pycls's complexity code
# (facebookresearch/pycls dev/model_complexity.json; pycls calls MACs "flops").
PYCLS = {
    "RegNetX-200MF": (199040872, 2684792, 2164056),
    "RegNetY-200MF": (199519076, 3162996, 2168052),  # squeeze-excitation
    "R-50-1x64d": (4089185256, 25557032, 11315688),  # ResNet-50: max-pool acts count
    "X-50-32x4d": (4230480872, 25028904, 14602216),  # grouped 3x3 convs
    "EN-B0": (385825092, 5288548, 6748036),  # depthwise convs, SE, SiLU
}


@pytest.mark.parametrize("name", list(PYCLS))
def test_counter_matches_pycls_exactly(name):
    model = build_model(name, device="meta")
    c = count_model(model)
    assert (c.macs, c.params, c.acts) == PYCLS[name]
    assert c.flops == 2 * c.macs


def test_batch_scales_macs_and_acts_not_params():
    model = build_model("RegNetX-200MF", device="meta")
    c = count_model(model, (3, 224, 224), batch=3)
    macs, params, acts = PYCLS["RegNetX-200MF"]
    assert (c.macs, c.params, c.acts) == (3 * macs, params, 3 * acts)
    assert c.input_shapes == ((3, 3, 224, 224),)


@pytest.mark.parametrize("name", list(CNN_CONFIGS))
def test_all_36_baselines_match_the_analytic_complexity(name):
    # perfmodel.models' closed forms equal pycls's published figures (tests/test_models_pycls.py)
    c = count_model(build_model(name, device="meta"))
    cx = complexity(name)
    assert (c.macs, c.params, c.acts) == (cx.macs, cx.params, cx.acts)
