"""A user's own model file, as `perfmodel step FILE.py:NAME` loads it (tests only).

The factories return plain `nn.Module`s: perfmodel sees none of their registry
parameters, so they are predicted as any user's module is (one part, a sum of ops, no
measured block matched). Two of them build the same networks as the AMD profile's
measured validation models (RegNetX-400MF at resolution 64, batch 8; the small GPT-2
style model, sequence 128, batch 4), so the prediction can be checked against real
measurements."""
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


def huge() -> nn.Module:
    """40 GB of float32 weights if it were ever materialised."""
    return nn.Linear(100_000, 100_000)


def needs_args(width):
    return nn.Linear(width, width)


def not_a_module():
    return 42


ANSWER = 42
