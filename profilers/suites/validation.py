"""Whole models, the ground truth for model-level predictions: training-step and inference
time, peak memory and energy of scaled candidates of a CNN (RegNetX-400MF) and a
GPT-style transformer, at a few batch sizes, and of two families that perfmodel never
fits on and only scores (`perfmodel.predict.targets.HELD_OUT_MODELS`): a Llama-style
transformer (RMSNorm, SwiGLU, rotary positions, grouped-query attention) and RegNetY-400MF
(squeeze-excitation), and on a CPU three unscaled CNNs at resolution 224 (ResNet-50,
RegNetX-200MF, EfficientNet-B0). The blocks suite does not time their blocks, so they
check predictions of models the profile never measured in part. Models come from
`perfmodel.build_model`.
"""
from __future__ import annotations

import contextlib
import json

from profilers.points import Point, Workload
from profilers.suites.base import (Suite, log2, math_mode, model_cost, one_hot,
                                   register_suite, torch_dtype)

CNN = "RegNetX-400MF"
GPT = "gpt2"
LLAMA = "Llama-3-8B"
CNN_Y = "RegNetY-400MF"  # held out too: squeeze-excitation blocks the suite does not time
FIRST_FAMILIES = (GPT, CNN, CNN_Y, LLAMA)  # in pairs: the order of the complete sets (`points`)
FIRST_DTYPES = ("bfloat16", "float16", "tf32", "float32")
CNN_STRATEGIES = ("d", "w", "r", "dw", "dwr", "d1_w8_g8_r1")
GPT_STRATEGIES = ("d", "w", "s", "dw", "ds", "ws", "dws")
PHASES = ("train_step", "inference")
# The factor whose scaled candidates a ranking is judged on (perfmodel.predict.targets):
# their training steps, and their blocks in the blocks suite, are the ranking's ground
# truth, timed more often where a machine is noisy (`ranked_repeats`).
RANKED_FACTOR = 4.0
RANKED_PHASE = "train_step"

# Base overrides keep CPU candidates to a fraction of a second per step on two cores.
# The held-out families (Llama, RegNetY) are measured at the unscaled base and the ranked
# factor only, one batch; on a CPU also the full-resolution CNNs.
GPU = dict(dtypes=("tf32", "bfloat16"), factors=(0.25, 0.5, 1.0, 2.0, 4.0),
           cnn_batch=(32, 64, 128), gpt_batch=(4, 8, 16), cnn_overrides={},
           gpt_overrides={}, held_out_factors=(1.0, 4.0), llama_batch=(8,),
           llama_overrides={"n_layers": 8, "d_model": 1024, "n_heads": 16, "n_kv_heads": 4,
                            "d_ff": 3584, "seq_len": 1024, "vocab_size": 32000},
           cnn_y_batch=(64,), cnn_y_overrides={})
CPU = dict(dtypes=("float32",), factors=(1.0, 4.0, 2.0), cnn_batch=(8,),
           gpt_batch=(4,), cnn_overrides={"resolution": 64},
           gpt_overrides={"n_layers": 4, "d_model": 256, "n_heads": 4, "d_ff": 1024,
                          "seq_len": 128, "vocab_size": 4096},
           held_out_factors=(1.0, 4.0), llama_batch=(4,),
           llama_overrides={"n_layers": 4, "d_model": 256, "n_heads": 4, "n_kv_heads": 2,
                            "d_ff": 688, "seq_len": 128, "vocab_size": 4096},
           cnn_y_batch=(8,), cnn_y_overrides={"resolution": 64},
           full_resolution_batch=8)
# `full_resolution_batch` (CPU only; a GPU runs every CNN at 224 already): the batch of
# `perfmodel.predict.targets.FULL_RESOLUTION_MODELS`, unscaled CNNs at their own
# resolution, 224, held out like Llama and RegNetY. The CPU candidates run at 64, where
# 1x1 convolutions on 2x2 and 3x3 maps run several times slower per FLOP than on larger
# maps; these check predictions at the resolution users train at.


