"""Activation memory = bytes saved for backward, counted with saved-tensor hooks."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from profilers.memory import activation_bytes, module_activation_bytes


def test_linear_relu_saves_input_and_relu_output():
    torch.manual_seed(0)
    batch, d_in, d_out = 16, 32, 24
    block = nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU())
    x = torch.randn(batch, d_in)
    # Linear saves its input x (its weight is a parameter, not an activation);
    # ReLU saves its output. float32: 4 bytes each.
    expected = 4 * batch * d_in + 4 * batch * d_out
    assert module_activation_bytes(block, x) == expected


def test_shared_storage_counts_once_and_parameters_never():
    x = torch.randn(64, 64, requires_grad=True)
    w = nn.Parameter(torch.randn(64, 64))
    # x is saved by both matmuls (and by the multiply): one storage, counted once
    got = activation_bytes(lambda: (x @ w) * x + x @ w.t(), [])
    assert got == 4 * 64 * 64 * 2  # x, and the product x @ w saved by the multiply


def test_excluded_tensors_do_not_count():
    x = torch.randn(10, 10, requires_grad=True)
    y = torch.randn(10, 10, requires_grad=True)
    assert activation_bytes(lambda: x @ y) == 2 * 400
    assert activation_bytes(lambda: x @ y, [y]) == 400


def test_no_grad_needed_means_nothing_saved():
    x = torch.randn(8, 8)
    assert activation_bytes(lambda: torch.relu(x)) == 0


def test_works_inside_no_grad_context():
    lin = nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with torch.no_grad():  # the profiler times fwd under no_grad; counting enables grad
        assert module_activation_bytes(lin, x) == 2 * 4 * 4


@pytest.mark.gpu
def test_gpu_peak_memory_sees_a_temporary():
    from profilers.device import open_device

    dev = open_device("cuda:0")
    dev.reset_peak_memory()
    base = torch.cuda.memory_allocated()
    t = torch.empty(64 << 20, dtype=torch.uint8, device="cuda")
    del t
    dev.synchronize()
    assert dev.peak_memory_bytes() >= base + (64 << 20)
