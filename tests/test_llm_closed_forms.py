"""Transformer closed forms against published figures: params, FLOPs, memory."""
from __future__ import annotations

import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.llm.flops import flops_per_token, model_training_flops, training_flops
from perfmodel.llm.memory import activation_bytes_per_layer, state_bytes, training_memory
from perfmodel.llm.params import param_count
from perfmodel.llm.published import megatron_gpt
from perfmodel.models.transformer_configs import TRANSFORMER_CONFIGS, get_transformer_config

GiB = 2**30


@pytest.mark.parametrize("name,published,rel", [
    ("gpt2", 124_439_808, 0),  # HF gpt2, tied head
    ("gpt2-medium", 354_823_168, 0),
    ("gpt2-large", 774_030_080, 0),
    ("gpt2-xl", 1_557_611_200, 0),
    ("Llama-2-7B", 6_738_415_616, 0),  # HF model card / safetensors total
    ("Llama-2-13B", 13_015_864_320, 0),
    ("Llama-2-70B", 68_976_648_192, 0),
    ("Llama-3-8B", 8_030_261_248, 0),
    ("Llama-3-70B", 70_553_706_496, 0),
    ("Llama-3.1-405B", 405.9e9, 0.001),  # Llama 3 paper: 405B; HF total 405,853,388,800
    ("GPT-3-175B", 175.0e9, 0.005),  # GPT-3 Table 2.1
    ("GPT-3-13B", 13.0e9, 0.02),
    ("GPT-3-6.7B", 6.7e9, 0.02),
    ("GPT-3-Small", 125e6, 0.01),
    ("PaLM-540B", 540.35e9, 0.001),  # PaLM Table 1
])
def test_param_counts_match_published(name, published, rel):
    total = param_count(get_transformer_config(name)).total
    if rel == 0:
        assert total == published
    else:
        assert total == pytest.approx(published, rel=rel)


def test_param_count_matches_built_module():
    """The closed form equals the parameter count of the torch module (built on meta)."""
    torch = pytest.importorskip("torch")
    tr = pytest.importorskip("perfmodel.models.transformer")
    for name in ["gpt2", "Llama-3-8B", "Llama-2-70B", "PaLM-540B"]:
        cfg = get_transformer_config(name)
        with torch.device("meta"):
            module = tr.Transformer(cfg)
        assert sum(p.numel() for p in module.parameters()) == param_count(cfg).total, name


def test_six_n_d():
    # Hoffmann et al. 2022 (Chinchilla) rule: 20 tokens per parameter; 1T params -> 1.2e26.
    assert training_flops(1e12, 20e12) == pytest.approx(1.2e26)
    # Chinchilla 70B on 1.4T tokens: 5.88e23 by 6ND; the paper's budget is 5.76e23 FLOPs.
    assert training_flops(70e9, 1.4e12) == pytest.approx(5.76e23, rel=0.03)
    # GPT-3 175B on 300B tokens: 3.14e23 FLOPs (Brown et al. 2020, Table D.1).
    n = param_count(get_transformer_config("GPT-3-175B")).total
    assert training_flops(n, 300e9) == pytest.approx(3.14e23, rel=0.01)


def test_attention_conventions():
    cfg = get_transformer_config("PaLM-540B")
    full = flops_per_token(cfg, attention="full")
    causal = flops_per_token(cfg, attention="causal")
    L, H, Q, T = 118, 48, 256, 2048
    # PaLM appendix B: 6N + 12 L H Q T per token (N = params incl. the shared embedding).
    assert full.training == pytest.approx(6 * param_count(cfg).matmul + 12 * L * H * Q * T)
    assert full.training - causal.training == pytest.approx(6 * L * H * Q * T)
    assert causal.forward == pytest.approx(causal.training / 3)
    with pytest.raises(PerfmodelError, match="attention convention"):
        flops_per_token(cfg, attention="sparse")