def is_ranked(factor: float, strategy: str, phase: str) -> bool:
    """Whether a measurement belongs to a ranking's ground truth: a scaled candidate's
    training step at `RANKED_FACTOR`."""
    return bool(strategy) and float(factor) == RANKED_FACTOR and phase == RANKED_PHASE


def validation_models(device) -> list[tuple[str, float, str, int, dict]]:
    """(model, factor, strategy, batch, overrides) of every model the suite measures on
    `device` ("" strategy for the unscaled base), in measurement-candidate order."""
    from perfmodel.models.registry import get_params

    for family in (CNN, GPT, LLAMA, CNN_Y):  # the suite needs every family
        get_params(family)
    g = GPU if device.kind == "cuda" else CPU
    out = []
    for model, strategies, batches, overrides, factors in (
            (CNN, CNN_STRATEGIES, g["cnn_batch"], g["cnn_overrides"], g["factors"]),
            (GPT, GPT_STRATEGIES, g["gpt_batch"], g["gpt_overrides"], g["factors"]),
            (LLAMA, GPT_STRATEGIES, g["llama_batch"], g["llama_overrides"],
             g["held_out_factors"]),
            (CNN_Y, CNN_STRATEGIES, g["cnn_y_batch"], g["cnn_y_overrides"],
             g["held_out_factors"])):
        for factor in factors:
            for strategy in (strategies if factor != 1.0 else ("",)):
                for batch in batches:
                    out.append((model, factor, strategy, batch, overrides))
    if "full_resolution_batch" in g:
        from perfmodel.predict.targets import FULL_RESOLUTION_MODELS

        for model in FULL_RESOLUTION_MODELS:
            get_params(model)
            out.append((model, 1.0, "", g["full_resolution_batch"], {}))
    return out


