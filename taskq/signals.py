"""Signals sent around a task's life. Each sends ``task=<Task>`` as its only keyword."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by enqueue() after the row is inserted (inside the caller's transaction).
task_enqueued = Signal()
# Sent in the worker thread just before the task's function is called.
task_started = Signal()
# Sent in the worker thread after the outcome is saved, whatever it was.
task_finished = Signal()
