"""A user's own model file, as `perfmodel step FILE.py:NAME` loads it (tests only).

The factories return plain `nn.Module`s: perfmodel sees none of their registry
parameters, so they are predicted as any user's module is (split into its chain of
parts where it is one, `perfmodel.predict.chain`). Three of them are the same networks as
the AMD profile's measured validation models (RegNetX-400MF at resolution 64, batch 8,
built by perfmodel and hand-written torchvision-style in `HandWrittenRegNet`; the small
GPT-2 style model, sequence 128, batch 4), so the prediction can be checked against real
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


class ConvNormAct(nn.Sequential):
    """A torchvision-style conv, batch norm and (in-place) ReLU."""

    def __init__(self, w_in, w_out, k, stride=1, groups=1, act=True):
        layers = [nn.Conv2d(w_in, w_out, k, stride, k // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(w_out)]
        super().__init__(*layers, *([nn.ReLU(inplace=True)] if act else []))


class Bottleneck(nn.Module):
    """torchvision's RegNet block as its own code writes it: the shortcut first, the
    transform as one `nn.Sequential`, an in-place ReLU after the sum."""

    def __init__(self, w_in, w_out, stride, group_w):
        super().__init__()
        self.proj = (ConvNormAct(w_in, w_out, 1, stride, act=False)
                     if w_in != w_out or stride != 1 else None)
        self.f = nn.Sequential(ConvNormAct(w_in, w_out, 1),
                               ConvNormAct(w_out, w_out, 3, stride, w_out // group_w),
                               ConvNormAct(w_out, w_out, 1, act=False))
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = (self.proj(x) if self.proj is not None else x) + self.f(x)
        return self.activation(x)


class HandWrittenRegNet(nn.Module):
    """RegNetX-400MF written as a user would (torchvision's layout: stem, trunk of
    stages, pool, flatten, fc), no perfmodel class in it: the same network as the
    measured validation model `RegNetX-400MF` at resolution 64."""

    STAGES = ((1, 32), (2, 64), (7, 160), (12, 384))  # depth, width; group width 16

    def __init__(self, classes=1000):
        super().__init__()
        self.stem = ConvNormAct(3, 32, 3, 2)
        stages, w_in = [], 32
        for depth, w in self.STAGES:
            stages.append(nn.Sequential(*(Bottleneck(w_in if i == 0 else w, w, 2 if i == 0 else 1, 16)
                                          for i in range(depth))))
            w_in = w
        self.trunk_output = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w_in, classes)

    def forward(self, x):
        x = self.avgpool(self.trunk_output(self.stem(x)))
        return self.fc(x.flatten(start_dim=1))


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


class TorchvisionBottleneck(nn.Module):
    """torchvision's ResNet-50 block (v1.5: the stride on the 3x3), as its code writes it."""

    def __init__(self, inplanes, width, stride):
        super().__init__()
        out = width * 4
        self.conv1, self.bn1 = nn.Conv2d(inplanes, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False),
                                         nn.BatchNorm2d(out))
                           if stride != 1 or inplanes != out else None)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        o = self.relu(self.bn1(self.conv1(x)))
        o = self.relu(self.bn2(self.conv2(o)))
        return self.relu(self.bn3(self.conv3(o)) + identity)


class HandWrittenResNet50(nn.Module):
    """ResNet-50 in torchvision's layout (stem modules at the top level, four layers,
    pool, flatten, fc): the measured validation model `R-50-1x64d` at 224."""

    def __init__(self, classes=1000):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        layers, inplanes = [], 64
        for depth, width, stride in ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)):
            blocks = []
            for i in range(depth):
                blocks.append(TorchvisionBottleneck(inplanes, width, stride if i == 0 else 1))
                inplanes = width * 4
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(2048, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


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
