"""Fixtures that serve the demo site in the test process, under tests/settings.py.

The demo's app and URLs are added with override_settings, and its tasks call the fake API
through the live server over real HTTP. Import the fixtures into a test module to use them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib import admin
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from taskq.pool import Pool


@pytest.fixture
def demo_app(settings: Settings) -> Settings:
    """Install the link checker and route to the demo's URLs, with a quiet, reliable fake API."""
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "demo_site.linkcheck"]
    settings.ROOT_URLCONF = "demo_site.urls"
    settings.FAKE_API_LATENCY = 0.0
    settings.FAKE_API_FAILURE_RATE = 0.0
    return settings


@pytest.fixture
def demo_site(demo_app: Settings, live_server: LiveServer, make_pool: Callable[..., Pool]) -> str:
    """The demo site on the live server, its tasks run by a real pool; returns its base URL."""
    demo_app.THIRD_PARTY_API_URL = f"{live_server.url}/fake-api/"
    make_pool(workers=2)
    return live_server.url


def task_admin_registered() -> bool:
    """Whether the Task changelist exists yet (taskq/admin.py comes with the operations work)."""
    from taskq.models import Task

    return admin.site.is_registered(Task)
