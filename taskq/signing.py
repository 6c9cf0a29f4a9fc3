"""HMAC signatures over a task's path, arguments and uid: a row forged or copied in the database won't run."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.core import signing

SALT = "taskq.task"


def _normalise(value: Any) -> Any:
    # PostgreSQL's jsonb keeps numbers as decimals: 1e23 comes back as the int
    # 100000000000000000000000 and 123.0 as the float 123.0. Signing every integral float as
    # the int its shortest repr spells (not int(1e23) == 99999999999999991611392) gives the
    # same payload for what was enqueued and for what any backend gives back.
    if isinstance(value, float) and value.is_integer():
        return int(Decimal(repr(value)))
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def _payload(path: str, args: Any, kwargs: Any, uid: str | None) -> str:
    call = [path, _normalise(args), _normalise(kwargs)]
    # Rows written before uids existed have none; they keep their old three-part payload,
    # so a copy of such a row still verifies (see the docs on upgrading).
    if uid is not None:
        call.append(uid)
    return json.dumps(call, sort_keys=True, separators=(",", ":"))


def sign(path: str, args: Any, kwargs: Any, uid: str | None) -> str:
    """Return the signature of a task's path, arguments and uid under SECRET_KEY."""
    return signing.Signer(salt=SALT).signature(_payload(path, args, kwargs, uid))


def verify(path: str, args: Any, kwargs: Any, uid: str | None, signature: str) -> bool:
    """Check a signature against SECRET_KEY and every key in SECRET_KEY_FALLBACKS."""
    signer = signing.Signer(salt=SALT)
    try:
        signer.unsign(f"{_payload(path, args, kwargs, uid)}{signer.sep}{signature}")
    except signing.BadSignature:
        return False
    return True
