"""A first key's ECR proof, run beside the GitHub writes (rotate.py): a thread asks ECR for a registry token
with the new key while the targets are written; the run joins it before the commit."""

from __future__ import annotations

import signal
import threading
from typing import Any

from ..aws import AwsClients, ecr
from ..cancel import SIGNALS
from ..errors import AwsError
from .journal import KeyCreated


class Proof:
    """Started when made. A daemon thread: a cancelled or failed run abandons it (its rollback does not wait
    for ECR), and it never takes the runner's signals, which stay with the run's own thread."""

    def __init__(self, aws: AwsClients, key: KeyCreated, seconds: float) -> None:
        client = ecr.key_client(aws, key.key_id, key.secret)  # here: a botocore session is not thread-safe
        self.tries = 0
        self.error: Exception | None = None
        self._thread = threading.Thread(
            target=self._run, args=(client, key.key_id, seconds), name="ecr-proof", daemon=True
        )
        if hasattr(signal, "pthread_sigmask"):  # POSIX: a thread starts with its starter's signal mask
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            try:
                self._thread.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        else:
            self._thread.start()

    def _run(self, client: Any, key_id: str, seconds: float) -> None:
        try:
            self.tries = ecr.wait_until_authorized(client, key_id, seconds)
        except Exception as exc:  # noqa: BLE001 - result() raises it in the run's thread
            self.error = exc

    def result(self, timeout: float) -> int:
        """Waits for the proof at most `timeout` seconds (a signal still interrupts the wait); the number of
        tries, or what the proof raised (an AwsError when ECR never gave the key a token, or it did not
        finish in time)."""
        self._thread.join(max(0.0, timeout))
        if self._thread.is_alive():
            raise AwsError("ECR had not answered the proof before this run's lease ran out", code="timeout")
        if self.error is not None:
            raise self.error
        return self.tries
