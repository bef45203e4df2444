"""NVIDIA GPU datasheet entries (plus Google TPU v4, used by the PaLM MFU check).

Conventions for every entry:
- Peaks are dense: the 2:4 structured-sparsity figures NVIDIA prints with an asterisk are
  halved away, never used.
- `float16`/`bfloat16`/`float8_e4m3fn` are tensor-core rates with FP32 accumulate (what
  PyTorch/cuBLAS use for training). On GeForce cards (RTX 3090/4070/4090) and the A10G
  that is half the FP16-accumulate rate NVIDIA headlines; the FP16-accumulate rate is
  kept in `extra["float16_acc16"]` for reference.
- `tf32` is the TF32 tensor-core rate; `float32` the SIMT (CUDA core) FP32 rate.
- `float64` is the best dense FP64 rate (FP64 tensor cores where present, as DGEMM uses
  them); listed only where the vendor publishes it.
- Memory is the nominal capacity in binary GB (an "80 GB" HBM part holds 80 GiB; the
  usable capacity torch reports is a little lower: ECC and driver reservations).
  Bandwidth is decimal (GB/s = 1e9 B/s). L2 is in binary MB.
- Clock is the boost clock the datasheet/whitepaper peaks are computed at.
"""
from __future__ import annotations

from perfmodel.hardware.spec import DeviceSpec

T = 1e12
GB_S = 1e9
GiB = 2**30
MiB = 2**20
MHz = 1e6


def _gpu(key, name, arch, sms, clock_mhz, peaks, mem_gib, bw_gbs, l2_mib, tdp,
         aliases, source, notes="", **extra) -> DeviceSpec:
    return DeviceSpec(
        key=key, name=name, kind="gpu", sm_count=sms, boost_clock_hz=clock_mhz * MHz,
        peak_flops={k: v * T for k, v in peaks.items()},
        memory_bytes=int(round(mem_gib * GiB)), memory_bandwidth=bw_gbs * GB_S,
        l2_bytes=int(round(l2_mib * MiB)), tdp_w=float(tdp), aliases=tuple(aliases),
        source=source, architecture=arch, notes=notes,
        extra={k: v * T if k.startswith("float") else v for k, v in extra.items()},
    )


_V100_SRC = ("NVIDIA Tesla V100 datasheet (2020) and Volta GV100 whitepaper: "
             "SXM2 7.8/15.7/125 TFLOPS, PCIe 7/14/112 TFLOPS; 900 GB/s; 6 MB L2")
_A100_SRC = ("NVIDIA A100 Tensor Core GPU datasheet (2021) and Ampere GA100 whitepaper: "
             "FP64 TC 19.5, FP32 19.5, TF32 156, BF16/FP16 312, INT8 624 TOPS dense; 40 MB L2")
_H100_SRC = ("NVIDIA H100 Tensor Core GPU datasheet (2023) and Hopper whitepaper: "
             "SXM FP64 TC 67, FP32 67, TF32 494.7, BF16/FP16 989.4, FP8/INT8 1978.9 dense; "
             "PCIe 51/51/378/756/1513; 50 MB L2")

