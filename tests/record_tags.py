"""Test-only shorthands for writing key record tags (the action itself always writes whole places)."""

from __future__ import annotations

from collections.abc import Iterable

from ecr_bootstrap.keys.record import holder_tags
from ecr_bootstrap.places import Place, from_scope
from tests.stand_ins.aws import tag_char_ok


def repo_scope(repository: str) -> str:
    """GitHub names are case-insensitive: one scope per GitHub repository whatever its spelling."""
    return "repo:" + repository.lower()


def holder_tag(place: Place | str, key_ids: Iterable[str], ref: int | None = None) -> dict[str, str]:
    """The first (usually only) tag of a holder entry."""
    return holder_tags(place if isinstance(place, Place) else from_scope(place), key_ids, ref)[0]


def valid_value(value: str) -> bool:
    """IAM's rule for a tag value, as the AWS stand-in holds moto to it: at most 256 characters of
    `[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]`."""
    return len(value) <= 256 and all(tag_char_ok(c) for c in value)


def valid_key(key: str) -> bool:
    """IAM's rule for a tag key: 1-128 characters of the value alphabet, not starting with aws:."""
    return 1 <= len(key) <= 128 and not key.startswith("aws:") and valid_value(key)
