"""GPU measurements through NVML (``nvidia-ml-py``), for the run supervisor (the GPUs of each
replica) and the server (every GPU of its node).

Stdlib only until the first sample: ``pynvml`` is imported then, so a supervisor of a run
without GPUs never loads it. NVML is initialised once per :class:`GpuReader` and kept.
Without a library, a driver or a GPU, :meth:`GpuReader.sample` returns ``[]`` and
:attr:`GpuReader.error` says why (once); callers then show "no GPU", never zeros.

A measurement the device does not support (power on some boards, utilisation under MIG) is
left out of that GPU's sample rather than reported as 0.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; mypy still sees the names
if TYPE_CHECKING:
    from typing import Any

__all__ = ["GPU_FIELDS", "GpuReader"]

# Field -> unit, in the order charts show them (Kibernetika's GPU metrics). MB are MiB
# (2**20 bytes), as nvidia-smi counts them.
GPU_FIELDS = {
    "utilization_percent": "%",
    "memory_mb": "MB",
    "power_w": "W",
    "temperature_c": "°C",
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GpuReader:
    """Samples GPUs by UUID (or all of them). Not thread-safe: one per sampling thread."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._tried = False
        self._handles: dict[str, tuple[int, Any]] = {}  # uuid -> (NVML index, handle)
        self._readers: tuple[tuple[str, Any], ...] = ()
        self.error = ""  # why NVML is unavailable ("" while it works or was never tried)

    def _init(self) -> bool:
        if self._tried:
            return self._nvml is not None
        self._tried = True
        try:
            import pynvml  # type: ignore[import-untyped]
        except ImportError:
            self.error = "the NVML library (nvidia-ml-py) is not installed"
            return False
        try:
            pynvml.nvmlInit()
            for index in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                self._handles[_text(pynvml.nvmlDeviceGetUUID(handle))] = (index, handle)
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.error = f"NVML is unavailable: {exc}"
            return False
        self._nvml = pynvml
        self._readers = (
            ("utilization_percent", lambda h: pynvml.nvmlDeviceGetUtilizationRates(h).gpu),
            ("memory_mb", lambda h: pynvml.nvmlDeviceGetMemoryInfo(h).used / 1048576),
            ("power_w", lambda h: pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
            (
                "temperature_c",
                lambda h: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
            ),
        )
        return True

    def uuids(self) -> list[str]:
        """The UUIDs NVML sees, in index order ([] without NVML)."""
        if not self._init():
            return []
        return sorted(self._handles, key=lambda u: self._handles[u][0])

    def sample(self, uuids: list[str] | None = None) -> list[dict[str, Any]]:
        """One sample per GPU in ``uuids`` that NVML knows (all GPUs when None), in the order
        asked: ``{"uuid", "index", "utilization_percent", "memory_mb", "power_w",
        "temperature_c"}`` with unsupported fields left out. A UUID NVML does not know (a
        simulated GPU) gets no sample."""
        if not self._init():
            return []
        wanted = self.uuids() if uuids is None else uuids
        out: list[dict[str, Any]] = []
        for uuid in wanted:
            known = self._handles.get(uuid)
            if known is None:
                continue
            index, handle = known
            sample: dict[str, Any] = {"uuid": uuid, "index": index}
            for field, read in self._readers:
                try:
                    sample[field] = float(read(handle))
                except Exception:  # not supported by this device: left out, not 0
                    continue
            out.append(sample)
        return out

    def close(self) -> None:
        nvml, self._nvml, self._handles, self._tried = self._nvml, None, {}, False
        if nvml is not None:
            try:
                nvml.nvmlShutdown()
            except Exception:  # already shut down, or the driver went away: nothing to undo
                return
