from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction

from taskq import enqueue, signing
from taskq.models import Status, Task
from taskq.testing import run_due
from tests.testapp import tasks
from tests.testapp.models import Item

UID = "0123456789abcdef0123456789abcdef"


def test_signature_round_trip_and_tamper() -> None:
    sig = signing.sign("a.b", [1, 2.5, {"k": [True, None]}], {"x": "y"}, UID)
    assert signing.verify("a.b", [1, 2.5, {"k": [True, None]}], {"x": "y"}, UID, sig)
    assert not signing.verify("a.c", [1, 2.5, {"k": [True, None]}], {"x": "y"}, UID, sig)
    assert not signing.verify("a.b", [1, 2.5, {"k": [False, None]}], {"x": "y"}, UID, sig)
    assert not signing.verify("a.b", [1, 2.5, {"k": [True, None]}], {"x": "z"}, UID, sig)
    assert not signing.verify("a.b", [], {}, UID, "garbage")


def test_the_uid_is_signed() -> None:
    sig = signing.sign("a.b", [1], {}, UID)
    assert not signing.verify("a.b", [1], {}, "another-uid", sig)
    assert not signing.verify("a.b", [1], {}, None, sig)


def test_rows_without_a_uid_verify_the_payload_signed_before_uids() -> None:
    sig = signing.sign("a.b", [1], {}, None)
    assert signing.verify("a.b", [1], {}, None, sig)
    assert not signing.verify("a.b", [1], {}, UID, sig)


def test_integral_floats_survive_jsonb_normalisation() -> None:
    sig = signing.sign("a.b", [1e20, 2.0, 1e23, float(2**60)], {}, UID)
    # What PostgreSQL's jsonb gives back for those floats.
    back = [100000000000000000000, 2, 10**23, 1152921504606847000]
    assert signing.verify("a.b", back, {}, UID, sig)


def test_key_order_does_not_matter() -> None:
    sig = signing.sign("a.b", [], {"a": 1, "b": 2}, UID)
    assert signing.verify("a.b", [], {"b": 2, "a": 1}, UID, sig)


def test_secret_key_fallbacks_are_honoured(settings: Any) -> None:
    sig = signing.sign("a.b", [], {}, UID)
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "a-brand-new-key"
    assert not signing.verify("a.b", [], {}, UID, sig)
    settings.SECRET_KEY_FALLBACKS = [old]
    assert signing.verify("a.b", [], {}, UID, sig)


@pytest.mark.parametrize("value", [[], {}, [[1, [2, [3]]]], {"nested": {"deep": 1.5}}])
def test_nested_values(value: Any) -> None:
    assert signing.verify("p", [value], {}, UID, signing.sign("p", [value], {}, UID))


def _copy(task: Task, uid: str | None) -> Task:
    return Task.objects.create(
        path=task.path, args=task.args, kwargs=task.kwargs, signature=task.signature, uid=uid
    )


@pytest.mark.django_db
def test_a_copied_row_cannot_be_inserted_with_the_same_uid() -> None:
    original = enqueue(tasks.create_item, "once")
    with pytest.raises(IntegrityError), transaction.atomic():
        _copy(Task.objects.get(pk=original.pk), original.uid)
    assert [t.status for t in run_due()] == [Status.SUCCEEDED]
    assert list(Item.objects.values_list("name", flat=True)) == ["once"]


@pytest.mark.django_db
@pytest.mark.parametrize("uid", ["another-uid", None])
def test_a_copied_row_with_another_uid_is_refused_and_never_runs(uid: str | None) -> None:
    original = Task.objects.get(pk=enqueue(tasks.create_item, "once").pk)
    copy = _copy(original, uid)
    ran = {t.pk: t for t in run_due()}
    assert ran[original.pk].status == Status.SUCCEEDED
    assert ran[copy.pk].status == Status.FAILED
    assert ran[copy.pk].error.startswith("BadTaskSignature")
    assert list(Item.objects.values_list("name", flat=True)) == ["once"]


def test_a_copied_row_is_refused_by_a_pool(make_pool: Any) -> None:
    from tests.helpers import wait_until

    original = Task.objects.get(pk=enqueue(tasks.create_item, "pooled").pk)
    copy = _copy(original, "another-uid")
    make_pool(workers=2)
    wait_until(lambda: Task.objects.filter(status__in=[Status.SUCCEEDED, Status.FAILED]).count() == 2)
    assert Task.objects.get(pk=original.pk).status == Status.SUCCEEDED
    assert Task.objects.get(pk=copy.pk).error.startswith("BadTaskSignature")
    assert list(Item.objects.values_list("name", flat=True)) == ["pooled"]