def test_megatron_formulas():
    """Narayanan et al. 2021: 96 B s l h^2 (1 + s/6h + V/16lh) with full recomputation;
    Korthikanti et al. 2022: 72 B s l h^2 (1 + s/6h + V/12lh) without."""
    l, h, s, V = 96, 12288, 2048, 51200
    cfg = megatron_gpt("g", h, l, 96)
    with_full = flops_per_token(cfg, s, attention="full", recompute="full")
    assert with_full.hardware == pytest.approx(96 * l * h**2 * (1 + s / (6 * h) + V / (16 * l * h)))
    assert with_full.training == pytest.approx(72 * l * h**2 * (1 + s / (6 * h) + V / (12 * l * h)))
    sel = flops_per_token(cfg, s, attention="full", recompute="selective",
                          hfu_convention="megatron")
    assert sel.hardware == pytest.approx(72 * l * h**2 * (1 + s / (3 * h) + V / (12 * l * h)))
    phys = flops_per_token(cfg, s, attention="full", recompute="selective")
    assert phys.recompute_extra == pytest.approx(4 * s * h * l)  # QK^T and AV forward again
    frac = flops_per_token(cfg, s, recompute=0.5)
    assert frac.recompute_extra == pytest.approx(0.5 * frac.forward)
    for bad in ("sometimes", 0, 1.5):
        with pytest.raises(PerfmodelError, match="recompute"):
            flops_per_token(cfg, s, recompute=bad)


def test_model_training_flops_llama3_405b():
    # Llama 3 paper: the 405B flagship trained with 3.8e25 FLOPs on 15.6T tokens (6ND).
    cfg = get_transformer_config("Llama-3.1-405B")
    assert training_flops(param_count(cfg).total, 15.6e12) == pytest.approx(3.8e25, rel=0.01)
    # With the causal attention term at 8k context the count is 3.6% higher.
    ratio = model_training_flops(cfg, 15.6e12) / training_flops(param_count(cfg).total, 15.6e12)
    assert ratio == pytest.approx(1.036, abs=0.005)


def test_adam_state_bytes():
    cfg = get_transformer_config("Llama-2-7B")
    st = state_bytes(cfg, "bf16", "adam")
    assert st.bytes_per_param == 16  # ZeRO paper: 2 + 2 + 12 for mixed-precision Adam
    assert 4 * st.params / GiB == pytest.approx(25.1, abs=0.05)  # one fp32 Adam moment
    assert state_bytes(cfg, "fp32", "adam").bytes_per_param == 16
    assert state_bytes(cfg, "fp32", "sgd-momentum").bytes_per_param == 12
    assert state_bytes(cfg, "bf16", "sgd").bytes_per_param == 8
    ada = state_bytes(cfg, "fp32", "adafactor")
    assert 8 < ada.bytes_per_param < 8.01  # weights + grads + factored rows/cols only
    # ZeRO paper sec. 3.1: a 1.5B GPT-2 needs at least 24 GB of model states.
    assert state_bytes(get_transformer_config("gpt2-xl")).total == pytest.approx(24e9, rel=0.05)
    with pytest.raises(PerfmodelError, match="optimizer"):
        state_bytes(cfg, "bf16", "lion")
    with pytest.raises(PerfmodelError, match="precision"):
        state_bytes(cfg, "int4", "adam")


def test_korthikanti_activation_formulas():
    """Table 2 of Korthikanti et al. 2022 for GPT-3 175B (s=2048, h=12288, a=96)."""
    cfg = get_transformer_config("GPT-3-175B")
    s, b, h, a, t = 2048, 1, 12288, 96, 8
    sbh = s * b * h
    act = lambda *args, **kw: activation_bytes_per_layer(cfg, b, s, *args, **kw)  # noqa: E731
    assert act() == pytest.approx(sbh * (34 + 5 * a * s / h))
    assert act(tp=t) == pytest.approx(sbh * (10 + 24 / t + 5 * a * s / (h * t)))
    assert act(tp=t, sequence_parallel=True) == pytest.approx(sbh / t * (34 + 5 * a * s / h))
    assert act("selective", tp=t, sequence_parallel=True) == pytest.approx(sbh * 34 / t)
    assert act("selective", tp=t) == pytest.approx(sbh * (10 + 24 / t))
    assert act("full") == pytest.approx(2 * sbh)
    # Their sec. 5: selective + sequence parallel cuts activations ~5x vs tensor parallel alone.
    assert act(tp=t) / act("selective", tp=t, sequence_parallel=True) == pytest.approx(
        5.4, rel=0.05)


