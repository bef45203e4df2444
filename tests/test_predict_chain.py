"""A user's nn.Module split into parts where it is a chain of them (`perfmodel.predict.chain`),
and its blocks recognised as perfmodel's own where they run exactly their ops."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from perfmodel import build_model, predict_model
from perfmodel.predict.chain import chain_parts
from perfmodel.predict.parts import parts_of

sys.path.insert(0, str(Path(__file__).parent / "data"))
with torch.device("meta"):  # the file's module-level models (10 GB on the CPU) cost nothing
    import user_models  # noqa: E402


def _whole(model, shape):
    from perfmodel.predict.parts import model_parts

    return model_parts(lambda: model, ("module", id(model)), shape, loss=False)[0]


def _blocks(parts):
    return [(p.key, p.input_shape) for p in parts if p.group == "res_bottleneck_block"]


def test_a_hand_written_regnet_splits_into_the_named_models_blocks():
    """No perfmodel class in it: its 22 blocks are recognised as the residual bottleneck
    blocks the named RegNetX-400MF has, with the same keys and input shapes."""
    from perfmodel.models.registry import resolve
    from perfmodel.predict.chain import split_module

    m = user_models.HandWrittenRegNet()
    parts = split_module(m, _whole(m, (3, 64, 64)), 8, "float32", True)

    named = parts_of(resolve("RegNetX-400MF", 1.0, None, resolution=64))
    assert len(_blocks(parts)) == 22 and _blocks(parts) == _blocks(named)
    assert parts[0].path == "stem" and not parts[0].input_grad  # conv, norm, act: one part
    assert all(p.input_grad for p in parts[1:])
    assert parts[-1].path == "fc" and parts[-1].input_shape == (384,)  # after the flatten


def test_a_hand_written_regnet_is_predicted_as_the_named_one(amd):
    """Its blocks' measured times and neighbour corrections apply as the named model's
    do: the same step time, training and inference."""
    m = user_models.HandWrittenRegNet()
    for train in (True, False):
        mine = predict_model(m, batch=8, train=train, device=amd, input_shape=(3, 64, 64))
        named = predict_model("RegNetX-400MF", batch=8, train=train, device=amd,
                              overrides={"resolution": 64})
        assert mine.measured_parts == named.measured_parts == 22
        assert mine.time.value == pytest.approx(named.time.value, rel=1e-3)
        assert mine.params == named.params


def test_a_torchvision_style_resnet50_is_predicted_as_measured(amd):
    """torchvision's layout (its stem modules at the top level, in-place ReLUs, the shortcut
    computed first): its 16 blocks are recognised and the step is the named R-50's, which
    the AMD profile measured at 224, batch 8 (2026-12-02: training +0.6 %, inference
    +1.2 %; the named model +0.7 %, +1.3 %)."""
    from perfmodel.predict.assembly import model_args
    from perfmodel.predict.device import datasets_dir, read_profile_rows
    from perfmodel.predict.measured import center_time

    rows = read_profile_rows(datasets_dir() / "cpu-amd-epyc")
    rows = rows[(rows["suite"] == "validation") & (rows["op"] == "R-50-1x64d")]
    assert len(rows) == 2  # training step and inference
    with torch.device("meta"):
        m = user_models.HandWrittenResNet50()
    for _, r in rows.iterrows():
        a = model_args(r)
        p = predict_model(m, batch=a["batch"], train=a["train"], device=amd,
                          input_shape=(3, 224, 224))
        named = predict_model("R-50-1x64d", batch=a["batch"], train=a["train"], device=amd)
        assert (p.by_module["group"] == "res_bottleneck_block").sum() == 16
        assert p.time.value == pytest.approx(named.time.value, rel=0.01)
        assert p.time.lo <= center_time(r) <= p.time.hi
        assert abs(p.time.value / center_time(r) - 1) <= 0.08


def test_an_efficientnet_module_is_recognised_as_mbconv_blocks(amd):
    from perfmodel.predict.chain import split_module

    m = build_model("EN-B0", resolution=64)
    parts = split_module(m, _whole(m, (3, 64, 64)), 8, "float32", False)
    assert sum(p.group == "mbconv" for p in parts) == 16
    mine = predict_model(m, batch=8, train=False, device=amd, input_shape=(3, 64, 64))
    named = predict_model("EN-B0", batch=8, train=False, device=amd,
                          overrides={"resolution": 64})
    assert mine.time.value == pytest.approx(named.time.value, rel=1e-3)


class _Dropped(user_models.Bottleneck):
    """The same block with a dropout in training: not perfmodel's block."""

    def __init__(self, *a):
        super().__init__(*a)
        self.f.append(nn.Dropout(0.1))


