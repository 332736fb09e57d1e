"""Kubernetes quantities are parsed exactly, and hostile ones are refused quickly."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from trainyard.core.quantity import (
    format_cpu,
    format_memory,
    parse_cpu,
    parse_memory,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "millicores"),
    [("100m", 100), ("1", 1000), ("0.5", 500), (2, 2000), (0.25, 250), ("1.5", 1500),
     ("0.0001", 1), ("4000m", 4000), ("1e3", 1_000_000)],
)  # fmt: skip
def test_cpu_in_millicores(text: str | int | float, millicores: int) -> None:
    assert parse_cpu(text) == millicores


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [("64Mi", 64 * 2**20), ("8Gi", 8 * 2**30), ("1G", 10**9), ("1k", 1000), ("1Ki", 1024),
     ("62Mi", 62 * 2**20), ("1e3", 1000), ("1.5Gi", 3 * 2**29), ("7Ei", 7 * 2**60), (128, 128)],
)  # fmt: skip
def test_memory_in_bytes(text: str | int, nbytes: int) -> None:
    assert parse_memory(text) == nbytes


def test_exact_decimal_arithmetic() -> None:
    assert parse_quantity("0.1") + parse_quantity("0.2") == Decimal("0.3")


@pytest.mark.parametrize(
    "text", ["", "abc", "-1", "1x", "1 Gi", "Gi", "1.2.3", "1e", "0x10", "1ei", "∞"]
)
def test_malformed_quantities_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(text)


@pytest.mark.parametrize("text", ["1e99999999", "1e999999", "1e5000", "9Ei", "1e-999999"])
def test_huge_quantities_are_refused_at_once(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match="out of range"):
        parse_memory(text)
    assert time.perf_counter() - started < 0.1


@pytest.mark.parametrize("value", [True, -5, float("nan"), float("inf"), -0.5])
def test_non_quantity_values_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(value)  # type: ignore[arg-type]


def test_formatting_round_trips() -> None:
    assert format_memory(parse_memory("8Gi")) == "8Gi"
    assert format_memory(parse_memory("100Mi")) == "100Mi"
    assert format_memory(1000) == "1000"
    assert format_cpu(parse_cpu("100m")) == "100m"
    assert format_cpu(parse_cpu("2")) == "2"
