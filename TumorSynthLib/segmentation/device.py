"""Device choice and out-of-memory handling for training and inference."""
from __future__ import annotations

import torch

from ..core.errors import DependencyError, InputError, ResourceError


def resolve_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when torch sees a GPU, else CPU; ``cuda`` without a GPU is an error."""
    pref = str(preference).lower()
    if pref not in ("auto", "cpu", "cuda"):
        raise InputError(f"unknown --device '{preference}'; choose auto, cpu or cuda")
    cuda = torch.cuda.is_available()
    if pref == "cuda" and not cuda:
        raise DependencyError("--device cuda, but torch sees no CUDA GPU (torch.cuda.is_available() "
                              "is False); use --device cpu, or install a CUDA build of torch")
    if pref == "cpu" or not cuda:
        return torch.device("cpu")
    return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "not enough memory" in text)


def out_of_memory_error(device: torch.device, patch: int, what: str = "training") -> ResourceError:
    """The message for an out-of-memory failure: what to change to make it fit."""
    smaller = max(16, (patch // 2) // 16 * 16)
    where = "the GPU" if device.type == "cuda" else "this machine's RAM"
    hint = f"use a smaller patch (--patch {smaller})"
    if device.type == "cuda":
        hint += ", a smaller --batch-size, or --device cpu"
    else:
        hint += ", a smaller --batch-size or fewer --samples-per-case, or close other programs"
    return ResourceError(f"{what} ran out of memory on {where} with {patch}^3 patches; {hint}")


__all__ = ["ResourceError", "resolve_device", "is_out_of_memory", "out_of_memory_error"]
