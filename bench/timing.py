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


def median_seconds(function, repeat, cleanup=None):
    """Median time of ``repeat`` calls; ``cleanup()`` (untimed) after each, e.g. to delete what it wrote."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
        if cleanup is not None:
            cleanup()
    return statistics.median(times)


def side_by_side(measured, reference, repeat=7, rounds=3, cleanup=None):
    """Median time of each, alternating A,B,A,B so machine noise hits both alike. ``cleanup`` runs, untimed,
    after each measured call (keeping what a figure writes from piling up: on this VM, memory the guest has
    not touched yet costs a host page fault per page, so a growing tmpfs or page cache slows writes 5-10x)."""
    a, b = [], []
    for _ in range(rounds):
        a.append(median_seconds(measured, repeat, cleanup))
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
