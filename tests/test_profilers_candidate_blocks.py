"""The blocks suite times every residual/transformer block of the validation suite's models,
under the key perfmodel looks a model part up by, so measured blocks replace sums of ops."""
from __future__ import annotations

from perfmodel.models.registry import resolve
from perfmodel.predict.measured import _row_key, part_block_key
from perfmodel.predict.parts import parts_of
from perfmodel.predict.targets import HELD_OUT_MODELS
from profilers.device import open_device
from profilers.suites import get_suite
from profilers.suites.blocks import candidate_blocks, ranked_blocks
from profilers.suites.validation import validation_models


def test_every_validation_block_is_a_candidate_block_point():
    device = open_device("cpu")
    points = candidate_blocks(device)
    keys = {_row_key(p.op, p.p, p.dtype, p.phase) for p in points}
    assert None not in keys and len(keys) == len(points)
    models = validation_models(device)
    assert len(models) == 46
    missing = 0
    looked_up = 0
    for model, factor, strategy, batch, overrides in models:
        parts = parts_of(resolve(model, factor, strategy or None, **overrides), loss=False)
        if model in HELD_OUT_MODELS:  # its blocks are never timed: it scores sums of ops
            assert not any(part_block_key(p, batch, "float32", t) in keys
                           for p in parts for t in (True, False))
            continue
        for part in parts:
            for train in (True, False):
                key = part_block_key(part, batch, "float32", train)
                if part.group in ("res_bottleneck_block", "transformer_block"):
                    looked_up += 1
                    missing += key not in keys
    assert looked_up > 500 and missing == 0


def test_candidate_blocks_alternate_with_the_grid_and_come_early():
    device = open_device("cpu")
    cands = {p.id for p in candidate_blocks(device)}
    order = [p.id for p in get_suite("blocks").points(device)]
    assert len(order) == len(set(order))
    assert cands <= set(order)
    head = order[: 2 * len(cands)]
    assert len(cands & set(head)) == len(cands)  # all of them within the first 2n points
    assert 0.4 < sum(i in cands for i in head) / len(head) <= 0.5 + 1e-9


def test_only_the_validation_models_blocks_are_repeated_and_up_to_twice():
    device = open_device("cpu")
    suite = get_suite("blocks")
    points = suite.points(device)
    cands = {p.id for p in candidate_blocks(device)}
    wanted = {p.id: suite.repeats_of(p) for p in points}
    assert {wanted[i] for i in cands} == {2, 5}
    assert {w for i, w in wanted.items() if i not in cands} == {0}
    # five times: the fwd_bwd blocks of the ranked candidates (x4, training step)
    ranked = ranked_blocks(device)
    assert ranked and ranked < cands
    assert {i for i in cands if wanted[i] == 5} == ranked
    by_id = {p.id: p for p in points}
    assert {by_id[i].phase for i in ranked} == {"fwd_bwd"}
    assert {by_id[i].op for i in ranked} == {"regnet_x_block", "transformer_block"}
    # exactly the blocks a ranked candidate's training step is predicted from
    want = set()
    for model, factor, strategy, batch, overrides in validation_models(device):
        if factor == 4.0 and strategy and model not in HELD_OUT_MODELS:
            for part in parts_of(resolve(model, factor, strategy, **overrides), loss=False):
                key = part_block_key(part, batch, "float32", train=True)
                if key is not None:
                    want.add(key)
    got = {_row_key(by_id[i].op, by_id[i].p, by_id[i].dtype, by_id[i].phase) for i in ranked}
    assert got == want


def test_full_resolution_cnns_are_held_out_on_a_cpu_only():
    """Three unscaled CNNs at resolution 224 check CPU predictions at the resolution users
    train at (the candidates run at 64); they are scored, never fitted, and the blocks
    suite does not time their blocks. A GPU runs every CNN at 224 already."""
    import types

    from perfmodel.predict.targets import FULL_RESOLUTION_MODELS

    cpu = [m for m in validation_models(open_device("cpu")) if m[0] in FULL_RESOLUTION_MODELS]
    assert [(m[0], m[1], m[2], m[4]) for m in cpu] == [
        (name, 1.0, "", {}) for name in FULL_RESOLUTION_MODELS]
    assert set(FULL_RESOLUTION_MODELS) <= set(HELD_OUT_MODELS)
    assert all(resolve(name, 1.0, None).resolution == 224 for name in FULL_RESOLUTION_MODELS)
    gpu = types.SimpleNamespace(kind="cuda", supports=lambda dtype: (True, ""))
    assert not [m for m in validation_models(gpu) if m[0] in FULL_RESOLUTION_MODELS]
