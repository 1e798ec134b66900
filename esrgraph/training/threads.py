"""How many threads a process computes with: the cores other processes leave free.

PyTorch starts one OpenMP thread per core. On a machine that other jobs
share, one of those threads then waits its turn behind a foreign process at
every parallel region, and every other thread waits for it at the region's
end: an amazon-scientific training epoch took 170–186 s instead of 7 s with one
other single-thread job on 2 cores. A thread per *free* core avoids that.

The rule (``threads: auto``, the default): the cores this process may run on,
minus the cores other processes kept busy over a short sample of
``/proc/stat`` (this process's own time does not count), at least one. It is
taken at the start of a command and again at the start of every training
epoch, so a job that starts or ends meanwhile changes the count at the next
epoch. ``OMP_NUM_THREADS`` or ``esr --threads N`` fix the count instead. The
Python API's training follows the same rule unless the caller fixed the count
(``OMP_NUM_THREADS``, or ``torch.set_num_threads`` before the call). Idle
OpenMP threads spin only briefly before they sleep (``GOMP_SPINCOUNT``, unless
it or ``OMP_WAIT_POLICY`` is set), so a waiting thread gives its core back
soon. Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) cost every small
operation a wake-up: the quick profile's training steps took 1.4× as long on
the idle machine (5.9–6.0 s against 4.2–4.3 s an epoch).
"""

from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 0.1
RESAMPLE_AFTER = 5.0  # seconds: a count this recent is kept (a sample sleeps SAMPLE_SECONDS)
# Busy-wait iterations before an idle OpenMP thread sleeps (the runtime's own default: 300,000).
SPIN_COUNT = "10000"
# The environment variables this module reads or sets: a child meant to follow the rule anew drops them.
OPENMP_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
_adapting = False  # the count follows the free cores (configured by a command, no count fixed)
_configured = False  # a command (or an API call) has applied the rule in this process
_sampled_at = float("-inf")  # time.monotonic() of the last sample


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def busy_elsewhere(seconds: float = SAMPLE_SECONDS) -> float | None:
    """Cores other processes kept busy during ``seconds`` (None where /proc cannot tell)."""
    try:
        total0, idle0 = _cpu_times()
        own0 = _own_time()
        time.sleep(seconds)
        total1, idle1 = _cpu_times()
        own1 = _own_time()
    except (OSError, ValueError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    elapsed = (total1 - total0) / ticks  # core-seconds of all cores
    if elapsed <= 0:
        return None
    busy = elapsed - (idle1 - idle0) / ticks - (own1 - own0)
    return max(busy, 0.0) / seconds


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    return sum(fields[:8]), idle


def _own_time() -> float:
    times = os.times()
    return times.user + times.system


def free_threads() -> int:
    """The cores this process may use that others leave free, at least one."""
    global _sampled_at
    cores = usable_cores()
    busy = busy_elsewhere()
    _sampled_at = time.monotonic()
    if busy is None:
        return cores
    return max(1, min(cores, round(cores - busy)))


def configure(threads: int | None) -> None:
    """Called once at the start of a command, before torch computes: ``threads`` fixes the count;
    else ``OMP_NUM_THREADS`` where set (torch reads it itself); else the free cores, taken again
    every epoch."""
    global _adapting, _configured
    _configured = True
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
    _adapting = threads is None and not os.environ.get("OMP_NUM_THREADS", "").isdigit()
    if threads is None and not _adapting:
        return
    count = threads or free_threads()
    os.environ["OMP_NUM_THREADS"] = str(count)
    _set_torch_threads(count)


def configure_once() -> None:
    """The library's entry points (no command ran :func:`configure`): the same rule, unless the caller
    already chose torch's thread count (it differs from the usable cores, torch's own default)."""
    global _configured
    if _configured:
        return
    torch = _imported_torch()
    if torch is not None and torch.get_num_threads() != usable_cores():
        _configured = True  # the caller's count stands
        return
    configure(None)


def adapt() -> None:
    """At the start of a training epoch: follow the free cores, unless the count was fixed or was
    just taken (the command's start and its first epoch a moment apart)."""
    if _adapting and time.monotonic() - _sampled_at >= RESAMPLE_AFTER:
        _set_torch_threads(free_threads())


def _imported_torch():
    """torch where this process imported it already, else None (this module must not import it first)."""
    return sys.modules.get("torch")


def _set_torch_threads(count: int) -> None:
    torch = _imported_torch()
    if torch is None:  # not imported yet: OMP_NUM_THREADS sets it when it is
        return
    if torch.get_num_threads() != count:
        log.info("threads: %d (cores free of other work)", count)
        torch.set_num_threads(count)
