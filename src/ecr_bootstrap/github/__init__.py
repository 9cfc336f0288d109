"""GitHub Actions secrets and variables, one client per run. http.py makes every request the same way
(retries, redirects, pages, read-back of a write whose answer never came); limits.py says when a request
may go (rate limits, pacing, the retry policy); api.py holds the endpoints, and its GitHub class is the
client the rest of the action uses."""

from .api import GitHub, PublicKey, seal
from .http import uncertain
from .limits import CONTENT_LIMIT, WRITE_BURST, Pacer, RetryPolicy, rate_limit_wait

__all__ = [
    "CONTENT_LIMIT",
    "WRITE_BURST",
    "GitHub",
    "Pacer",
    "PublicKey",
    "RetryPolicy",
    "rate_limit_wait",
    "seal",
    "uncertain",
]
