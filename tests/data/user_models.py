"""A user's own model file, as `perfmodel step FILE.py:NAME` loads it (tests only).

The factories return plain `nn.Module`s: perfmodel sees none of their registry
parameters, so they are predicted as any user's module is (one part, a sum of ops, no
measured block matched). Two of them build the same networks as the AMD profile's
measured validation models (RegNetX-400MF at resolution 64, batch 8; the small GPT-2
style model, sequence 128, batch 4), so the prediction can be checked against real
measurements. The rest are the shapes real model files take (a dataclass config, a
`cfg` attribute of its own, module-level instances, lazy imports) and mistakes."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from perfmodel import build_model

GPT2_SMALL = dict(d_model=256, n_heads=4, n_layers=4, d_ff=1024, seq_len=128, vocab_size=4096)


def regnetx_400mf() -> nn.Module:
    return build_model("RegNetX-400MF", resolution=64)


def gpt2_small() -> nn.Module:
    return build_model("gpt2", **GPT2_SMALL)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.features(x))


class TokenModel(nn.Module):
    """Takes token ids (no `cfg`, so it needs --input-vocab)."""

    def __init__(self, vocab=1000, d=64):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.head = nn.Linear(d, vocab)

    def forward(self, x):
        return self.head(self.mlp(self.emb(x)))


class TokenClassifier(nn.Module):
    """Token ids in, one logit vector per sequence out (the loss reads 5 logits, not
    seq x 5)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(1000, 32)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        return self.head(self.emb(x).mean(1))


@dataclass
class WidthConfig:
    width: int = 48
    classes: int = 7


class ConfiguredCNN(nn.Module):
    """Holds a `cfg` of its own (a dataclass, not perfmodel's transformer config)."""

    def __init__(self, cfg: WidthConfig | None = None):
        super().__init__()
        self.cfg = cfg or WidthConfig()
        self.body = nn.Sequential(nn.Conv2d(3, self.cfg.width, 3, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(self.cfg.width, self.cfg.classes)

    def forward(self, x):
        return self.head(self.body(x))


class DictInput(nn.Module):
    """Its forward wants a dict: perfmodel passes one tensor."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, batch):
        return self.fc(batch.get("x"))


class Asserts(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        assert x.shape[-1] == 16, "expects 16 features"
        return self.fc(x)


def lazy():
    """Imports a sibling file only when called."""
    from user_models_helper import make

    return make()


INSTANCE = nn.Linear(50_000, 50_000)  # 10 GB of float32 were it built on the CPU


def huge() -> nn.Module:
    """40 GB of float32 weights if it were ever materialised."""
    return nn.Linear(100_000, 100_000)


def needs_args(width):
    return nn.Linear(width, width)


def not_a_module():
    return 42


ANSWER = 42
