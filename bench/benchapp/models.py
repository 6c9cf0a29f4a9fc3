"""What the benchmark's tasks write, and a twin of taskq's Task row for a bare-INSERT baseline."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone

from taskq.models import Task


class Item(models.Model):
    """One finished task: when it was enqueued, started and about to write (Unix seconds)."""

    n = models.IntegerField()
    t_enq = models.FloatField()
    t_start = models.FloatField()
    t_done = models.FloatField()

    objects: ClassVar[models.Manager[Item]] = models.Manager()

    def __str__(self) -> str:
        return f"item {self.n}"


class Twin(models.Model):
    """Columns and indexes like taskq's Task, so a bare create() is a fair yardstick for enqueue()."""

    path = models.CharField(max_length=255)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    signature = models.CharField(max_length=128)
    queue = models.CharField(max_length=64, default="default")
    priority = models.IntegerField(default=0)
    status = models.CharField(max_length=16, default="queued")
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    timeout = models.FloatField(null=True)
    run_after = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    lease_expires_at = models.DateTimeField(null=True)
    worker = models.CharField(max_length=255, blank=True)
    cancel_requested = models.BooleanField(default=False)
    result = models.JSONField(null=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    retried_by = models.CharField(max_length=255, blank=True)

    objects: ClassVar[models.Manager[Twin]] = models.Manager()

    class Meta:
        # Task's own indexes, renamed: every index is one more write for each INSERT.
        indexes = [
            models.Index(fields=index.fields, name=index.name.replace("taskq_", "twin_", 1))
            for index in Task._meta.indexes
        ]

    def __str__(self) -> str:
        return f"twin {self.pk}"
