"""Smoke test of the Docker image's steps, without Docker: its manage.py RUN lines, then its
ENTRYPOINT and CMD (migrate, then gunicorn with deploy/gunicorn.conf.py), against a database
of its own on the suite's backend.

The server runs from a virtualenv that has nothing but requirements.txt installed, as in the
image, so a runtime dependency that only the dev tools bring in is caught. It is built on the
first run (about half a minute with pip's cache) and kept in the temp directory, one per
requirements.txt and Python version. TASKQ_SMOKE_VENV=current runs the server from the
interpreter running the tests instead (the project's .venv), for a quick loop.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import venv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, OpenerDirector, Request, build_opener

import environ
import pytest

from tests.browser.site import StubAPI
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="gunicorn runs only on Unix")


@dataclass
class Image:
    """The parts of the Dockerfile that the smoke test replays."""

    workdir: str = "/"
    manage_runs: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        """ENTRYPOINT + CMD, with paths in the image's WORKDIR mapped onto this checkout."""
        prefix = self.workdir.rstrip("/") + "/"
        return [
            str(REPO / arg[len(prefix) :]) if arg.startswith(prefix) else arg
            for arg in self.entrypoint + self.cmd
        ]


def read_dockerfile() -> Image:
    """Parse the final stage of the Dockerfile, joining continued lines."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    image = Image()
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if instruction == "FROM":
            image = Image()  # only the last stage is the image that runs
        elif instruction == "WORKDIR":
            image.workdir = rest
        elif instruction == "RUN" and "manage.py" in rest:
            image.manage_runs.append(rest)
        elif instruction in ("ENTRYPOINT", "CMD"):
            setattr(image, instruction.lower(), json.loads(rest))  # exec form is JSON
        elif instruction == "HEALTHCHECK" and " CMD " in f" {rest}":
            image.healthcheck = json.loads(f" {rest}".split(" CMD ", 1)[1])
    return image


class ServerDatabase:
    """A database of the suite's backend, made for the server and dropped after it."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        config = environ.Env.db_url_config(url)
        self.engine = config["ENGINE"].rsplit(".", 1)[-1]
        self.config = config
        if self.engine == "sqlite3":
            self.name = str(tmp_path / "smoke.sqlite3")
            self.url = f"sqlite:///{self.name}"
        else:
            self.name = f"{config['NAME']}_smoke"
            scheme = "postgres" if self.engine == "postgresql" else "mysql"
            auth = config["USER"] + (f":{config['PASSWORD']}" if config["PASSWORD"] else "")
            self.url = f"{scheme}://{auth}@{config['HOST']}:{config['PORT']}/{self.name}"

    def _connect(self, database: str | None) -> Any:
        c = self.config
        if self.engine == "sqlite3":
            return sqlite3.connect(self.name)
        if self.engine == "postgresql":
            import psycopg

            return psycopg.connect(
                host=c["HOST"], port=c["PORT"], user=c["USER"], password=c["PASSWORD"] or None,
                dbname=database or "postgres", autocommit=True,
            )  # fmt: skip
        import MySQLdb

        kwargs = {"db": database} if database else {}
        return MySQLdb.connect(
            host=c["HOST"], port=int(c["PORT"]), user=c["USER"], passwd=c["PASSWORD"], **kwargs
        )

    def execute(self, sql: str, database: str | None = None) -> list[tuple[Any, ...]]:
        """Run one statement on a short-lived connection and return its rows."""
        conn = self._connect(database)
        try:
            cursor = conn.cursor()
            cursor.execute(sql)
            rows = list(cursor.fetchall()) if cursor.description else []
            conn.commit()
            return rows
        finally:
            conn.close()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a query on the server's database."""
        return self.execute(sql, None if self.engine == "sqlite3" else self.name)

    def create(self) -> None:
        if self.engine != "sqlite3":
            self.drop(if_exists=True)
            self.execute(f"CREATE DATABASE {self.name}")

    def drop(self, if_exists: bool = False) -> None:
        # No FORCE: dropping fails while any session is still connected.
        if self.engine != "sqlite3":
            self.execute(f"DROP DATABASE {'IF EXISTS ' if if_exists else ''}{self.name}")

    def sessions(self) -> int | None:
        """Sessions connected to the server's database, or None on SQLite."""
        if self.engine == "postgresql":
            sql = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{self.name}'"
        elif self.engine == "mysql":
            sql = f"SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = '{self.name}'"
        else:
            return None
        return int(self.execute(sql)[0][0])


@pytest.fixture
def database(tmp_path: Path) -> Iterator[ServerDatabase]:
    url = os.environ.get("DATABASE_URL") or "sqlite:///unused"
    db = ServerDatabase(url, tmp_path)
    db.create()
    yield db
    db.drop()


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    """Where the server's python and gunicorn come from."""
    if os.environ.get("TASKQ_SMOKE_VENV") == "current":
        here = Path(sys.executable).parent
        if not (here / "gunicorn").exists():
            pytest.skip(f"gunicorn is not installed in {here} (pip install -r requirements.txt)")
        return here
    return runtime_venv() / "bin"


