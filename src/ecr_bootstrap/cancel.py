"""A cancelled job: SIGINT, then SIGTERM 7.5 s later, then SIGKILL 2.5 s after that (GitHub Docs, "Canceling a
workflow"; `docker run` forwards them to the container's PID 1, this process, which ignores any signal it has
no handler for). The first raises Cancelled in the main thread, wherever it waits; the rollback then stops
the run with short requests, and later signals are ignored (the runner's kill at 10 s is the backstop)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from .errors import Cancelled

SIGNALS = (signal.SIGINT, signal.SIGTERM)
ROLLBACK = 5.0  # the whole rollback, from the first signal (the bound: 6 s; SIGKILL: 10 s)
ROLLBACK_REQUEST = 2.0  # one request of the rollback (connect and read each)


class Cancellation:
    """The handlers, installed by the entry point (never at import)."""

    def __init__(self) -> None:
        self.done = False  # signalled already (rolling back) or finished: later signals change nothing

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():  # the only thread that may set them
            for sig in SIGNALS:
                signal.signal(sig, self._on_signal)

    def finish(self) -> None:
        self.done = True

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if not self.done:
            self.done = True
            raise Cancelled(signal.Signals(signum).name, time.monotonic() + ROLLBACK)


@contextmanager
def workers(count: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool whose threads never take the signals, and which is not waited for when the run stops
    with an exception (a worker blocked on a hung request must not hold up the rollback)."""
    pool = ThreadPoolExecutor(max_workers=count)
    if hasattr(signal, "pthread_sigmask"):  # POSIX; elsewhere Python runs handlers in the main thread only
        # The signals are left to interrupt the main thread's wait: a thread starts with the mask of the
        # thread that starts it (submit starts them).
        submit = pool.submit

        def masked(*args: Any, **kwargs: Any) -> Any:
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            try:
                return submit(*args, **kwargs)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)

        pool.submit = masked  # type: ignore[method-assign]
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
