"""gunicorn settings for the demo site (and a starting point for yours), read from the environment.

The image runs ``gunicorn --config deploy/gunicorn.conf.py``; docs/deployment.md explains each choice.
"""

from __future__ import annotations

import os
from typing import Any

wsgi_app = "demo_site.wsgi:application"
bind = [f"0.0.0.0:{os.environ.get('PORT', '8000')}"]

# Each worker process serves requests on its threads and runs its own taskq pool beside
# them. gthread keeps a request that waits on the database (or on the fake API, which this
# site serves itself) from blocking the whole worker.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))

# On SIGTERM a worker finishes its requests, then worker_exit below stops the pool, which
# waits up to TASKQ_SHUTDOWN_GRACE (10 s by default) for running tasks. The master kills
# workers that take longer than graceful_timeout, so keep it above that grace.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))

# The app is loaded in each worker, not in the master (preload_app = False, the default).
# With --preload, taskq still never runs tasks in the master: the pool starts per worker.

# gunicornc's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl),
# which a read-only home cannot hold and two servers of one user would share.
control_socket_disable = True

accesslog = "-"
errorlog = "-"


def post_worker_init(worker: Any) -> None:
    """Start this worker's pool now rather than at its first request, so a backlog drains at once."""
    from taskq import process
    from taskq.conf import settings

    # TASKQ_AUTOSTART=false leaves the tasks to `manage.py taskq_worker` processes.
    if settings.autostart is not False:
        process.start()


def worker_exit(server: Any, worker: Any) -> None:
    """Stop this worker's pool gracefully: unstarted tasks go back, running ones may finish."""
    from taskq import process

    process.stop()
