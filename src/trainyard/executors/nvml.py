"""GPU discovery with NVML (``nvidia-ml-py``): index, UUID, product name and memory of each
GPU of this machine. No driver, no library or no GPU means no GPUs, quietly: trainyard runs
the same on a laptop."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["DiscoveredGpu", "discover_gpus"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscoveredGpu:
    index: int
    uuid: str
    product: str  # NVML's name with spaces as dashes: "Tesla-V100-SXM2-32GB"
    memory_bytes: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def discover_gpus() -> list[DiscoveredGpu]:
    """The GPUs NVML sees, in NVML index order; [] when NVML is unavailable."""
    try:
        import pynvml  # type: ignore[import-untyped]
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        log.debug("NVML unavailable (%s): no GPUs", exc)
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                DiscoveredGpu(
                    index=index,
                    uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                    product="-".join(_text(pynvml.nvmlDeviceGetName(handle)).split()),
                    memory_bytes=int(memory.total),
                )
            )
        return gpus
    except Exception as exc:
        log.warning("NVML failed while listing GPUs (%s): scheduling without them", exc)
        return []
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
