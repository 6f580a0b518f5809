"""Numbers as the benchmark tables print them."""

from __future__ import annotations


def fmt_int(x: float) -> str:
    """1234567.8 -> '1,234,568'."""
    return f"{x:,.0f}"


def fmt_rate(x: float | None) -> str:
    """A rate: whole numbers from 100 up, one decimal below; 'n/a' for None."""
    if x is None:
        return "n/a"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def fmt_percent(x: float | None) -> str:
    """A percentage: one decimal from 1% up, two significant digits below; 'n/a' for None."""
    if x is None:
        return "n/a"
    return f"{x:.1f}%" if x >= 1 else f"{x:.2g}%"


def fmt_gib(mib: float | None, digits: int = 1) -> str:
    """MiB as GiB; 'n/a' for None."""
    return "n/a" if mib is None else f"{mib / 1024:.{digits}f} GiB"
