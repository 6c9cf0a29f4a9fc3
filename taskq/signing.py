"""HMAC signatures over a task's path and arguments, so a row forged in the database cannot run code."""

from __future__ import annotations

import json
from typing import Any

from django.core import signing

SALT = "taskq.task"


def _normalise(value: Any) -> Any:
    # PostgreSQL's jsonb rewrites 1e20 as 100000000000000000000, which reads back as an
    # int, so integral floats are signed as ints to survive the round trip.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def _payload(path: str, args: Any, kwargs: Any) -> str:
    return json.dumps([path, _normalise(args), _normalise(kwargs)], sort_keys=True, separators=(",", ":"))


def sign(path: str, args: Any, kwargs: Any) -> str:
    """Return the signature of a task's path and arguments under SECRET_KEY."""
    return signing.Signer(salt=SALT).signature(_payload(path, args, kwargs))


def verify(path: str, args: Any, kwargs: Any, signature: str) -> bool:
    """Check a signature against SECRET_KEY and every key in SECRET_KEY_FALLBACKS."""
    signer = signing.Signer(salt=SALT)
    try:
        signer.unsign(f"{_payload(path, args, kwargs)}{signer.sep}{signature}")
    except signing.BadSignature:
        return False
    return True