def test_a_block_with_an_extra_op_is_a_part_of_its_own_kind():
    net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), _Dropped(32, 64, 2, 16),
                        user_models.Bottleneck(64, 64, 1, 16))
    parts = _check(net, (3, 32, 32), split=True)
    assert [p.group for p in parts] == ["Conv2d", "_Dropped", "res_bottleneck_block"]
    assert parts[1].key[0] == "module_part"


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 16)

    def forward(self, x):
        return x + self.b(self.a(x))  # arithmetic of its own: a part, never opened


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 16)

    def forward(self, x):
        return self.a(self.a(x))


def test_what_is_not_a_chain_stays_one_part():
    assert chain_parts(_Residual(), (16,), "float", 1) is None
    assert chain_parts(_Twice(), (16,), "float", 1) is None
    tied = nn.Sequential(nn.Sequential(nn.Linear(16, 16)), nn.Sequential(nn.Linear(16, 16)))
    tied[1][0].weight = tied[0][0].weight
    assert chain_parts(nn.Sequential(nn.Linear(16, 16), nn.ReLU()), (16,), "float", 1) is None
    assert chain_parts(tied, (16,), "float", 1) is None
    assert chain_parts(user_models.gpt2_small(), (128,), "long", 4096) is None
    # inside a chain a residual module is one part
    parts = chain_parts(nn.Sequential(nn.Linear(8, 16), _Residual()), (8,), "float", 1)
    assert [p.group for p in parts] == ["Linear", "_Residual"]


def test_an_in_place_module_joins_the_part_before_it_and_gradients_follow_parameters():
    """ReLU(inplace=True) alone would be a part whose input is a leaf needing its gradient
    (autograd refuses to modify one in place); a parameter-free first part passes no
    gradient to the part after it."""
    def conv(c_in):
        return nn.Sequential(nn.Conv2d(c_in, 8, 3, padding=1), nn.BatchNorm2d(8))

    net = nn.Sequential(nn.AvgPool2d(2), conv(3), nn.ReLU(inplace=True), conv(8),
                        nn.ReLU(inplace=True))
    parts = chain_parts(net, (3, 16, 16), "float", 1)
    assert [p.path for p in parts] == ["0", "1+2", "3+4"]
    assert [p.input_grad for p in parts] == [False, False, True]
    p = predict_model(net, batch=2, train=True, device="h100", input_shape=(3, 16, 16))
    assert p.time.value > 0 and list(p.by_module["module"][:3]) == ["0", "1+2", "3+4"]


def test_a_real_module_on_the_cpu_is_traced_without_touching_its_weights():
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), nn.Flatten(),
                        nn.Linear(8 * 6 * 6, 4))
    before = net[0][0].weight.detach().clone()
    parts = chain_parts(net, (3, 8, 8), "float", 1)
    # Flatten returns a view of its input: like an in-place module, it joins the part before
    assert [p.input_shape for p in parts] == [(3, 8, 8), (288,)]
    assert [p.path for p in parts] == ["0+1", "2"]
    assert torch.equal(net[0][0].weight, before) and net[0][0].weight.device.type == "cpu"


# The review's reproductions (2026-12-01): each split would lose or add ops, crash, or
# reuse another block's count; `split_module` must keep the whole module as one part or
# give exactly its ops.

def _check(model, shape, split: bool, train: bool = True, batch: int = 2):
    """`split_module` splits `model` (or keeps it whole) and the prediction is the whole
    module's sum of ops either way (the roofline has no measured blocks)."""
    from perfmodel.predict.chain import split_module

    parts = split_module(model, _whole(model, shape), batch, "float32", train)
    assert (parts is not None) == split, parts
    p = predict_model(model, batch=batch, train=train, device="h100", input_shape=shape)
    assert p.time.value > 0
    return parts


