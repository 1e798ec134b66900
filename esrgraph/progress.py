"""Progress of long work: a bar on a terminal, and where output is not one (a log file, a batch job) a
line every few minutes saying how far it is, its pace and the time left."""

from __future__ import annotations

import logging
import time

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

# Seconds between progress lines where no bar is shown
PROGRESS_SECONDS = 300.0


class Progress:
    """``total`` units of work named ``unit``; ``show`` False: neither bar nor lines (another process's share)."""

    def __init__(self, total: int, desc: str, unit: str, show: bool = True, leave: bool = True, initial: int = 0):
        """``initial``: units done before (a resumed run's), not counted in the pace."""
        self.total, self.desc, self.unit = total, desc, unit
        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=leave, initial=initial, disable=None if show else True)
        self.lines = show and self.bar.disable  # tqdm's None turned the bar off: no terminal
        self.done = self.initial = initial
        self.start = self.last = time.perf_counter()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def update(self, n: int = 1, **postfix: str) -> None:
        """``n`` more units done; ``postfix``: figures shown beside (the bar's postfix, the line's tail)."""
        self.done += n
        self.bar.update(n)
        if postfix:
            self.bar.set_postfix(**postfix)
        now = time.perf_counter()
        if self.lines and now - self.last >= PROGRESS_SECONDS and self.initial < self.done < self.total:
            self.last = now
            log.info(self._line(now, postfix))

    def _line(self, now: float, postfix: dict[str, str]) -> str:
        seconds = (now - self.start) / (self.done - self.initial)
        pace = f"{seconds:.2f} s/{self.unit}" if seconds >= 1 else f"{1 / seconds:,.1f} {self.unit}/s"
        figures = "".join(f", {key} {value}" for key, value in postfix.items())
        left = seconds * (self.total - self.done) / 60
        return f"{self.desc}: {self.unit} {self.done:,} of {self.total:,}{figures}, {pace}, about {left:.0f} min left"
