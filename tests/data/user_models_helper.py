"""A sibling of user_models.py, imported lazily by its `lazy` factory (tests only)."""
from torch import nn


def make() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
