"""Analytic complexity record and per-layer rules, following pycls's conventions.

A `Complexity` flows through a network description like a tensor shape: every layer
helper takes one and returns the next. Conventions (those of pycls, so that the named
baselines reproduce its published figures exactly):

- `macs`: multiply-adds (pycls calls them "flops"); a bias adds one per output element.
- `params`: weights and biases; a BatchNorm counts 2 per channel (weight and bias, not the
  running statistics).
- `acts`: output elements of conv, linear and max-pool layers (not of norms, activations,
  additions or global pooling).
- `h`, `w`: spatial size after the layer; convs use "same" padding `(k - 1) // 2`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Complexity:
    """Spatial size and running totals of one sample's forward pass."""

    h: int
    w: int
    macs: int = 0
    params: int = 0
    acts: int = 0

    @property
    def flops(self) -> int:
        """FLOPs = 2 x MACs."""
        return 2 * self.macs

    def add(self, macs: int = 0, params: int = 0, acts: int = 0, **shape) -> "Complexity":
        """A copy with costs added and, optionally, `h`/`w` replaced."""
        return replace(
            self,
            macs=self.macs + macs,
            params=self.params + params,
            acts=self.acts + acts,
            **shape,
        )


def _same_out(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


def conv2d_cx(cx: Complexity, w_in: int, w_out: int, k: int, *, stride: int = 1,
              groups: int = 1, bias: bool = False) -> Complexity:
    """A k x k convolution with 'same' padding."""
    h, w = _same_out(cx.h, stride), _same_out(cx.w, stride)
    macs = k * k * w_in * w_out * h * w // groups + (w_out * h * w if bias else 0)
    params = k * k * w_in * w_out // groups + (w_out if bias else 0)
    return cx.add(macs, params, w_out * h * w, h=h, w=w)


def norm2d_cx(cx: Complexity, w_in: int) -> Complexity:
    """BatchNorm: 2 parameters per channel, no MACs or acts counted."""
    return cx.add(params=2 * w_in)


def pool2d_cx(cx: Complexity, w_in: int, k: int, *, stride: int = 1) -> Complexity:
    """Max-pool with 'same' padding: its output counts as activations."""
    h, w = _same_out(cx.h, stride), _same_out(cx.w, stride)
    return cx.add(acts=w_in * h * w, h=h, w=w)


def gap2d_cx(cx: Complexity, _w_in: int) -> Complexity:
    """Global average pool: free, spatial size becomes 1 x 1."""
    return cx.add(h=1, w=1)


def linear_cx(cx: Complexity, w_in: int, w_out: int, *, bias: bool = False,
              num_locations: int = 1) -> Complexity:
    """A linear layer applied at `num_locations` positions (tokens)."""
    n = num_locations
    macs = w_in * w_out * n + (w_out * n if bias else 0)
    params = w_in * w_out + (w_out if bias else 0)
    return cx.add(macs, params, w_out * n)


def layernorm_cx(cx: Complexity, w_in: int, *, bias: bool = True) -> Complexity:
    """LayerNorm / RMSNorm: `w_in` weights (+ `w_in` biases)."""
    return cx.add(params=w_in * (2 if bias else 1))