def test_activation_variants_llama():
    cfg = get_transformer_config("Llama-3-8B")
    no_dropout = activation_bytes_per_layer(cfg, 1, 8192, dropout=False)
    flash = activation_bytes_per_layer(cfg, 1, 8192, dropout=False, flash=True)
    sel = activation_bytes_per_layer(cfg, 1, 8192, "selective", dropout=False)
    assert flash == pytest.approx(sel + 4 * 32 * 8192)  # only the fp32 log-sum-exp remains
    assert no_dropout > 4 * flash  # s x s scores dominate at 8k context
    m = training_memory(cfg, 1, 8192, recompute="full")
    assert m.activations_per_layer == pytest.approx(2 * 8192 * 4096)
    assert m.total == pytest.approx(m.weights + m.gradients + m.optimizer_states + m.activations)
    with pytest.raises(PerfmodelError, match="micro-batch"):
        training_memory(cfg, 0, 8192)


def test_all_configs_have_consistent_closed_forms():
    for cfg in TRANSFORMER_CONFIGS.values():
        pc = param_count(cfg)
        assert 0 < pc.non_embedding < pc.total and pc.matmul <= pc.total + pc.head_matmul
        f = flops_per_token(cfg)
        assert f.training == pytest.approx(3 * f.forward) and f.hardware == f.training


@pytest.mark.parametrize("name,seq", [("gpt2", 256), ("Llama-3-8B", 512), ("PaLM-540B", 256)])
def test_flops_match_torch_flop_counter(name, seq):
    """Forward and forward+backward FLOPs (full attention) equal torch.utils.flop_counter's
    count of the built module on the meta device (2 layers to stay fast)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    tr = pytest.importorskip("perfmodel.models.transformer")
    cfg = get_transformer_config(name).scaled(n_layers=2)
    with torch.device("meta"):
        model = tr.Transformer(cfg)
        tokens = torch.zeros(2, seq, dtype=torch.long)
    ours = flops_per_token(cfg, seq, attention="full")
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(tokens)
    assert counter.get_total_flops() == pytest.approx(ours.forward * 2 * seq, rel=1e-9)
    counter = FlopCounterMode(display=False)
    with counter:
        model(tokens).sum().backward()
    assert counter.get_total_flops() == pytest.approx(ours.training * 2 * seq, rel=1e-9)
    assert out.shape == (2, seq, cfg.vocab_size)


@pytest.mark.parametrize("name,kv,d_ff", [("gpt2", None, 1024), ("Llama-3-8B", 2, 768)])
def test_eager_activation_bytes_match_saved_tensors(name, kv, d_ff):
    """`implementation="eager"` equals the bytes autograd saves for one bf16
    TransformerBlock forward on CPU (measured with saved-tensor hooks)."""
    torch = pytest.importorskip("torch")
    tr = pytest.importorskip("perfmodel.models.transformer")
    cfg = get_transformer_config(name).scaled(d_model=256, n_heads=4, n_kv_heads=kv,
                                              d_ff=d_ff, seq_len=128)
    block = tr.TransformerBlock(cfg).to(torch.bfloat16)
    x = torch.randn(2, 128, 256, dtype=torch.bfloat16, requires_grad=True)
    params = {p.untyped_storage().data_ptr() for p in block.parameters()}
    saved = {}

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key[0] not in params:
            saved[key] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(x)
    measured = sum(saved.values())
    eager = activation_bytes_per_layer(cfg, 2, 128, dropout=False, flash=True,
                                       implementation="eager")
    megatron = activation_bytes_per_layer(cfg, 2, 128, dropout=False, flash=True)
    assert eager == pytest.approx(measured, rel=0.02)
    assert megatron < measured  # fused kernels keep less than eager PyTorch
