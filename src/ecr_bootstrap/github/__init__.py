"""GitHub Actions secrets and variables, one client per run: http.py makes every request the same way and
says when one may go, and api.py holds the endpoints (GitHub, the client the action uses)."""

from .api import GitHub, seal
from .http import CONTENT_LIMIT, WRITE_BURST, Pacer, rate_limit_wait

__all__ = ["CONTENT_LIMIT", "WRITE_BURST", "GitHub", "Pacer", "rate_limit_wait", "seal"]
