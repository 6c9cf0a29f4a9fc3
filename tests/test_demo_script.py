"""scripts/demo run for real by bash, in a copy of the scripts with a stand-in virtualenv, so
only what the script itself does is exercised: the .env it writes on a first run."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="scripts/demo is a bash script")

# Stands in for the virtualenv's python: `-c` snippets run for real, manage.py is only recorded.
FAKE_PYTHON = f"""#!/bin/sh
if [ "$1" = "-c" ]; then exec {sys.executable} "$@"; fi
echo "$@" >> "$(dirname "$0")/../calls"
case "$*" in *shell*) echo True ;; esac
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A directory laid out like the repository, whose virtualenv counts as installed."""
    (tmp_path / "scripts").mkdir()
    for name in ("demo", "_env.sh"):
        shutil.copy2(REPO / "scripts" / name, tmp_path / "scripts" / name)
    (tmp_path / "requirements.txt").write_text("")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    # The same digest _env.sh computes (requirements files, then TASKQ_DJANGO), so nothing installs.
    digest = hashlib.sha256(b"\n").hexdigest()
    (tmp_path / ".venv" / ".installed-requirements.txt").write_text(digest + "\n")
    return tmp_path


def run_demo(checkout: Path, umask: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "TASKQ_VENV", "TASKQ_DJANGO")}
    return subprocess.run(
        ["bash", "-c", f"umask {umask} && exec scripts/demo 127.0.0.1:8765"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("umask", ["022", "000"])
def test_first_run_writes_a_dotenv_only_its_owner_can_read(checkout: Path, umask: str) -> None:
    result = run_demo(checkout, umask)
    assert result.returncode == 0, result.stderr
    assert "Wrote .env" in result.stdout
    dotenv = checkout / ".env"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    lines = dotenv.read_text().splitlines()
    assert lines[0] == "DEBUG=true"
    assert lines[1].startswith("SECRET_KEY=")
    assert len(lines[1]) > len("SECRET_KEY=") + 50
    # The rest of the script went on as before: migrate, then the server on the address given.
    calls = (checkout / ".venv" / "calls").read_text()
    assert "manage.py migrate --noinput" in calls
    assert calls.splitlines()[-1] == "manage.py runserver 127.0.0.1:8765"


def test_an_existing_dotenv_is_left_alone(checkout: Path) -> None:
    dotenv = checkout / ".env"
    dotenv.write_text("DEBUG=false\n")
    dotenv.chmod(0o640)
    assert run_demo(checkout, "022").returncode == 0
    assert dotenv.read_text() == "DEBUG=false\n"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o640
