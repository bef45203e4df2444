"""Named CNN configs: the 36 pycls `dds_baselines` (architecture facts, MIT-licensed pycls
configs, "Designing Network Design Spaces", Radosavovic et al. 2020), as typed params.

Names are spelled as pycls spells them (`RegNetX-200MF`, `R-50-1x64d`, `X-50-32x4d`,
`EN-B0`); lookup is case-insensitive and also accepts pycls's MODEL_ZOO display names
(`ResNet-50`, `ResNeXt-50`, `EfficientNet-B0`).
"""
from __future__ import annotations

from perfmodel.models.anynet import AnyNetParams
from perfmodel.models.effnet import EffNetParams
from perfmodel.models.regnet import RegNetParams

# RegNet: (DEPTH, W0, WA, WM, GROUP_W, SE_ON); all: simple_stem_in, STEM_W 32, STRIDE 2,
# BOT_MUL 1.0, HEAD_W 0, SE_R 0.25 when SE_ON, relu, 224x224.
_REGNET = {
    "RegNetX-1.6GF": (18, 80, 34.01, 2.25, 24, False),
    "RegNetX-12GF": (19, 168, 73.36, 2.37, 112, False),
    "RegNetX-16GF": (22, 216, 55.59, 2.1, 128, False),
    "RegNetX-200MF": (13, 24, 36.44, 2.49, 8, False),
    "RegNetX-3.2GF": (25, 88, 26.31, 2.25, 48, False),
    "RegNetX-32GF": (23, 320, 69.86, 2.0, 168, False),
    "RegNetX-4.0GF": (23, 96, 38.65, 2.43, 40, False),
    "RegNetX-400MF": (22, 24, 24.48, 2.54, 16, False),
    "RegNetX-6.4GF": (17, 184, 60.83, 2.07, 56, False),
    "RegNetX-600MF": (16, 48, 36.97, 2.24, 24, False),
    "RegNetX-8.0GF": (23, 80, 49.56, 2.88, 120, False),
    "RegNetX-800MF": (16, 56, 35.73, 2.28, 16, False),
    "RegNetY-1.6GF": (27, 48, 20.71, 2.65, 24, True),
    "RegNetY-12GF": (19, 168, 73.36, 2.37, 112, True),
    "RegNetY-16GF": (18, 200, 106.23, 2.48, 112, True),
    "RegNetY-200MF": (13, 24, 36.44, 2.49, 8, True),
    "RegNetY-3.2GF": (21, 80, 42.63, 2.66, 24, True),
    "RegNetY-32GF": (20, 232, 115.89, 2.53, 232, True),
    "RegNetY-4.0GF": (22, 96, 31.41, 2.24, 64, True),
    "RegNetY-400MF": (16, 48, 27.89, 2.09, 8, True),
    "RegNetY-6.4GF": (25, 112, 33.22, 2.27, 72, True),
    "RegNetY-600MF": (15, 48, 32.54, 2.32, 16, True),
    "RegNetY-8.0GF": (17, 192, 76.82, 2.19, 56, True),
    "RegNetY-800MF": (14, 56, 38.84, 2.4, 16, True),
}

# ResNet / ResNeXt (AnyNet): (DEPTHS, BOT_MULS, GROUP_WS); all: res_stem_in, STEM_W 64,
# res_bottleneck_block, WIDTHS (256, 512, 1024, 2048), STRIDES (1, 2, 2, 2), relu, 224x224.
_RESNET = {
    "R-101-1x64d": ((3, 4, 23, 3), (0.25, 0.25, 0.25, 0.25), (64, 128, 256, 512)),
    "R-152-1x64d": ((3, 8, 36, 3), (0.25, 0.25, 0.25, 0.25), (64, 128, 256, 512)),
    "R-50-1x64d": ((3, 4, 6, 3), (0.25, 0.25, 0.25, 0.25), (64, 128, 256, 512)),
    "X-101-32x4d": ((3, 4, 23, 3), (0.5, 0.5, 0.5, 0.5), (4, 8, 16, 32)),
    "X-152-32x4d": ((3, 8, 36, 3), (0.5, 0.5, 0.5, 0.5), (4, 8, 16, 32)),
    "X-50-32x4d": ((3, 4, 6, 3), (0.5, 0.5, 0.5, 0.5), (4, 8, 16, 32)),
}

# EfficientNet: (DEPTHS, WIDTHS, STEM_W, HEAD_W, resolution); all: EXP_RATIOS
# (1, 6, 6, 6, 6, 6, 6), KERNELS (3, 3, 5, 3, 5, 5, 3), STRIDES (1, 2, 2, 2, 1, 2, 1),
# SE_R 0.25, silu.
_EFFNET = {
    "EN-B0": ((1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320), 32, 1280, 224),
    "EN-B1": ((2, 3, 3, 4, 4, 5, 2), (16, 24, 40, 80, 112, 192, 320), 32, 1280, 240),
    "EN-B2": ((2, 3, 3, 4, 4, 5, 2), (16, 24, 48, 88, 120, 208, 352), 32, 1408, 260),
    "EN-B3": ((2, 3, 3, 5, 5, 6, 2), (24, 32, 48, 96, 136, 232, 384), 40, 1536, 300),
    "EN-B4": ((2, 4, 4, 6, 6, 8, 2), (24, 32, 56, 112, 160, 272, 448), 48, 1792, 380),
    "EN-B5": ((3, 5, 5, 7, 7, 9, 3), (24, 40, 64, 128, 176, 304, 512), 48, 2048, 456),
}


def _regnet(name, depth, w0, wa, wm, group_w, se_on):
    return RegNetParams(depth=depth, w0=w0, wa=wa, wm=wm, group_w=group_w,
                        se_r=0.25 if se_on else 0.0, name=name)


def _resnet(name, depths, bot_muls, group_ws):
    return AnyNetParams(depths=depths, widths=(256, 512, 1024, 2048), strides=(1, 2, 2, 2),
                        bot_muls=bot_muls, group_ws=group_ws, stem_type="res_stem_in",
                        stem_w=64, block_type="res_bottleneck_block", name=name)


def _effnet(name, depths, widths, stem_w, head_w, resolution):
    return EffNetParams(depths=depths, widths=widths, strides=(1, 2, 2, 2, 1, 2, 1),
                        exp_ratios=(1, 6, 6, 6, 6, 6, 6), kernels=(3, 3, 5, 3, 5, 5, 3),
                        stem_w=stem_w, head_w=head_w, se_r=0.25, resolution=resolution,
                        name=name)


CNN_CONFIGS: dict[str, RegNetParams | AnyNetParams | EffNetParams] = {
    **{k: _regnet(k, *v) for k, v in _REGNET.items()},
    **{k: _resnet(k, *v) for k, v in _RESNET.items()},
    **{k: _effnet(k, *v) for k, v in _EFFNET.items()},
}

# pycls MODEL_ZOO display names -> config names.
CNN_ALIASES = {
    **{f"ResNet-{n}": f"R-{n}-1x64d" for n in (50, 101, 152)},
    **{f"ResNeXt-{n}": f"X-{n}-32x4d" for n in (50, 101, 152)},
    **{f"EfficientNet-B{i}": f"EN-B{i}" for i in range(6)},
}
