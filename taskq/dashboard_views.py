"""The queue dashboard admin page: the figures of taskq.dashboard drawn as SVG charts and tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.safestring import SafeString

from taskq import svg
from taskq.dashboard import BacklogPoint, Bucket, Dashboard, Timing, build
from taskq.status import format_duration

REFRESH_SECONDS = 5
SUCCEEDED = ("succeeded", "succeeded", "#17743a")
FAILED = ("failed", "failed", "#b3261e")
RETRIED = ("retried", "retried", "#b06d00")
TEMPLATE = "admin/taskq/dashboard.html"
FRAGMENT = "admin/taskq/dashboard_fragment.html"


def dashboard_urls(admin_site: AdminSite) -> list[URLPattern]:
    """The dashboard's URL, named admin:taskq_task_dashboard, for TaskAdmin.get_urls() to put first."""
    return [
        path("dashboard/", admin_site.admin_view(dashboard_view(admin_site)), name="taskq_task_dashboard")
    ]


def dashboard_view(admin_site: AdminSite) -> Callable[[HttpRequest], HttpResponse]:
    """The view for ``admin_site``: the whole page, or with ?fragment=1 the part the script refreshes."""

    def view(request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("taskq.view_task"):
            raise PermissionDenied
        context = figures_context(build(timezone.now()))
        if request.GET.get("fragment"):
            return TemplateResponse(request, FRAGMENT, context)
        context.update(admin_site.each_context(request), title="Queue dashboard")
        return TemplateResponse(request, TEMPLATE, context)

    return view


def figures_context(board: Dashboard) -> dict[str, Any]:
    """The template's context: the figures, their charts, and the rows of their tables."""
    minute_labels = [_label(b.start, "%H:%M") for b in board.per_minute.buckets]
    hour_labels = [_label(b.start, "%d %b %H:%M") for b in board.per_hour.buckets]
    return {
        "board": board,
        "refresh_seconds": REFRESH_SECONDS,
        "lag_text": format_duration(board.lag),
        "throughput_minute_chart": _throughput_chart(
            "Attempts ended per minute over the last hour", minute_labels, board.per_minute.buckets
        ),
        "throughput_hour_chart": _throughput_chart(
            "Attempts ended per hour over the last 7 days", hour_labels, board.per_hour.buckets
        ),
        "throughput_minute_rows": _busy_rows(minute_labels, board.per_minute.buckets),
        "throughput_hour_rows": _busy_rows(hour_labels, board.per_hour.buckets),
        "backlog_minute_chart": _backlog_chart(
            "minute over the last hour", minute_labels, board.backlog_per_minute
        ),
        "backlog_hour_chart": _backlog_chart(
            "hour over the last 7 days", hour_labels, board.backlog_per_hour
        ),
        "backlog_minute_rows": _sampled_rows(minute_labels, board.backlog_per_minute),
        "backlog_hour_rows": _sampled_rows(hour_labels, board.backlog_per_hour),
        "timings_hour": [_timing_row(t) for t in board.timings_hour],
        "timings_day": [_timing_row(t) for t in board.timings_day],
        "slowest": [_timing_row(t) for t in board.slowest],
        "pools": [
            {"pool": p, "age": format_duration(p.heartbeat_age), "queues": ", ".join(p.queues or []) or "all"}
            for p in board.pools
        ],
    }


def _label(moment: datetime, fmt: str) -> str:
    return timezone.localtime(moment).strftime(fmt)


def _throughput_chart(title: str, labels: list[str], buckets: list[Bucket]) -> SafeString:
    series = [
        svg.Series(name, [getattr(b, attr) for b in buckets], css, colour)
        for (name, css, colour), attr in zip(
            (SUCCEEDED, FAILED, RETRIED), ("succeeded", "failed", "retried"), strict=True
        )
    ]
    return svg.bar_chart(title, labels, series)


def _backlog_chart(window: str, labels: list[str], points: list[BacklogPoint]) -> dict[str, SafeString]:
    return {
        "due": svg.line_chart(
            f"Due tasks, the most sampled in each {window}",
            labels,
            [svg.Series("due", [p.due for p in points], "due", "#1f5fbf")],
        ),
        "lag": svg.line_chart(
            f"Backlog lag in seconds, the most sampled in each {window}",
            labels,
            [svg.Series("lag", [p.lag for p in points], "lag", "#7a5a00")],
            unit=" s",
        ),
    }


def _busy_rows(labels: list[str], buckets: list[Bucket]) -> list[dict[str, Any]]:
    # The tables list only buckets where something happened; the chart shows the quiet ones.
    return [{"label": label, "bucket": b} for label, b in zip(labels, buckets, strict=True) if b.total]


def _sampled_rows(labels: list[str], points: list[BacklogPoint]) -> list[dict[str, Any]]:
    return [
        {"label": label, "due": p.due, "lag": format_duration(p.lag)}
        for label, p in zip(labels, points, strict=True)
        if p.due is not None
    ]


def _timing_row(t: Timing) -> dict[str, Any]:
    return {
        "timing": t,
        "wait_p50": format_duration(t.wait_p50),
        "wait_p95": format_duration(t.wait_p95),
        "run_p50": format_duration(t.run_p50),
        "run_p95": format_duration(t.run_p95),
    }
