"""The queue dashboard page through Django's test client, wired here as TaskAdmin.get_urls() will wire it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import include, path
from django.utils import timezone

from taskq.dashboard_views import dashboard_urls
from taskq.models import Status, Task, Worker
from taskq.rollup import roll_up
from tests.rows import make
from tests.test_dashboard import ended, entry
from tests.testapp import tasks

urlpatterns = [
    path("admin/taskq/task/", include(dashboard_urls(admin.site))),
    path("admin/", admin.site.urls),
]
pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

DASHBOARD = "/admin/taskq/task/dashboard/"
EVIL = "evil.<script>alert(1)</script>"


def client_with(*perms: str) -> Client:
    user = User.objects.create_user("staff-" + "-".join(perms), is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="taskq", codename__in=perms))
    client = Client()
    client.force_login(user)
    return client


def busy_queue() -> None:
    """Tasks in every state over the last hours, a rollup of them, a pool and a backlog."""
    now = timezone.now()
    for minutes in (1, 2, 3, 70, 200):
        ended(Status.SUCCEEDED, now - timedelta(minutes=minutes))
        ended(Status.FAILED, now - timedelta(minutes=minutes), path=EVIL)
        ended(
            Status.SUCCEEDED,
            now - timedelta(minutes=minutes, seconds=-5),
            attempts=2,
            history=[entry("retried", now - timedelta(minutes=minutes)), entry("succeeded", now, 2)],
        )
    make(tasks.add, run_after=now - timedelta(minutes=5))
    make(tasks.add, status=Status.RUNNING, attempts=1, started_at=now, worker="web-1:42:cafe")
    Worker.objects.create(name="web-1:42:cafe", hostname="web-1", pid=42, threads=4)
    roll_up(now - timedelta(minutes=1), limit=300)


def test_anonymous_users_are_sent_to_log_in() -> None:
    response = Client().get(DASHBOARD)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_staff_without_view_task_are_refused() -> None:
    assert client_with().get(DASHBOARD).status_code == 403
    assert client_with("view_worker").get(DASHBOARD + "?fragment=1").status_code == 403


def test_every_chart_is_drawn_with_data_and_its_numbers() -> None:
    busy_queue()

    response = client_with("view_task").get(DASHBOARD)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]  # admin_view never caches
    html = response.content.decode()
    charts = re.findall(r'<svg class="taskq-chart".*?</svg>', html, re.S)
    assert len(charts) == 6  # throughput, and backlog due and lag, per minute and per hour
    for chart in charts[:2]:
        assert "<title>" in chart
        assert 'role="img"' in chart
        for kind in ("succeeded", "failed", "retried"):
            assert f'class="taskq-{kind}"' in chart, kind
    for chart in charts[2:]:
        assert "<polyline" in chart or "<circle" in chart
    assert html.count("<details") == 4
    assert "<h1>Queue dashboard</h1>" in html
    assert "taskq/dashboard.js" in html
    assert "taskq/dashboard.css" in html
    assert "web-1:42" in html
    assert "1 of 4" in html
    assert (
        'href="/admin/taskq/task/?path=evil.%3Cscript%3Ealert%281%29%3C/script%3E&amp;status__exact=failed"'
        in html
    )


def test_a_function_name_is_escaped_in_charts_tables_and_links() -> None:
    busy_queue()

    html = client_with("view_task").get(DASHBOARD).content.decode()

    assert "<script>alert" not in html
    assert "evil.&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_fragment_is_the_refreshed_part_alone() -> None:
    busy_queue()

    response = client_with("view_task").get(DASHBOARD + "?fragment=1")

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "<h1>" not in html
    assert html.count('<svg class="taskq-chart"') == 6


def test_an_empty_queue_shows_empty_charts_and_says_why() -> None:
    html = client_with("view_task").get(DASHBOARD).content.decode()

    assert html.count('<svg class="taskq-chart"') == 6
    assert "No pool has heartbeated" in html
    assert "No rollup yet" in html
    assert Task.objects.count() == 0