def runtime_venv() -> Path:
    """A virtualenv with only requirements.txt installed, built once per requirements and Python."""
    key = hashlib.sha256((REPO / "requirements.txt").read_bytes() + sys.version.encode()).hexdigest()[:16]
    home = Path(tempfile.gettempdir()) / f"taskq-smoke-venv-{key}"
    done = home / ".complete"
    with (Path(tempfile.gettempdir()) / f"taskq-smoke-venv-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building it right now
        if not done.exists():
            shutil.rmtree(home, ignore_errors=True)  # a build that was cut short
            venv.create(home, with_pip=True)
            pip = [str(home / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            subprocess.run([*pip, "-r", str(REPO / "requirements.txt")], check=True, timeout=900)
            done.touch()
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """A tiny browser: cookies, redirects, and the CSRF token of the form it posts."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener: OpenerDirector = build_opener(HTTPCookieProcessor(CookieJar()))

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes, str]:
        with self.opener.open(Request(self.base + path, headers=headers), timeout=10) as response:
            return response.status, dict(response.headers), response.read(), response.geturl()

    def post_form(self, path: str, data: dict[str, str]) -> str:
        """Submit the form on ``path`` and return the URL it redirects to."""
        _, _, page, _ = self.get(path)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, "the form has no CSRF token"
        body = urlencode({**data, "csrfmiddlewaretoken": token[1].decode()}).encode()
        with self.opener.open(Request(self.base + path, data=body), timeout=10) as response:
            return str(response.geturl())

    def json(self, path: str) -> dict[str, Any]:
        _, _, body, _ = self.get(path)
        data: dict[str, Any] = json.loads(body)
        return data


def server_env(bin_dir: Path, db: ServerDatabase, port: int, static_root: Path) -> dict[str, str]:
    """The container's environment: demo settings from variables only, DEBUG off."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        # Not the suite's settings module, database or coverage hooks.
        if not k.startswith(("DJANGO_", "COV_CORE_", "COVERAGE_", "TASKQ_", "PYTEST_"))
        and k not in ("DATABASE_URL", "VIRTUAL_ENV")
    }
    return {
        **inherited,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "DJANGO_SETTINGS_MODULE": "demo_site.settings",
        "DJANGO_ENV_FILE": os.devnull,  # never a developer's .env
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": db.url,
        "PORT": str(port),
        "STATIC_ROOT": str(static_root),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "TASKQ_WORKERS": "2",
        "TASKQ_SHUTDOWN_GRACE": "5",
        "FAKE_API_FAILURE_RATE": "0",
    }


@pytest.fixture(scope="module")
def static_root(bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the Dockerfile's manage.py RUN lines (collectstatic) once for the module."""
    image = read_dockerfile()
    assert image.manage_runs, "the Dockerfile has no manage.py RUN step (collectstatic)"
    assert image.entrypoint, "the Dockerfile has no exec-form ENTRYPOINT"
    assert image.cmd, "the Dockerfile has no exec-form CMD"
    root = tmp_path_factory.mktemp("static")
    db = ServerDatabase("sqlite:///unused", root)  # build steps need no database
    env = server_env(bin_dir, db, 0, root)
    for step in image.manage_runs:
        subprocess.run(["sh", "-c", step], cwd=REPO, env=env, check=True, timeout=180)
    assert (root / "staticfiles.json").exists(), "collectstatic wrote no manifest"
    return root


class Server:
    """The image's ENTRYPOINT + CMD as a subprocess: migrate, then gunicorn."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.image = read_dockerfile()
        self.log_path = log_path
        self.client = Client(f"http://127.0.0.1:{env['PORT']}")
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.image.command(), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self._up, timeout=90, interval=0.2)

    def _up(self) -> bool:
        assert self.process.poll() is None, f"gunicorn exited during start-up:\n{self.log()}"
        try:
            return self.client.get("/")[0] == 200
        except (URLError, ConnectionError):
            return False

    def log(self) -> str:
        return self.log_path.read_text()

    def worker_pids(self) -> set[int]:
        return {int(p) for p in re.findall(r"Booting worker with pid: (\d+)", self.log())}

    def submit(self, link: str, latency: float) -> int:
        """Submit the form for one link and return the job's id from the redirect."""
        url = self.client.post_form("/", {"urls": link, "latency": str(latency), "failure_rate": "0"})
        found = re.search(r"/jobs/(\d+)/$", url)
        assert found, f"the form redirected to {url}"
        return int(found[1])

    def job(self, job_id: int) -> dict[str, Any]:
        return self.client.json(f"/jobs/{job_id}.json")

    def terminate(self) -> int:
        """SIGTERM, as docker stop sends it, and the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture
def start(
    bin_dir: Path, static_root: Path, database: ServerDatabase, tmp_path: Path
) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(**env: str) -> Server:
        base = server_env(bin_dir, database, free_port(), static_root)
        server = Server({**base, **env}, tmp_path / f"gunicorn-{len(servers)}.log")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.terminate()
        print(server.log())  # shown by pytest only if the test fails


def assert_stopped_cleanly(server: Server, returncode: int, db: ServerDatabase) -> None:
    output = server.log()
    assert returncode == 0
    assert "Shutting down: Master" in output
    # Each worker started its pool and stopped it; none had to give up on a task.
    assert output.count("event=started workers=2") == output.count("event=stopped") == 2
    assert "event=stop_timeout" not in output
    assert "event=unregister_failed" not in output
    # Each pool deleted its own row as it stopped; show any survivor to say whose it is.
    assert db.query("SELECT name, started_at, last_heartbeat FROM taskq_worker") == []
    if db.sessions() is not None:
        wait_until(lambda: db.sessions() == 0, timeout=10)


def test_image_serves_the_site_runs_jobs_in_workers_and_stops_on_sigterm(
    start: Callable[..., Server], database: ServerDatabase
) -> None:
    server = start()  # the image's defaults: the fake API served by the site itself
    client = server.client

    # Static files come from whitenoise with DEBUG off: hashed, compressed, cached for ever.
    _, _, login, _ = client.get("/admin/login/")
    css = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login)
    assert css, "the admin's login page links no hashed base.css"
    status, headers, body, _ = client.get(css[1].decode(), **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    assert headers.get("Content-Encoding") == "gzip"
    assert "immutable" in headers.get("Cache-Control", "")
    assert b".module" in gzip.decompress(body)
    _, _, home, _ = client.get("/")
    assert b'id="check-form"' in home
    assert re.search(rb"/static/linkcheck/site\.[0-9a-f]{12}\.css", home)

    # The job runs in one of gunicorn's workers, never in the master.
    job_id = server.submit("https://example.com/", latency=0.1)
    job = wait_until(lambda: (j := server.job(job_id))["finished"] and j, timeout=60)
    assert job["status"] == "succeeded", job
    assert job["result"]["http_status"] == 200
    worker_pid = int(job["worker"].split(":")[1])
    assert worker_pid in server.worker_pids()
    assert worker_pid != server.process.pid

    # The HEALTHCHECK, run as Docker would, inside the container's environment.
    if find_spec("taskq.management.commands.taskq_status") is not None:
        health = subprocess.run(
            server.image.healthcheck, cwd=REPO, env=server.env, capture_output=True, timeout=60
        )
        assert health.returncode == 0, health.stdout + health.stderr

    assert_stopped_cleanly(server, server.terminate(), database)


@pytest.fixture
def held_api() -> Iterator[StubAPI]:
    api = StubAPI()
    api.body = json.dumps({"http_status": 200, "response_ms": 1}).encode()
    api.hang.set()
    yield api
    api.close()


def test_sigterm_lets_a_running_task_finish_within_the_grace(
    start: Callable[..., Server], database: ServerDatabase, held_api: StubAPI
) -> None:
    server = start(THIRD_PARTY_API_URL=held_api.url)
    job_id = server.submit("https://example.org/", latency=0)
    assert held_api.called.wait(30), "the task never called the API"

    server.process.send_signal(signal.SIGTERM)
    # Both workers are on their way out, so worker_exit is stopping the pools; only
    # now does the API answer, and the task must still get to record its result.
    wait_until(lambda: server.log().count("Worker exiting") == 2, timeout=30)
    held_api.release.set()
    returncode = server.terminate()

    ((status, attempts),) = database.query(f"SELECT status, attempts FROM taskq_task WHERE id = {job_id}")
    assert (status, attempts) == ("succeeded", 1)
    assert_stopped_cleanly(server, returncode, database)


def test_the_image_on_postgresqls_connection_pool(
    start: Callable[..., Server], database: ServerDatabase
) -> None:
    if database.engine != "postgresql":
        pytest.skip("DATABASE_POOL_SIZE is psycopg's pool, for PostgreSQL only")
    # Per worker: 4 request threads + 2 pool threads + the dispatcher.
    server = start(DATABASE_POOL_SIZE="7")
    job_id = server.submit("https://example.com/", latency=0.1)
    job = wait_until(lambda: (j := server.job(job_id))["finished"] and j, timeout=60)
    assert job["status"] == "succeeded", job
    assert database.sessions()  # the pools keep connections open while the server runs
    assert_stopped_cleanly(server, server.terminate(), database)