@register_suite
class ValidationSuite(Suite):
    name = "validation"
    weight = 5.0
    # The ground truth, timed in rounds after the suite's points, so that a model's
    # measurements lie minutes apart; perfmodel takes their median (`time_center_s`).
    # Twice on a GPU, five times on a CPU (a shared machine's slow spells last seconds
    # to minutes), where the budget allows. On a CPU the ranked candidates' training steps
    # (`is_ranked`) go on in rounds of their own up to 16 times: scaled candidates lie
    # within a few percent of each other, and one measurement there spreads ~7 % between
    # rounds, so the ranking a benchmark checks needs the median of many.
    repeat_fraction = 0.3
    max_repeats = 1
    interleave_repeats = False
    cpu_repeats = dict(repeat_fraction=0.8, max_repeats=4, ranked_repeats=15)

    def ranked(self, point: Point) -> bool:
        return is_ranked(point.p["factor"], point.p["strategy"], point.phase)

    def timing_budget_s(self, device) -> float:
        return 1.5 if device.kind == "cuda" else 1.0

    def candidates(self, device) -> list[Point]:
        g = GPU if device.kind == "cuda" else CPU
        dtypes = [d for d in g["dtypes"] if device.supports(d)[0]]
        points = []
        for model, factor, strategy, batch, overrides in validation_models(device):
            for dtype in dtypes:
                for phase in PHASES:
                    points.append(Point.make(
                        self.name, model, phase, dtype, factor=factor, strategy=strategy,
                        batch=batch, overrides=json.dumps(overrides, sort_keys=True)))
        return points

    def points(self, device) -> list[Point]:
        """Spread order, except that one complete ranking comes first: every ranked
        candidate (`is_ranked`) at each family's middle batch size, in every dtype, set by
        set (`FIRST_FAMILIES`, `FIRST_DTYPES`). A short or interrupted run (scarce GPU
        time) then still has whole sets of strategies to rank, rather than a spread that
        lacks some."""
        spread = super().points(device)
        g = GPU if device.kind == "cuda" else CPU
        middle = {CNN: g["cnn_batch"][len(g["cnn_batch"]) // 2],
                  GPT: g["gpt_batch"][len(g["gpt_batch"]) // 2],
                  LLAMA: g["llama_batch"][len(g["llama_batch"]) // 2],
                  CNN_Y: g["cnn_y_batch"][len(g["cnn_y_batch"]) // 2]}
        first = [p for p in spread if p.p["batch"] == middle.get(p.op)
                 and is_ranked(p.p["factor"], p.p["strategy"], p.phase)]
        # set by set (a family's strategies in one dtype; the spread order within a set):
        # the target families (gpt2, RegNetX) before the held-out ones, bfloat16 before
        # tf32 within each pair. A run cut short then has whole sets, not a few strategies
        # of each (52 whole-model points on a GPU: a 9-minute session reaches 10-30)
        family = {m: i for i, m in enumerate(FIRST_FAMILIES)}
        dtype = {d: i for i, d in enumerate(FIRST_DTYPES)}
        n = len(family)
        first.sort(key=lambda p: (family.get(p.op, n) // 2, dtype.get(p.dtype, len(dtype)),
                                  family.get(p.op, n)))
        ids = {p.id for p in first}
        return first + [p for p in spread if p.id not in ids]

    def features(self, point: Point) -> list[float]:
        from perfmodel.predict.targets import FULL_RESOLUTION_MODELS

        p = point.p
        return [log2(p["factor"] * 4), log2(p["batch"])] + one_hot(
            p["strategy"], ("",) + CNN_STRATEGIES + GPT_STRATEGIES, 1.5) + one_hot(
            point.op, (CNN, GPT, LLAMA, CNN_Y) + FULL_RESOLUTION_MODELS) + one_hot(
            point.phase, PHASES) + one_hot(
            point.dtype, GPU["dtypes"] + CPU["dtypes"])

    def build(self, point: Point, device) -> Workload:
        import torch
        import torch.nn.functional as F

        from perfmodel import build_model

        p, dt, dev = point.p, point.dtype, device.torch_device
        with torch.device(dev):  # parameters initialised where they run, not on the CPU
            # and copied (a 400M-parameter x4 candidate took 5 s on a 2-core CPU)
            model = build_model(point.op, p["factor"], p["strategy"] or None,
                                **json.loads(p["overrides"]))
        model = model.to(device=dev, dtype=torch_dtype(dt))
        batch = p["batch"]
        cfg = getattr(model, "cfg", None)
        if cfg is not None:  # transformer: token ids, next-token loss
            x = torch.randint(0, cfg.vocab_size, (batch,) + tuple(model.input_size), device=dev)
            target = torch.randint(0, cfg.vocab_size, x.shape, device=dev)
            loss_fn = lambda out: F.cross_entropy(out.flatten(0, 1).float(), target.flatten())  # noqa: E731
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            extra = dict(d_model=cfg.d_model, d_ff=cfg.d_ff, heads=cfg.n_heads,
                         seq_q=cfg.seq_len, seq_k=cfg.seq_len, causal=cfg.causal)
        else:  # CNN: images, classification loss
            x = torch.randn((batch,) + tuple(model.input_size), device=dev).to(torch_dtype(dt))
            target = torch.randint(0, 1000, (batch,), device=dev)
            loss_fn = lambda out: F.cross_entropy(out.float(), target % out.shape[-1])  # noqa: E731
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
            extra = dict(h=model.input_size[-2], w=model.input_size[-1], c_in=model.input_size[0])
        extra["n_params"] = sum(q.numel() for q in model.parameters())
        training = point.phase == "train_step"
        flops, nbytes = model_cost(model, (x,), dt, backward=training)
        not_acts = list(model.parameters()) + list(model.buffers())

        def forward():
            model.train()
            return model(x)

        if not training:
            model.eval()

            @contextlib.contextmanager
            def context():
                with math_mode(dt), torch.no_grad():
                    yield

            def act_forward():
                out = forward()
                model.eval()
                return out

            return Workload(lambda: model(x), forward=act_forward, not_activations=not_acts,
                            context=context, flops=flops, bytes=nbytes, extra=extra)
        model.train()

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x))
            loss.backward()
            optimizer.step()
            return loss

        return Workload(step, forward=forward, not_activations=not_acts,
                        context=lambda: math_mode(dt), flops=flops, bytes=nbytes, extra=extra)