class _Keyword(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(16, 16)

    def forward(self, x, double=False):
        x = self.l(x)
        return x * 2 if double else x


class _CallsWithKeyword(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Sequential(nn.Linear(16, 16)), _Keyword()

    def forward(self, x):
        return self.b(self.a(x), double=True)


class _TrainingOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Sequential(nn.Linear(16, 16)), nn.Sequential(nn.Linear(16, 16))
        self.aux = nn.Linear(16, 16)

    def forward(self, x):
        h = self.a(x)
        if self.training:
            h = h + 0.1 * self.aux(h)
        return self.b(h)


class _NoGradBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Linear(16, 16), nn.ReLU())
        self.b = nn.Sequential(nn.Linear(16, 16))

    def forward(self, x):
        with torch.no_grad():
            h = self.a(x)
        return self.b(h)


class _Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(16, 16)

    def forward(self, x):
        return self.l(x).detach()


class _Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Sequential(nn.Linear(16, 16)), nn.Sequential(nn.Linear(16, 16))
        self.spare = nn.Linear(512, 512)

    def forward(self, x):
        return self.b(self.a(x))


class _InPlaceAfterView(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
        self.r = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.r(self.a(x).flatten(1))


def test_what_the_trace_cannot_see_keeps_the_module_whole():
    """A keyword that changes a child, a training-only branch, an unused layer, an in-place
    module after a view: one part, as before the split existed."""
    _check(_CallsWithKeyword(), (16,), split=False)
    _check(_TrainingOnly(), (16,), split=False)
    _check(_Unused(), (16,), split=False)
    _check(_InPlaceAfterView(), (3, 8, 8), split=False)


def test_a_backbone_without_gradients_keeps_the_module_whole():
    """A backbone under no_grad, a child that detaches its output: a part counted alone
    cannot know autograd skipped its backward, the check against the whole module sees it."""
    _check(_NoGradBackbone(), (16,), split=False)
    _check(nn.Sequential(nn.Sequential(_Detached()), nn.Sequential(nn.Linear(16, 16))), (16,),
           split=False)


class _Act(nn.Module):
    def __init__(self, fn, grad=True):
        super().__init__()
        self.l, self.fn = nn.Linear(16, 16), fn
        self.l.requires_grad_(grad)

    def forward(self, x):
        return self.fn(self.l(x))


def test_blocks_that_differ_in_a_function_or_in_grad_do_not_share_a_count():
    import torch.nn.functional as F

    from perfmodel.predict.counts import count_part

    net = nn.Sequential(nn.Linear(16, 16), _Act(torch.relu), _Act(F.gelu), _Act(F.gelu, False))
    parts = _check(net, (16,), split=True)
    assert len({p.key for p in parts}) == 4
    ops = [set(count_part(p, 2, "float32", True).ops["op"]) for p in parts]
    assert "relu" in ops[1] and "gelu" in ops[2]


def test_a_dilated_or_oddly_strided_block_is_not_taken_for_ours():
    """Dilation costs no FLOPs or bytes but the per-op model reads it; a (2, 1) stride is
    no block of ours. Both stay sums of their own ops."""
    dil = user_models.Bottleneck(32, 32, 1, 16)
    dil.f[1][0] = nn.Conv2d(32, 32, 3, 1, padding=2, dilation=2, groups=2, bias=False)
    odd = user_models.Bottleneck(32, 32, 1, 16)
    odd.f[1][0] = nn.Conv2d(32, 32, 3, (2, 1), padding=1, groups=2, bias=False)
    odd.proj = user_models.ConvNormAct(32, 32, 1, (2, 1), act=False)
    for block in (dil, odd):
        net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 32, 3, padding=1)), block)
        parts = _check(net, (3, 16, 16), split=True)
        assert parts[1].key[0] == "module_part"


def test_fresh_modules_never_take_a_dead_ones_count():
    """A count is cached under a token no other object gets (an `id` is reused once its
    module is freed: a loop of fresh models got another's op list)."""
    import torch.nn.functional as F

    for i in range(6):
        fn = F.gelu if i % 2 == 0 else torch.relu
        net = nn.Sequential(nn.Sequential(nn.Linear(16, 16)), _Act(fn))
        ops = predict_model(net, batch=2, train=False, device="h100", input_shape=(16,),
                            keep_ops=True).ops
        assert ("gelu" in set(ops["op"])) == (i % 2 == 0), i
        del net, ops


def test_a_compiled_prediction_keeps_the_module_whole():
    """torch.compile fuses across the blocks' edges: the module is fused as one part."""
    m = user_models.HandWrittenRegNet()
    p = predict_model(m, batch=2, train=True, device="h100", input_shape=(3, 64, 64),
                      compiled=True)
    assert p.compiled and set(p.by_module["group"]) <= {"module", "loss", "optimizer"}
