#!/bin/sh
# The image's entrypoint: apply migrations, then replace this shell with the command
# (gunicorn by default), so that the command is PID 1 and receives `docker stop`'s signal.
set -eu

# With several replicas, run migrations once as a release step and set MIGRATE_ON_START=0.
if [ "${MIGRATE_ON_START:-1}" = "1" ]; then
  python manage.py migrate --noinput
fi

exec "$@"
