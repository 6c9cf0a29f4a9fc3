"""Fixtures that serve the demo site in the test process, under tests/settings.py.

The demo's app and URLs are added with override_settings, and its tasks call the fake API
through the live server over real HTTP. Import the fixtures into a test module to use them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
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
    # As demo_site/settings.py: recheck_link is a Django @task that taskq's backend runs.
    settings.TASKS = {
        "default": {"BACKEND": "taskq.backends.TaskqBackend", "OPTIONS": {"max_attempts": 3, "timeout": 60}}
    }
    return settings


@pytest.fixture
def demo_live(demo_app: Settings, live_server: LiveServer, transactional_db: None) -> str:
    """The demo site on the live server, calling its own fake API; returns its base URL."""
    demo_app.THIRD_PARTY_API_URL = f"{live_server.url}/fake-api/"
    return live_server.url


@pytest.fixture
def demo_site(demo_live: str, make_pool: Callable[..., Pool]) -> str:
    """The live demo site with a real pool running its tasks; returns its base URL."""
    make_pool(workers=2)
    return demo_live


class StubAPI:
    """A third-party API on a free port: the test picks its answer, and can hold it back."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"{}"
        self.called = threading.Event()
        self.hang = threading.Event()
        self.release = threading.Event()
        self.paths: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.paths.append(self.path)
                stub.called.set()
                if stub.hang.is_set():
                    stub.release.wait(10)
                try:
                    self.send_response(stub.status)
                    self.send_header("Content-Length", str(len(stub.body)))
                    self.end_headers()
                    self.wfile.write(stub.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting, as the timeout tests intend

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), name="stub-api", daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)
