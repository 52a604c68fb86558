"""The GPUs ``plan --gpu`` knows: dense bf16 tensor-core peak and memory, each from its maker's datasheet.

One table, read by the memory estimate (:mod:`encoder_recipes.training.memory`),
the time plan (:mod:`encoder_recipes.plan_hardware`) and ``bench/gpu.py``'s MFU.
NVIDIA's datasheets print the bf16 figure *with sparsity* (2:4 structured
sparsity doubles it); training dense matrices gets half of it, which is the
figure here and the MFU denominator everyone uses (ModernBERT, llm-foundry).
Memory is the datasheet's, in decimal GB; torch reports a little less as usable.
"""

from __future__ import annotations

from dataclasses import dataclass

_H100 = ("NVIDIA H100 Tensor Core GPU datasheet, 'BF16 Tensor Core' row (1,979 TFLOPS SXM / 1,513 PCIe "
         "with sparsity), 'GPU memory' 80GB: https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet")
_H200 = ("NVIDIA H200 Tensor Core GPU datasheet, 'BF16 Tensor Core' 1,979 TFLOPS with sparsity (the H100's "
         "compute), 'GPU memory' 141GB HBM3e: https://www.nvidia.com/en-us/data-center/h200/")
_A100 = ("NVIDIA A100 Tensor Core GPU datasheet, 'BF16 Tensor Core' 312 TFLOPS (624 with sparsity), "
         "'GPU memory' 80GB / 40GB: https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
         "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf")
_L40S = ("NVIDIA L40S datasheet, 'BF16 Tensor Core' 362.05 TFLOPS (733 with sparsity), 'GPU memory' 48GB: "
         "https://www.nvidia.com/en-us/data-center/l40s/")
_A10 = ("NVIDIA A10 datasheet, 'BF16 Tensor Core' 125 TFLOPS (250 with sparsity), 'GPU memory' 24GB: "
        "https://www.nvidia.com/en-us/data-center/products/a10-gpu/")


@dataclass(frozen=True)
class GPU:
    name: str
    bf16_dense_tflops: float
    memory_gb: float
    source: str
    #: a substring of ``torch.cuda.get_device_name()`` that identifies the card (bench/gpu.py)
    device_name: str

    @property
    def peak_flops(self) -> float:
        return self.bf16_dense_tflops * 1e12

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9


GPUS: dict[str, GPU] = {g.name: g for g in (
    GPU("h100", 989.4, 80, _H100, "H100"),          # SXM5; 1,979 / 2
    GPU("h100-pcie", 756.5, 80, _H100, "H100 PCIe"),  # 1,513 / 2
    GPU("h200", 989.4, 141, _H200, "H200"),
    GPU("a100", 312.0, 80, _A100, "A100"),
    GPU("a100-40gb", 312.0, 40, _A100, "A100-SXM4-40GB"),
    GPU("l40s", 362.05, 48, _L40S, "L40S"),
    GPU("a10", 125.0, 24, _A10, "A10"),
)}


def gpu(name: str) -> GPU:
    """The table's entry for ``name``; an unknown name is refused with the known ones."""
    try:
        return GPUS[name]
    except KeyError:
        raise ValueError(f"unknown GPU {name!r}; known: {', '.join(GPUS)}") from None


def gpu_of_device(device_name: str) -> GPU | None:
    """The entry whose ``device_name`` is the longest match in a CUDA device name (``H100 PCIe`` before ``H100``)."""
    matches = [g for g in GPUS.values() if g.device_name in device_name]
    return max(matches, key=lambda g: len(g.device_name)) if matches else None
