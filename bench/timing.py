"""Side-by-side timing: alternate the measured and the reference runs, compare medians."""
import statistics
import time
import tracemalloc
from dataclasses import dataclass


@dataclass
class Row:
    figure: str
    measured: str
    reference: str
    ratio: float
    bar: str
    ok: bool


def median_seconds(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def side_by_side(measured, reference, repeat=7, rounds=3):
    """Median time of each, alternating A,B,A,B so machine noise hits both alike."""
    a, b = [], []
    for _ in range(rounds):
        a.append(median_seconds(measured, repeat))
        b.append(median_seconds(reference, repeat))
    return statistics.median(a), statistics.median(b)


def peak_memory(function):
    """Peak bytes Python allocated while function ran (tracemalloc)."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def mib_per_s(size, seconds):
    return f"{size / seconds / 2**20:,.0f} MiB/s"
