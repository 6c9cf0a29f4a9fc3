# syntax=docker/dockerfile:1
# The demo site, with taskq's pool running inside gunicorn's worker processes.
#   docker build -t taskq-demo .
#   docker run -p 8000:8000 --stop-timeout 45 -e SECRET_KEY=... -e DATABASE_URL=postgres://... taskq-demo
# tests/test_demo_smoke.py runs the same steps (its manage.py RUN lines, ENTRYPOINT and CMD) without Docker.

# Build stage: mysqlclient compiles against the MariaDB headers, which the final image does not need.
FROM python:3.11.13-slim-bookworm AS build
# Debian's security updates replace exact versions, so apt packages are left unpinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libmariadb-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /build/requirements.txt
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r /build/requirements.txt

FROM python:3.11.13-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000 \
    DATABASE_URL=sqlite:////app/data/db.sqlite3
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app

# The pinned requirements come first, so this layer is rebuilt only when they change.
COPY requirements.txt .
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels -r requirements.txt \
    && rm -rf /wheels

COPY . .
# Hashed, gzipped static files for whitenoise; the key only lets Django start and signs nothing.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput
# The code stays root-owned and read-only to the app; only the SQLite directory is its own.
RUN mkdir -p /app/data && chown app:app /app/data
# Numeric, so orchestrators can check that the container does not run as root.
USER 10001:10001

EXPOSE 8000
# Exits non-zero when due tasks have waited over 5 minutes or tasks are queued with no live pool.
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["python", "manage.py", "taskq_status", "--max-lag", "300"]
# SIGTERM makes gunicorn stop gracefully: workers finish their requests, then each stops its
# taskq pool (deploy/gunicorn.conf.py, worker_exit). SIGINT and SIGQUIT would stop it at once.
# Give it time: docker stop --time 45, or stop_grace_period in compose (the default is 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/deploy/docker-entrypoint.sh"]
# Exec form, so gunicorn (exec'd by the entrypoint) is PID 1 and receives the stop signal
# itself; a shell-form CMD would put /bin/sh in between, which does not pass it on.
CMD ["gunicorn", "--config", "deploy/gunicorn.conf.py"]