GPUS: tuple[DeviceSpec, ...] = (
    # ---- Pascal ----
    _gpu("p100-pcie-16gb", "Tesla P100-PCIE-16GB", "pascal", 56, 1303,
         {"float64": 4.7, "float32": 9.3, "float16": 18.7}, 16, 732, 4, 250,
         ["p100", "p100-pcie", "Tesla P100-PCIE-16GB"],
         "NVIDIA Tesla P100 PCIe datasheet (2016): FP64 4.7, FP32 9.3, FP16 18.7 TFLOPS at "
         "1303 MHz boost; 16 GB HBM2 at 732 GB/s; 250 W; GP100 whitepaper: 56 SMs, 4 MB L2",
         notes="FP16 is packed half2 on CUDA cores (no tensor cores)"),
    _gpu("p4", "Tesla P4", "pascal", 20, 1063,
         {"float32": 5.5, "int8": 22.0}, 8, 192, 2, 75,
         ["Tesla P4"],
         "NVIDIA Tesla P4 datasheet (2016): 2560 CUDA cores, FP32 5.5 TFLOPS, INT8 22 TOPS "
         "(DP4A); 8 GB GDDR5 at 192 GB/s; 50/75 W; GP104: 20 SMs of 128 cores, 2 MB L2"),
    # ---- Volta ----
    _gpu("v100-sxm2-32gb", "Tesla V100-SXM2-32GB", "volta", 80, 1530,
         {"float64": 7.8, "float32": 15.7, "float16": 125.0}, 32, 900, 6, 300,
         ["v100", "v100-sxm2", "v100-sxm", "v100-32gb", "Tesla V100-SXM2-32GB"], _V100_SRC),
    _gpu("v100-sxm2-16gb", "Tesla V100-SXM2-16GB", "volta", 80, 1530,
         {"float64": 7.8, "float32": 15.7, "float16": 125.0}, 16, 900, 6, 300,
         ["v100-16gb", "Tesla V100-SXM2-16GB"], _V100_SRC),
    _gpu("v100-pcie-32gb", "Tesla V100-PCIE-32GB", "volta", 80, 1380,
         {"float64": 7.0, "float32": 14.0, "float16": 112.0}, 32, 900, 6, 250,
         ["v100-pcie", "Tesla V100-PCIE-32GB"], _V100_SRC),
    _gpu("v100-pcie-16gb", "Tesla V100-PCIE-16GB", "volta", 80, 1380,
         {"float64": 7.0, "float32": 14.0, "float16": 112.0}, 16, 900, 6, 250,
         ["Tesla V100-PCIE-16GB"], _V100_SRC),
    # ---- Turing ----
    _gpu("t4", "Tesla T4", "turing", 40, 1590,
         {"float32": 8.1, "float16": 65.0, "int8": 130.0}, 16, 320, 4, 70,
         ["Tesla T4", "NVIDIA T4"],
         "NVIDIA T4 Tensor Core GPU datasheet (2019): FP32 8.1, mixed FP16/FP32 65 TFLOPS, "
         "INT8 130 TOPS; 320 GB/s; 70 W; Turing TU104 whitepaper: 4 MB L2"),
    # ---- Ampere GA10x ----
    _gpu("a10", "NVIDIA A10", "ampere", 72, 1695,
         {"float32": 31.2, "tf32": 62.5, "float16": 125.0, "bfloat16": 125.0, "int8": 250.0},
         24, 600, 6, 150, ["NVIDIA A10", "a10-pcie"],
         "NVIDIA A10 Tensor Core GPU datasheet (2021): FP32 31.2, TF32 62.5, BF16/FP16 125, "
         "INT8 250 TOPS dense; 600 GB/s; 150 W; GA102 whitepaper: 6 MB L2"),
    _gpu("a10g", "NVIDIA A10G", "ampere", 80, 1710,
         {"float32": 35.0, "tf32": 35.0, "float16": 70.0, "bfloat16": 70.0},
         24, 600, 6, 300, ["NVIDIA A10G", "a10g-aws"],
         "AWS EC2 G5 product page (NVIDIA A10G, no public NVIDIA datasheet): 80 SMs at "
         "1710 MHz, FP32 35 TFLOPS, FP16 tensor 70 TFLOPS; 24 GB at 600 GB/s; 300 W power "
         "limit as nvidia-smi reports; TF32 at GA102's tensor rate (1/2 of FP16)",
         notes="GeForce-like tensor rate; INT8 not published, left out"),
    _gpu("rtx-3090", "NVIDIA GeForce RTX 3090", "ampere", 82, 1695,
         {"float64": 0.556, "float32": 35.6, "tf32": 35.6, "float16": 71.0,
          "bfloat16": 71.0, "int8": 284.0},
         24, 936, 6, 350, ["3090", "rtx3090", "geforce-rtx-3090", "NVIDIA GeForce RTX 3090"],
         "NVIDIA Ampere GA102 GPU architecture whitepaper (v2.0), RTX 3090 column: FP16/BF16 "
         "tensor with FP32 accumulate 71 (FP16 accumulate 142), TF32 35.6, INT8 284 TOPS "
         "dense; 936 GB/s GDDR6X; 6 MB L2; 350 W",
         notes="GeForce: FP16 tensor with FP32 accumulate runs at half the FP16-accumulate rate",
         float16_acc16=142.0),
    # ---- Ampere GA100 ----
    _gpu("a100-sxm-40gb", "NVIDIA A100-SXM4-40GB", "ampere", 108, 1410,
         {"float64": 19.5, "float32": 19.5, "tf32": 156.0, "float16": 312.0,
          "bfloat16": 312.0, "int8": 624.0},
         40, 1555, 40, 400,
         ["a100-40gb", "a100-sxm4-40gb", "NVIDIA A100-SXM4-40GB", "A100-SXM4-40GB"],
         _A100_SRC + "; SXM4 40GB: 1555 GB/s, 400 W"),
    _gpu("a100-sxm-80gb", "NVIDIA A100-SXM4-80GB", "ampere", 108, 1410,
         {"float64": 19.5, "float32": 19.5, "tf32": 156.0, "float16": 312.0,
          "bfloat16": 312.0, "int8": 624.0},
         80, 2039, 40, 400,
         ["a100", "a100-sxm", "a100-80gb", "a100-sxm4-80gb", "NVIDIA A100-SXM4-80GB",
          "A100-SXM4-80GB"],
         _A100_SRC + "; SXM4 80GB: 2039 GB/s, 400 W"),
    _gpu("a100-pcie-40gb", "NVIDIA A100-PCIE-40GB", "ampere", 108, 1410,
         {"float64": 19.5, "float32": 19.5, "tf32": 156.0, "float16": 312.0,
          "bfloat16": 312.0, "int8": 624.0},
         40, 1555, 40, 250, ["NVIDIA A100-PCIE-40GB", "A100-PCIE-40GB"],
         _A100_SRC + "; PCIe 40GB: 1555 GB/s, 250 W"),
    _gpu("a100-pcie-80gb", "NVIDIA A100 80GB PCIe", "ampere", 108, 1410,
         {"float64": 19.5, "float32": 19.5, "tf32": 156.0, "float16": 312.0,
          "bfloat16": 312.0, "int8": 624.0},
         80, 1935, 40, 300, ["a100-pcie", "NVIDIA A100 80GB PCIe", "A100 80GB PCIe"],
         _A100_SRC + "; PCIe 80GB: 1935 GB/s, 300 W"),
    # ---- Ada Lovelace ----
    _gpu("l4", "NVIDIA L4", "ada", 58, 2040,
         {"float32": 30.3, "tf32": 60.0, "float16": 121.0, "bfloat16": 121.0,
          "float8_e4m3fn": 242.5, "int8": 242.5},
         24, 300, 48, 72, ["NVIDIA L4"],
         "NVIDIA L4 Tensor Core GPU datasheet (2023): FP32 30.3, TF32 120*, BF16/FP16 242*, "
         "FP8/INT8 485* (* with sparsity, halved here); 300 GB/s; 72 W; Ada whitepaper: "
         "48 MB L2, 58 SMs"),
    _gpu("l40s", "NVIDIA L40S", "ada", 142, 2520,
         {"float32": 91.6, "tf32": 183.0, "float16": 362.05, "bfloat16": 362.05,
          "float8_e4m3fn": 733.0, "int8": 733.0},
         48, 864, 96, 350, ["NVIDIA L40S"],
         "NVIDIA L40S datasheet (2023): FP32 91.6, TF32 366*, BF16/FP16 733*, FP8 1466*, "
         "INT8 1466* (* with sparsity, halved here); 864 GB/s; 350 W; 96 MB L2"),
    _gpu("rtx-4070", "NVIDIA GeForce RTX 4070", "ada", 46, 2475,
         {"float32": 29.15, "tf32": 29.15, "float16": 58.3,
          "bfloat16": 58.3, "float8_e4m3fn": 116.6, "int8": 233.2},
         12, 504, 36, 200, ["4070", "rtx4070", "geforce-rtx-4070", "NVIDIA GeForce RTX 4070"],
         "NVIDIA GeForce RTX 4070 specifications (46 SMs, 2475 MHz boost, 12 GB GDDR6X at "
         "504 GB/s, 36 MB L2, 200 W); tensor rates per SM per clock from the Ada Lovelace "
         "whitepaper (AD102 RTX 4090 column) scaled to 46 SMs x 2475 MHz",
         notes="GeForce: FP16/FP8 tensor with FP32 accumulate at half the FP16-accumulate rate",
         float16_acc16=116.6),
    _gpu("rtx-4090", "NVIDIA GeForce RTX 4090", "ada", 128, 2520,
         {"float64": 1.29, "float32": 82.6, "tf32": 82.6, "float16": 165.2,
          "bfloat16": 165.2, "float8_e4m3fn": 330.3, "int8": 660.6},
         24, 1008, 72, 450, ["4090", "rtx4090", "geforce-rtx-4090", "NVIDIA GeForce RTX 4090"],
         "NVIDIA Ada Lovelace GPU architecture whitepaper (v1.01), RTX 4090 column: FP16/BF16 "
         "tensor with FP32 accumulate 165.2 (FP16 accumulate 330.3), FP8 with FP32 accumulate "
         "330.3, TF32 82.6, INT8 660.6 TOPS dense; 1008 GB/s; 72 MB L2; 450 W",
         notes="GeForce: FP16/FP8 tensor with FP32 accumulate at half the FP16-accumulate rate",
         float16_acc16=330.3),
    # ---- Hopper ----
    _gpu("h100-sxm", "NVIDIA H100 SXM5 80GB", "hopper", 132, 1980,
         {"float64": 67.0, "float32": 67.0, "tf32": 494.7, "float16": 989.4,
          "bfloat16": 989.4, "float8_e4m3fn": 1978.9, "int8": 1978.9},
         80, 3350, 50, 700,
         ["h100", "h100-sxm5", "h100-80gb", "NVIDIA H100 80GB HBM3", "H100 80GB HBM3",
          "NVIDIA H100 SXM5", "NVIDIA H100"],
         _H100_SRC + "; SXM5: 3.35 TB/s HBM3, 700 W"),
    _gpu("h100-pcie", "NVIDIA H100 PCIe", "hopper", 114, 1755,
         {"float64": 51.0, "float32": 51.0, "tf32": 378.0, "float16": 756.0,
          "bfloat16": 756.0, "float8_e4m3fn": 1513.0, "int8": 1513.0},
         80, 2000, 50, 350, ["NVIDIA H100 PCIe", "H100 PCIe"],
         _H100_SRC + "; PCIe: 2 TB/s HBM2e, 350 W"),
    _gpu("h200", "NVIDIA H200", "hopper", 132, 1980,
         {"float64": 67.0, "float32": 67.0, "tf32": 494.7, "float16": 989.4,
          "bfloat16": 989.4, "float8_e4m3fn": 1978.9, "int8": 1978.9},
         141, 4800, 50, 700,
         ["h200-sxm", "NVIDIA H200", "NVIDIA H200 141GB HBM3e", "H200 SXM"],
         "NVIDIA H200 Tensor Core GPU datasheet (2024), SXM column: same compute as H100 SXM "
         "(FP64 TC 67, TF32 989*, BF16/FP16 1979*, FP8/INT8 3958*; * sparse, halved here); "
         "141 GB HBM3e at 4.8 TB/s; up to 700 W"),
    # ---- Blackwell ----
    _gpu("b200", "NVIDIA B200", "blackwell", 148, 1965,
         {"float64": 40.0, "float32": 80.0, "tf32": 1100.0, "float16": 2250.0,
          "bfloat16": 2250.0, "float8_e4m3fn": 4500.0, "int8": 4500.0},
         180, 8000, 126, 1000, ["b200-sxm", "NVIDIA B200", "HGX B200"],
         "NVIDIA HGX B200 datasheet (2024), per-GPU figures at 1000 W: FP64 40, FP32 80, "
         "TF32 2.2 P*, BF16/FP16 4.5 P*, FP8/INT8 9 P* (* sparse, halved here); 180 GB HBM3e "
         "at 8 TB/s. 148 SMs and 126 MB L2 as measured by Chips and Cheese (2025), not in "
         "the datasheet"),
)

TPUS: tuple[DeviceSpec, ...] = (
    DeviceSpec(
        key="tpu-v4", name="Google TPU v4", kind="tpu", sm_count=2,
        boost_clock_hz=1050 * MHz,
        peak_flops={"bfloat16": 275 * T, "int8": 275 * T},
        memory_bytes=32 * GiB, memory_bandwidth=1200 * GB_S, l2_bytes=128 * MiB,
        tdp_w=192.0, aliases=("tpuv4", "TPU v4", "tpu-v4-chip"),
        source="Jouppi et al., 'TPU v4' (ISCA 2023), Table 2: 2 TensorCores at 1050 MHz, "
               "275 TFLOP/s bf16 and int8 per chip, 32 GiB HBM2 at 1200 GB/s, 128 MiB CMEM "
               "(listed as l2_bytes); Google Cloud TPU v4 documentation: 192 W maximum per chip; "
               "PaLM (Chowdhery et al. 2022) uses 275 TFLOP/s",
        architecture="tpu-v4",
        notes="sm_count counts TensorCores",
    ),
)
