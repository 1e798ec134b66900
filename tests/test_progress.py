"""Progress where no bar is shown: lines every PROGRESS_SECONDS with how far, the pace and the time left."""

import itertools
import logging

from esrgraph import progress as progress_module
from esrgraph.progress import Progress


def test_lines_say_how_far_the_pace_and_the_minutes_left(caplog, monkeypatch):
    clock = itertools.count(0.0, 120.0)  # every reading of the clock: two more minutes
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="esrgraph.progress"), Progress(10, "encoding", "text") as bar:
        for _ in range(10):
            bar.update(1, rate="x")
    lines = [r.getMessage() for r in caplog.records]
    # the start reads 0 min; updates read 2, 4, ... min; a line once 5 min passed since the last one
    assert lines == [
        "encoding: text 3 of 10, rate x, 120.00 s/text, about 14 min left",
        "encoding: text 6 of 10, rate x, 120.00 s/text, about 8 min left",
        "encoding: text 9 of 10, rate x, 120.00 s/text, about 2 min left",
    ]


def test_no_lines_for_work_shown_nowhere(caplog, monkeypatch):
    monkeypatch.setattr(progress_module, "PROGRESS_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="esrgraph.progress"), Progress(5, "ranking", "user", show=False) as bar:
        bar.update(2)
    assert caplog.records == []
