"""After SECRET_KEY rotation, Retry and Run again in the admin re-sign the tasks taskq refused."""

from __future__ import annotations

from typing import Any

import pytest

from taskq import enqueue, signing
from taskq.models import Status, Task
from taskq.testing import run_due
from tests.test_admin import act, login
from tests.testapp import tasks
from tests.testapp.models import Item

pytestmark = pytest.mark.django_db

RESIGNED = "Re-signed 1 task with the current SECRET_KEY"


def refused_after_rotation(settings: Any, name: str) -> Task:
    """A task enqueued under the old key, then refused by run_due() under a new one."""
    task = enqueue(tasks.create_item, name)
    settings.SECRET_KEY = "the-rotated-key"
    [ran] = run_due()
    assert ran.status == Status.FAILED
    assert ran.error.startswith("BadTaskSignature")
    return Task.objects.get(pk=task.pk)


def verifies(task: Task) -> bool:
    return signing.verify(task.path, task.args, task.kwargs, task.uid, task.signature)


def test_retry_re_signs_a_task_refused_after_key_rotation(settings: Any) -> None:
    refused = refused_after_rotation(settings, "rotated")
    html = act(login("view_task", "retry_task"), "retry", refused)
    assert RESIGNED in html
    row = Task.objects.get(pk=refused.pk)
    assert (row.status, row.uid) == (Status.QUEUED, refused.uid)
    assert verifies(row)
    assert [t.status for t in run_due()] == [Status.SUCCEEDED]
    assert list(Item.objects.values_list("name", flat=True)) == ["rotated"]


def test_run_again_re_signs_a_copy_with_a_new_uid(settings: Any) -> None:
    refused = refused_after_rotation(settings, "copied")
    html = act(login("view_task", "retry_task"), "run_again", refused)
    assert RESIGNED in html
    copy = Task.objects.exclude(pk=refused.pk).get()
    assert copy.uid != refused.uid
    assert verifies(copy)
    assert not verifies(Task.objects.get(pk=refused.pk))
    assert [t.pk for t in run_due()] == [copy.pk]
    assert list(Item.objects.values_list("name", flat=True)) == ["copied"]


def test_retry_gives_a_row_from_before_uids_a_uid_when_re_signing(settings: Any) -> None:
    refused = refused_after_rotation(settings, "old row")
    Task.objects.filter(pk=refused.pk).update(uid=None)
    assert RESIGNED in act(login(superuser=True), "retry", refused)
    row = Task.objects.get(pk=refused.pk)
    assert row.uid
    assert verifies(row)


def test_a_refused_task_that_names_no_runnable_function_is_not_re_signed(settings: Any) -> None:
    refused = refused_after_rotation(settings, "forged")
    Task.objects.filter(pk=refused.pk).update(path="os.system", args=["echo pwned"])
    client = login(superuser=True)
    html = act(client, "run_again", refused)
    assert "was not re-signed" in html
    assert "Re-signed" not in html
    copy = Task.objects.exclude(pk=refused.pk).get()
    assert not verifies(copy)
    html = act(client, "retry", refused)
    assert "was not re-signed" in html
    assert not verifies(Task.objects.get(pk=refused.pk))


def test_only_tasks_refused_for_their_signature_are_re_signed(settings: Any) -> None:
    # A row edited in the database behind taskq's back, never refused by a worker yet.
    forged = enqueue(tasks.create_item, "x")
    Task.objects.filter(pk=forged.pk).update(args=["edited"], status=Status.FAILED, error="ValueError: boom")
    client = login(superuser=True)
    for action in ("retry", "run_again"):
        assert "Re-signed" not in act(client, action, Task.objects.get(pk=forged.pk))
        Task.objects.filter(pk=forged.pk).update(status=Status.FAILED)
    assert not any(verifies(t) for t in Task.objects.all())


def test_run_again_signs_each_copy_of_a_good_task_under_its_own_uid() -> None:
    original = enqueue(tasks.create_item, "twice")
    run_due()
    client = login(superuser=True)
    act(client, "run_again", original)
    act(client, "run_again", original)
    copies = list(Task.objects.exclude(pk=original.pk))
    assert len({c.uid for c in copies} | {original.uid}) == 3
    assert all(verifies(c) for c in copies)
    assert [t.status for t in run_due()] == [Status.SUCCEEDED, Status.SUCCEEDED]
