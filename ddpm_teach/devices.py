"""Device selection: CUDA, then Apple's MPS, then the CPU.  Never hard-coded elsewhere."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .training import MixedPrecision

__all__ = ["DeviceError", "pick_device", "describe_device", "cpu_has_native_bf16", "native_precision", "amp_dtype_for", "optimizer_options", "cpu_name"]


class DeviceError(ValueError):
    """A device that is not a device, or is not available here."""


def pick_device(preference: str | torch.device | None = None) -> torch.device:
    """``"auto"``/None picks cuda, then mps, then cpu; ``DDPM_TEACH_DEVICE`` overrides auto.
    An explicit device that is not available raises a clear error."""
    preference = preference if preference not in (None, "auto") else os.environ.get("DDPM_TEACH_DEVICE", "auto")
    if isinstance(preference, torch.device):
        preference = str(preference)
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError):
        raise DeviceError(f"--device {preference!r} is not a device; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {preference!r} was asked for, but CUDA is not available here. Use --device cpu or auto.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError(f"device {preference!r} was asked for, but MPS is not available here. Use --device cpu or auto.")
    return device


def describe_device(device: torch.device) -> str:
    """A one-line description for runtime notes, e.g. 'cuda (NVIDIA H100 80GB HBM3)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AVX-512-BF16 or AMX, as on recent Xeons), so
    that bf16 autocast on the CPU is a speed-up rather than a slow emulation."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def native_precision(device: torch.device | None = None) -> str:
    """"bf16" where ``device`` (the CPU by default) computes bf16 in hardware, else "fp32": the one
    rule behind ``precision="auto"`` for sampling and every benchmark's choice of precision.  On a
    CPU without AMX or AVX-512-BF16, bf16 is emulated and many times slower than fp32."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def optimizer_options(device: torch.device) -> dict:
    """Extra AdamW options for ``device``: the fused kernel on CUDA (one launch for all parameters),
    nothing elsewhere (the CPU's default for-each implementation is the fast one there)."""
    return {"fused": True} if device.type == "cuda" else {}


def amp_dtype_for(choice: MixedPrecision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``--mixed-precision`` on ``device`` (None: fp32).  "auto" is bf16 on
    GPUs with native bf16 (Ampere and later), fp16 with a grad scaler on older ones (a T4 would
    emulate bf16 slowly), and fp32 on CPUs."""
    if choice == "no" or (choice == "auto" and device.type != "cuda"):
        return None
    if choice == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    if choice == "fp16" and device.type != "cuda":
        raise ValueError("fp16 mixed precision needs CUDA; on CPU use --mixed-precision bf16 or no.")
    return torch.bfloat16 if choice == "bf16" else torch.float16


def cpu_name() -> str:
    """The CPU's model name (``lscpu``'s "Model name"), for the record."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
