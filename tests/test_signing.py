from __future__ import annotations

from typing import Any

import pytest

from taskq import signing


def test_signature_round_trip_and_tamper() -> None:
    sig = signing.sign("a.b", [1, 2.5, {"k": [True, None]}], {"x": "y"})
    assert signing.verify("a.b", [1, 2.5, {"k": [True, None]}], {"x": "y"}, sig)
    assert not signing.verify("a.c", [1, 2.5, {"k": [True, None]}], {"x": "y"}, sig)
    assert not signing.verify("a.b", [1, 2.5, {"k": [False, None]}], {"x": "y"}, sig)
    assert not signing.verify("a.b", [1, 2.5, {"k": [True, None]}], {"x": "z"}, sig)
    assert not signing.verify("a.b", [], {}, "garbage")


def test_integral_floats_survive_jsonb_normalisation() -> None:
    sig = signing.sign("a.b", [1e20, 2.0], {})
    assert signing.verify("a.b", [100000000000000000000, 2], {}, sig)


def test_key_order_does_not_matter() -> None:
    sig = signing.sign("a.b", [], {"a": 1, "b": 2})
    assert signing.verify("a.b", [], {"b": 2, "a": 1}, sig)


def test_secret_key_fallbacks_are_honoured(settings: Any) -> None:
    sig = signing.sign("a.b", [], {})
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "a-brand-new-key"
    assert not signing.verify("a.b", [], {}, sig)
    settings.SECRET_KEY_FALLBACKS = [old]
    assert signing.verify("a.b", [], {}, sig)


@pytest.mark.parametrize("value", [[], {}, [[1, [2, [3]]]], {"nested": {"deep": 1.5}}])
def test_nested_values(value: Any) -> None:
    assert signing.verify("p", [value], {}, signing.sign("p", [value], {}))
