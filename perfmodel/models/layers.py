"""Small torch building blocks shared by the CNN families (pycls-style helpers)."""
from __future__ import annotations

import torch
from torch import nn

from perfmodel.errors import PerfmodelError
from perfmodel.models.complexity import Complexity, conv2d_cx, gap2d_cx, norm2d_cx

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU, "gelu": nn.GELU}


def conv2d(w_in: int, w_out: int, k: int, *, stride: int = 1, groups: int = 1,
           bias: bool = False) -> nn.Conv2d:
    """A k x k convolution with 'same' padding (odd k only)."""
    if k % 2 != 1:
        raise PerfmodelError(f"only odd kernel sizes are supported, got {k}")
    return nn.Conv2d(w_in, w_out, k, stride=stride, padding=(k - 1) // 2,
                     groups=groups, bias=bias)


def norm2d(w_in: int) -> nn.BatchNorm2d:
    """BatchNorm with pycls's defaults (eps 1e-5, momentum 0.1)."""
    return nn.BatchNorm2d(w_in, eps=1e-5, momentum=0.1)


def activation(name: str) -> nn.Module:
    """An activation layer by name (`relu`, `silu`/`swish`, `gelu`)."""
    try:
        return ACTIVATIONS[name.lower()]()
    except KeyError:
        raise PerfmodelError(
            f"unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}"
        ) from None


class SE(nn.Module):
    """Squeeze-and-Excitation: global pool, 1x1 conv, act, 1x1 conv, sigmoid, scale."""

    def __init__(self, w_in: int, w_se: int, act: str = "relu"):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.f_ex = nn.Sequential(
            conv2d(w_in, w_se, 1, bias=True),
            activation(act),
            conv2d(w_se, w_in, 1, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.f_ex(self.avg_pool(x))

    @staticmethod
    def complexity(cx: Complexity, w_in: int, w_se: int) -> Complexity:
        h, w = cx.h, cx.w
        cx = gap2d_cx(cx, w_in)
        cx = conv2d_cx(cx, w_in, w_se, 1, bias=True)
        cx = conv2d_cx(cx, w_se, w_in, 1, bias=True)
        return cx.add(h=h, w=w)


class ConvBnAct(nn.Module):
    """k x k conv (stride s), BN, act: the stems; subclasses fix `kernel` and `stride`."""

    kernel, stride = 3, 1

    def __init__(self, w_in: int, w_out: int, act: str = "relu"):
        super().__init__()
        self.conv = conv2d(w_in, w_out, self.kernel, stride=self.stride)
        self.bn = norm2d(w_out)
        self.af = activation(act)

    def forward(self, x):
        return self.af(self.bn(self.conv(x)))

    @classmethod
    def complexity(cls, cx: Complexity, w_in: int, w_out: int) -> Complexity:
        cx = conv2d_cx(cx, w_in, w_out, cls.kernel, stride=cls.stride)
        return norm2d_cx(cx, w_out)


class Chain(nn.Module):
    """Runs its children in registration order (stages of blocks, whole CNNs)."""

    def forward(self, x):
        for m in self.children():
            x = m(x)
        return x
