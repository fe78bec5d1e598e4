"""The timer shared by the benchmarks: median wall time of repeated calls after a warm-up."""

import time


def median_time(fn, repeats: int, warmup: int = 5) -> float:
    """Median seconds per call of fn()."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
