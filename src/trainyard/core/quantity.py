"""Kubernetes resource quantities, parsed exactly (no floats).

CPU is returned in millicores (``"100m"`` -> 100, ``"1"`` -> 1000, ``0.5`` -> 500);
memory in bytes (``"64Mi"`` -> 67108864, ``"1G"`` -> 10**9, ``"1e3"`` -> 1000).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["format_cpu", "format_memory", "parse_cpu", "parse_memory", "parse_quantity"]

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_MAX_EXPONENT = 30
_MAX_QUANTITY = Decimal(2**63 - 1)
_RE = re.compile(
    r"^\+?(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suf>[eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$"
)


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity into an exact Decimal. Raises ``ValueError`` with the reason."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} must not be negative")
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or value < 0:
            raise ValueError(f"{value!r} is not a valid quantity")
        return Decimal(str(value))
    text = str(value).strip()
    m = _RE.match(text)
    if not m:
        raise ValueError(f"'{value}' is not a quantity (expected e.g. 100m, 0.5, 2, 64Mi, 8Gi, 1G)")
    try:
        num = Decimal(m.group("num"))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"'{value}' is not a quantity") from exc
    suf = m.group("suf") or ""
    if suf not in _SUFFIXES:  # a decimal exponent, e.g. "e3" ("Ei" is a suffix)
        exponent = int(suf[1:])
        # Bounded before computing: 1e999999 would cost a minute of CPU and 1e99999999
        # overflows Decimal. No machine has 10^30 bytes or millicores.
        if not -_MAX_EXPONENT <= exponent <= _MAX_EXPONENT:
            raise ValueError(f"'{value}' is out of range (exponent at most {_MAX_EXPONENT})")
        result = num * (Decimal(10) ** exponent)
    else:
        result = num * _SUFFIXES[suf]
    if result > _MAX_QUANTITY:
        raise ValueError(f"'{value}' is out of range (at most 2^63 - 1)")
    return result


def parse_cpu(value: str | int | float) -> int:
    """CPU quantity -> millicores. ``"100m"`` -> 100; ``"1"`` -> 1000. Rounds up."""
    millis = parse_quantity(value) * 1000
    whole = int(millis)
    return whole if millis == whole else whole + 1


def parse_memory(value: str | int | float) -> int:
    """Memory quantity -> bytes. ``"64Mi"`` -> 67108864. Fractions of a byte are rounded up."""
    q = parse_quantity(value)
    whole = int(q)
    return whole if q == whole else whole + 1


def format_cpu(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_memory(nbytes: int) -> str:
    for suf in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = int(_SUFFIXES[suf])
        if nbytes >= unit and nbytes % unit == 0:
            return f"{nbytes // unit}{suf}"
    return str(nbytes)
