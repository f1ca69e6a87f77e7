"""Timing on a machine other people share: measure only while nobody else is using the CPU.

An `Interval`'s `others` is the share of the machine's CPU time that other processes at normal or
higher priority used during it: the busy time from /proc/stat (niced work excluded) minus this
process's own CPU time (its threads and its waited-for children, os.times()). A timed pass counts as clean when that share stays under
`CLEAN_SHARE`; `wait_quiet()` waits (idle) until a short sample is clean. Linux only; elsewhere
every pass counts as clean.
"""
import os
import sys
import time

CLEAN_SHARE = 0.10
# The longest wait for a quiet moment before one pass (seconds); ZSC_QUIET_MAX_WAIT_S overrides.
MAX_WAIT_S = float(os.environ.get("ZSC_QUIET_MAX_WAIT_S", "900"))
CORES = os.cpu_count() or 1
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_s():
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except OSError:
        return None
    # user, system, irq, softirq, steal. Not `nice` (v[1]): processes at a positive nice value only
    # get CPU that normal-priority work leaves (CFS weight 15 at nice 19 against 1024 at nice 0), so
    # a background job started with `nice` does not disturb the timing and need not be waited for.
    return (v[0] + v[2] + v[5] + v[6] + v[7]) / TICK


def _mine_s():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Interval:
    """Wall time and other processes' CPU share of one interval: `with Interval() as iv: ...`."""

    def __enter__(self):
        self.busy0, self.mine0, self.t0 = _machine_busy_s(), _mine_s(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        busy1 = _machine_busy_s()
        if self.busy0 is None or busy1 is None or self.wall <= 0:
            self.others = 0.0
        else:
            self.others = max(0.0, (busy1 - self.busy0) - (_mine_s() - self.mine0)) / (self.wall * CORES)
        return False

    @property
    def clean(self):
        return self.others < CLEAN_SHARE


_gave_up_at = -1e9


def wait_quiet(max_wait_s=None, sample_s=2.0, log=lambda *a: print(*a, file=sys.stderr, flush=True)):
    """Sleeps until other processes use less than CLEAN_SHARE of the CPU over `sample_s`, or
    `max_wait_s` passed. Returns the seconds waited. After a wait that gave up, the next 2 minutes
    do not wait again (the machine is busy for a while: measure, and say so)."""
    global _gave_up_at
    max_wait_s = MAX_WAIT_S if max_wait_s is None else max_wait_s
    if time.perf_counter() - _gave_up_at < 120:
        return 0.0
    start = time.perf_counter()
    said = False
    while True:
        with Interval() as iv:
            time.sleep(sample_s)
        if iv.clean:
            return time.perf_counter() - start
        if time.perf_counter() - start > max_wait_s:
            _gave_up_at = time.perf_counter()
            log(f"  (still busy after {max_wait_s:.0f} s: others use {iv.others:.0%} of the CPU; measuring anyway)")
            return time.perf_counter() - start
        if not said:
            log(f"  waiting for a quiet machine (others use {iv.others:.0%} of the CPU) ...")
            said = True


def clean_passes(fn, repeats, max_attempts=None, max_wait_s=None):
    """Runs `fn` until `repeats` clean passes (at most `max_attempts`, default 3 x repeats), waiting
    for a quiet machine before each. Returns (clean pass times, all pass times, last result,
    others' share per pass)."""
    max_attempts = max_attempts or 3 * repeats
    clean, times, shares, out = [], [], [], None
    for attempt in range(max_attempts):
        if attempt >= repeats and not clean:
            break  # busy throughout: more passes would not find a quiet one
        wait_quiet(max_wait_s)
        with Interval() as iv:
            out = fn()
        times.append(iv.wall)
        shares.append(iv.others)
        if iv.clean:
            clean.append(iv.wall)
            if len(clean) >= repeats:
                break
    return clean, times, out, shares
