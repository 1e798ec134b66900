"""The thread count follows the cores other jobs leave free."""

import os

from esrgraph.training import threads


def test_a_busy_core_elsewhere_is_counted_and_this_process_is_not(monkeypatch):
    """Two cores over 0.1 s: 20 ticks of 100 Hz; 6 idle, this process used 0.04 s, so others kept
    (20 - 6) / 100 - 0.04 = 0.10 core-seconds busy: one core."""
    ticks = iter([(1000, 500), (1020, 506)])  # (all ticks, idle ticks) before and after
    own = iter([5.00, 5.04])
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(ticks))
    monkeypatch.setattr(threads, "_own_time", lambda: next(own))
    monkeypatch.setattr(threads.os, "sysconf", lambda name: 100)
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: None)
    assert abs(threads.busy_elsewhere(0.1) - 1.0) < 1e-9


def test_the_real_sample_is_a_number_of_cores():
    busy = threads.busy_elsewhere(0.05)
    assert busy is None or 0.0 <= busy <= threads.usable_cores() + 0.5


def test_the_free_count_leaves_a_core_to_a_busy_neighbour(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_elsewhere", lambda seconds=0.1: 1.0)
    assert threads.free_threads() == 1
    monkeypatch.setattr(threads, "busy_elsewhere", lambda seconds=0.1: 0.05)
    assert threads.free_threads() == 2
    monkeypatch.setattr(threads, "busy_elsewhere", lambda seconds=0.1: 3.0)
    assert threads.free_threads() == 1  # never below one


def test_a_fixed_count_or_omp_num_threads_is_kept(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    try:
        threads.configure(None)
        assert not threads._adapting and os.environ["GOMP_SPINCOUNT"] == threads.SPIN_COUNT
        threads.configure(1)
        assert torch.get_num_threads() == 1 and not threads._adapting
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(threads, "free_threads", lambda: 1)
        threads.configure(None)
        assert threads._adapting and os.environ["OMP_NUM_THREADS"] == "1"
        monkeypatch.delenv("GOMP_SPINCOUNT")
        monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # the user's policy stands
        threads.configure(None)
        assert "GOMP_SPINCOUNT" not in os.environ
    finally:
        threads._adapting = False
        torch.set_num_threads(before)


def test_an_epoch_right_after_a_sample_keeps_its_count(monkeypatch):
    calls = []
    monkeypatch.setattr(threads, "free_threads", lambda: calls.append(1) or 1)
    monkeypatch.setattr(threads, "_set_torch_threads", lambda count: None)
    monkeypatch.setattr(threads, "_adapting", True)
    monkeypatch.setattr(threads, "_sampled_at", threads.time.monotonic())
    threads.adapt()
    assert calls == []  # the command's own sample, a moment ago, still holds
    monkeypatch.setattr(threads, "_sampled_at", threads.time.monotonic() - threads.RESAMPLE_AFTER)
    threads.adapt()
    assert calls == [1]


def test_the_api_applies_the_rule_once_unless_the_caller_chose_a_count(monkeypatch):
    import torch

    applied = []
    monkeypatch.setattr(threads, "configure", lambda count: applied.append(count))
    monkeypatch.setattr(threads, "_configured", False)
    monkeypatch.setattr(threads, "usable_cores", lambda: torch.get_num_threads())
    threads.configure_once()
    assert applied == [None]  # torch at its default: the rule applies
    monkeypatch.setattr(threads, "usable_cores", lambda: torch.get_num_threads() + 1)
    threads.configure_once()
    assert applied == [None] and threads._configured  # the caller's own count stands, and is not sampled again
    monkeypatch.setattr(threads, "_configured", True)
    monkeypatch.setattr(threads, "usable_cores", lambda: torch.get_num_threads())
    threads.configure_once()
    assert applied == [None]  # a command configured it already
