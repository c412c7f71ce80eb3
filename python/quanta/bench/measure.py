"""How a workload is timed.

The repeated workloads are timed the way Ray's own microbenchmark times them:
call the workload for a warm-up period, derive a step (a tenth of the warm-up
count, plus one), then make several timed runs that each call it in steps
until the run's duration has passed.  Each run yields one sample (calls per
second times a multiplier); a workload's result is the mean, population
standard deviation and median of its samples.

Workloads that are too slow or too stateful to repeat in a loop (starting a
process, creating 200 actors) are instead done once to warm up and then once
per run, each run again giving one sample.
"""

import gc
import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    warmup_s: float  # warm-up period before the timed runs (at least one call)
    runs: int  # timed runs of a repeated workload
    run_s: float  # minimum duration of one timed run
    settle_s: float  # pause before each workload, so the last one's clean-up ends
    oneshot_runs: int  # timed runs of a one-shot workload (startup, footprint)
    oneshot_warmup: bool  # do one untimed one-shot run first
    quiet_s: float  # an idle cluster has settled once its process set is unchanged this long


TIMINGS = {
    # Ray itself uses a 1 s warm-up and 4 runs of 2 s after a 10 s sleep;
    # "full" keeps that shape with shorter runs, to fit in 15 minutes.
    "full": Timing(warmup_s=1.0, runs=4, run_s=1.0, settle_s=0.25,
                   oneshot_runs=2, oneshot_warmup=True, quiet_s=2.0),
    "quick": Timing(warmup_s=0.2, runs=3, run_s=0.3, settle_s=0.1,
                    oneshot_runs=1, oneshot_warmup=False, quiet_s=1.5),
    "smoke": Timing(warmup_s=0.0, runs=1, run_s=0.0, settle_s=0.0,
                    oneshot_runs=1, oneshot_warmup=False, quiet_s=0.5),
}


def summarize(samples):
    """Mean, population standard deviation (as Ray reports it) and median."""
    return {
        "mean": statistics.fmean(samples),
        "sd": statistics.pstdev(samples) if len(samples) > 1 else 0.0,
        "median": statistics.median(samples),
    }


class Measurer:
    """Times callables according to a :class:`Timing`."""

    def __init__(self, timing):
        self.timing = timing

    def settle(self):
        gc.collect()
        if self.timing.settle_s:
            time.sleep(self.timing.settle_s)

    def rates(self, fn, multiplier=1.0):
        """Per-run samples of ``multiplier * calls / second`` (Ray's timeit)."""
        t = self.timing
        count, start = 0, time.perf_counter()
        while True:
            fn()
            count += 1
            if time.perf_counter() - start >= t.warmup_s:
                break
        step = count // 10 + 1
        samples = []
        for _ in range(t.runs):
            count, start = 0, time.perf_counter()
            while True:
                for _ in range(step):
                    fn()
                count += step
                elapsed = time.perf_counter() - start
                if elapsed >= t.run_s:
                    break
            samples.append(multiplier * count / elapsed)
        return samples

    def latencies(self, fn, scale=1.0):
        """Per-run samples of the mean time of one call, times ``scale``
        (1e3 for milliseconds, 1e6 for microseconds)."""
        return [scale / rate for rate in self.rates(fn)]

    def oneshot(self, fn):
        """Per-run samples of ``fn()``'s own return value (it measures itself)."""
        if self.timing.oneshot_warmup:
            fn()
        return [fn() for _ in range(self.timing.oneshot_runs)]

    def sequences(self, fn, n):
        """Per-run lists of ``n`` single-call durations in seconds, after a
        warm-up of ``n // 10 + 1`` calls."""
        for _ in range(n // 10 + 1):
            fn()
        runs = []
        for _ in range(self.timing.runs):
            durations = []
            for _ in range(n):
                start = time.perf_counter()
                fn()
                durations.append(time.perf_counter() - start)
            runs.append(durations)
        return runs


def percentile(values, q):
    """The ``q``-th percentile (0..100) of ``values`` by linear interpolation."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
