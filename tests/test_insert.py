"""enqueue()'s cached INSERT: one statement that stores exactly what save() would have."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from taskq import options
from taskq.models import Task
from taskq.statements import insert_row
from tests.testapp import tasks


def test_enqueue_is_one_insert_whose_row_reads_back_as_the_object(db: None) -> None:
    with CaptureQueriesContext(connection) as queries:
        task = options(queue="mail", priority=3, delay=60).enqueue(tasks.echo, 1, "two", flag={"x": [1]})
    assert len(queries.captured_queries) == 1
    assert queries.captured_queries[0]["sql"].upper().startswith("INSERT")
    assert task.pk is not None
    assert not task._state.adding
    assert task._state.db == "default"
    stored = Task.objects.get(pk=task.pk)
    assert model_to_dict(stored) == model_to_dict(task)
    assert (stored.args, stored.kwargs, stored.queue, stored.priority) == (
        [1, "two"],
        {"flag": {"x": [1]}},
        "mail",
        3,
    )
    assert stored.run_after == task.run_after
    assert stored.enqueued_at == task.enqueued_at


def test_insert_row_stores_the_same_columns_as_save(db: None) -> None:
    now = timezone.now()
    shape = {"path": "tests.testapp.tasks.add", "args": [1, 2], "kwargs": {}, "signature": "s" * 64}
    saved = Task(**shape, run_after=now + timedelta(seconds=5), enqueued_at=now)
    saved.save(force_insert=True)
    inserted = Task(**shape, run_after=now + timedelta(seconds=5), enqueued_at=now)
    insert_row(inserted, "default")
    assert inserted.pk == saved.pk + 1
    a, b = model_to_dict(Task.objects.get(pk=saved.pk)), model_to_dict(Task.objects.get(pk=inserted.pk))
    assert {k: v for k, v in a.items() if k != "id"} == {k: v for k, v in b.items() if k != "id"}
