"""A cancelled job: SIGINT, then SIGTERM 7.5 s later, then SIGKILL 2.5 s after that (GitHub Docs, "Canceling a
workflow"; `docker run` forwards them to the container's PID 1, this process, which ignores any signal it has
no handler for). The first raises Cancelled in the main thread, wherever it waits; the rollback then stops
the run with short requests, and later signals are ignored (the runner's kill at 10 s is the backstop)."""

from __future__ import annotations

import signal
import sys
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
# A cancellation not handled this long after it was raised was dropped on its way: raised again (SIGALRM).
RAISE_AGAIN = 0.25
AGAIN = getattr(signal, "SIGALRM", None)  # POSIX
HANDLED = (AGAIN, *SIGNALS) if AGAIN else SIGNALS  # the timer's first: it is armed by the others' handler


class Cancellation:
    """The handlers, installed by the entry point (never at import)."""

    def __init__(self) -> None:
        self.cancelled: Cancelled | None = None
        self.finished = False
        self._previous_hook = sys.unraisablehook

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():  # the only thread that may set them
            for sig in HANDLED:
                signal.signal(sig, self._on_signal)
            self._previous_hook = sys.unraisablehook
            sys.unraisablehook = self._on_unraisable

    def finish(self) -> None:
        """From here on a signal changes nothing; the hook and the cancellation's frames are let go."""
        self.finished = True
        if sys.unraisablehook == self._on_unraisable:
            sys.unraisablehook = self._previous_hook
        if self.cancelled is not None:  # the timer is ours
            _raise_again_in(0)
            self.cancelled.__traceback__ = None

    def _on_signal(self, signum: int, _frame: Any) -> None:
        """A signal may land while the collector runs a finalizer (http.client closing a response, say),
        where Python drops what it raises, often silently: the run would go on, into a request that may hang
        until its read timeout (20 s, past the runner's kill). So until the cancellation is handled, it is
        raised again every RAISE_AGAIN s; the timer's signal interrupts the main thread's wait."""
        cancelled = self.cancelled
        if cancelled is None:
            if self.finished or signum == AGAIN:
                return  # after the run (it changes nothing), or a timer not ours
            cancelled = self.cancelled = Cancelled(signal.Signals(signum).name, time.monotonic() + ROLLBACK)
            _raise_again_in(RAISE_AGAIN)
        elif self.finished or cancelled.handled:
            _raise_again_in(0)  # our timer: nothing left to raise
            return
        raise cancelled.with_traceback(None)

    def _on_unraisable(self, unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Cancelled):  # that one is raised again: not a crash
            self._previous_hook(unraisable)


def _raise_again_in(seconds: float) -> None:
    """Every `seconds` from now, SIGALRM (0: never)."""
    if AGAIN:
        signal.setitimer(signal.ITIMER_REAL, seconds, seconds)


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Threads started inside never take the runner's signals or the timer's (a thread starts with the
    signal mask of the thread that starts it), which are left to interrupt the main thread's waits."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: Python runs handlers in the main thread only
        yield
        return
    # Read first: the call that blocks may raise (a pending signal's handler runs as it returns).
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def workers(count: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool whose threads never take the signals, and which is not waited for when the run stops
    with an exception (a worker blocked on a hung request must not hold up the rollback)."""
    pool = ThreadPoolExecutor(max_workers=count)
    submit = pool.submit

    def masked(*args: Any, **kwargs: Any) -> Any:
        with signals_blocked():  # submit starts the threads
            return submit(*args, **kwargs)

    pool.submit = masked  # type: ignore[method-assign]
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
