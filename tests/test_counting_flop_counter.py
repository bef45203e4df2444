"""Agreement with torch.utils.flop_counter.FlopCounterMode wherever both count."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import flop_counter as fc

from perfmodel.counting import count_model


def reference(model, x, backward):
    """FlopCounterMode's total for one forward (and backward) pass."""
    with fc.FlopCounterMode(display=False, custom_mapping=_FUSED_CPU_SDPA) as counter:
        out = model(x)
        if backward:
            out.backward(torch.ones_like(out))
    return counter.get_total_flops()


# FlopCounterMode has formulas for the CUDA fused attention kernels but not the CPU one
# (so it counts 0 for SDPA on CPU); giving it its own formulas for the CPU kernels lets
# the totals be compared.
_FUSED_CPU_SDPA = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
        lambda q, k, v, *args, out_shape=None, **kw: fc.sdpa_flop_count(q, k, v),
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward:
        lambda dout, q, k, v, *args, out_shape=None, **kw: fc.sdpa_backward_flop_count(dout, q, k, v),
}


class ConvNet(nn.Module):
    def __init__(self, groups=1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=2, dilation=2, bias=False), nn.ReLU(),
            nn.Conv2d(16, 32, 1, bias=False), nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(32, 32, 5, padding=2, groups=groups, bias=False),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10, bias=False))

    def forward(self, x):
        return self.body(x)


class MatmulNet(nn.Module):
    """`@`, torch.matmul, einsum and bmm on activations."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(12, 20))
        self.v = nn.Parameter(torch.randn(20, 6))

    def forward(self, x):  # x: [b, 7, 12]
        h = x @ self.w  # [b, 7, 20]
        g = torch.einsum("bik,bjk->bij", h, h)  # [b, 7, 7]
        y = torch.matmul(g, h)  # [b, 7, 20]
        return torch.bmm(y, self.v.expand(y.shape[0], 20, 6))


class AttentionNet(nn.Module):
    def __init__(self, causal):
        super().__init__()
        self.causal = causal
        self.qkv = nn.Linear(32, 96, bias=False)
        self.out = nn.Linear(32, 32, bias=False)

    def forward(self, x):  # x: [b, s, 32], 4 heads of 8
        b, s, _ = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, 4, 8).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.out(y.transpose(1, 2).reshape(b, s, 32))


CASES = [
    ("convnet", ConvNet, (3, 32, 32)),
    ("depthwise", lambda: ConvNet(groups=32), (3, 32, 32)),
    ("matmul", MatmulNet, (7, 12)),
    ("attention", lambda: AttentionNet(False), (10, 32)),
    ("causal_attention", lambda: AttentionNet(True), (10, 32)),
]


# FlopCounterMode over-counts grouped weight gradients (tested below): depthwise is fwd only.
PAIRS = [(*c, bw) for c in CASES for bw in (False, True) if not (c[0] == "depthwise" and bw)]


@pytest.mark.parametrize("name,make,shape,backward", PAIRS,
                         ids=[f"{p[0]}-{'fwd_bwd' if p[3] else 'fwd'}" for p in PAIRS])
def test_total_flops_agree_with_flop_counter(name, make, shape, backward):
    torch.manual_seed(0)
    model = make()
    x = torch.randn(2, *shape)  # real CPU run for the reference, meta for ours
    ours = count_model(model, shape, batch=2, backward=backward)
    assert ours.flops == reference(model, x, backward) > 0


def test_flop_counter_misses_cpu_sdpa_which_we_count():
    model = AttentionNet(False)
    x = torch.randn(2, 10, 32)
    with fc.FlopCounterMode(display=False) as counter:
        model(x)
    linear_only = 2 * 2 * 10 * 32 * (96 + 32)
    assert counter.get_total_flops() == linear_only  # the fused CPU kernel counts 0
    ours = count_model(model, (10, 32), batch=2)
    attention = [r for r in ours.ops if r.kind == "attention"]
    assert len(attention) == 1
    assert attention[0].cost.flops == fc.sdpa_flop_count((2, 4, 10, 8), (2, 4, 10, 8), (2, 4, 10, 8))
    assert ours.flops == linear_only + attention[0].cost.flops


def test_biases_are_the_only_difference_with_flop_counter():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    x = torch.randn(4, 3, 6, 6)
    ours = count_model(model, (3, 6, 6), batch=4)
    bias_outputs = 4 * 8 * 6 * 6 + 4 * 5  # pycls: one MAC per biased output element
    assert ours.flops == reference(model, x, False) + 2 * bias_outputs


def test_grouped_conv_weight_gradient_is_not_multiplied_by_groups():
    # FlopCounterMode counts a grouped conv's weight gradient as if the conv were dense
    # (groups times too many); ours counts it as many MACs as the forward.
    conv = nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=False)
    x = torch.randn(2, 8, 10, 10, requires_grad=True)
    ours = count_model(conv, inputs=x, backward=True)
    fwd = 2 * 2 * 16 * 100 * 2 * 9
    assert ours.fwd.flops == fwd and ours.bwd.flops == 2 * fwd  # dgrad + wgrad
    with fc.FlopCounterMode(display=False) as counter:
        conv(x).sum().backward()
    assert counter.get_total_flops() == fwd + fwd + 4 * fwd  # fwd, dgrad, 4x wgrad
