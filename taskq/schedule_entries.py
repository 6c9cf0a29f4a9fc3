"""Schedule entries: parse and check TASKQ_SCHEDULE and @periodic, and compute each entry's ticks."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from cronsim import CronSim, CronSimError
from django.core.checks import CheckMessage, Error, register
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules, import_string

from taskq.conf import settings
from taskq.decorators import TaskDefaults
from taskq.exceptions import InvalidTask
from taskq.validation import clean_arguments, task_path

logger = logging.getLogger("taskq")

F = TypeVar("F", bound=Callable[..., Any])

UID_PREFIX = "schedule:"
TICK_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # fixed width, so uids of one schedule sort by tick
MAX_NAME = 150  # the uid (191 chars) also holds the prefix and the tick
OPTIONS = ("args", "kwargs", "queue", "priority", "max_attempts", "timeout")
KEYS = frozenset(("task", "cron", "every", *OPTIONS))
# A scheduler that wakes this late is jittery, not down: each such tick still fires.
LATE_GRACE = timedelta(seconds=5)
# How far a cron schedule's ticks are counted one by one; past it the count is a floor.
COUNT_LIMIT = 100_000

# Entries registered by @periodic, keyed by the function's dotted path.
registry: dict[str, dict[str, Any]] = {}


class ScheduleError(InvalidTask):
    """A schedule entry that cannot run; ``check_id`` names the system check that reports it."""

    def __init__(self, check_id: str, message: str) -> None:
        super().__init__(message)
        self.check_id = check_id


@dataclass(frozen=True)
class Entry:
    """One validated schedule entry: what to call, and when."""

    name: str
    path: str
    cron: str | None = None
    every: int | None = None  # whole seconds
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    defaults: TaskDefaults = field(default_factory=TaskDefaults)

    @property
    def spec(self) -> str:
        """The entry's timing as an operator reads it."""
        return f"cron {self.cron}" if self.cron else f"every {self.every}s"

    def uid(self, tick: datetime) -> str:
        """The Task.uid of this entry's firing at ``tick``: one row per tick, whoever inserts it."""
        return f"{UID_PREFIX}{self.name}:{tick.astimezone(UTC).strftime(TICK_FORMAT)}"

    def next_after(self, moment: datetime) -> datetime | None:
        """The first tick strictly after ``moment``; None if the crontab never matches again."""
        if self.every is not None:
            seconds = (int(moment.timestamp()) // self.every + 1) * self.every
            return datetime.fromtimestamp(seconds, UTC)
        return next(self._cron_ticks(moment), None)

    def ticks_between(self, after: datetime, until: datetime) -> tuple[datetime | None, int]:
        """The newest tick in (after, until] and how many ticks that range holds."""
        if self.every is not None:
            count = int(until.timestamp()) // self.every - int(after.timestamp()) // self.every
            newest = datetime.fromtimestamp(int(until.timestamp()) // self.every * self.every, UTC)
            return (newest if count > 0 else None), max(count, 0)
        latest: datetime | None = None
        count = 0
        for tick in self._cron_ticks(after):
            if tick > until:
                break
            latest, count = tick, count + 1
            if count >= COUNT_LIMIT:
                return self._newest_cron_tick(until), count
        return latest, count

    def _cron_ticks(self, after: datetime) -> Iterator[datetime]:
        assert self.cron is not None
        # Evaluated on the wall clock of TIME_ZONE, so "0 3 * * *" keeps to 03:00 across
        # DST changes; cronsim follows Debian's cron for the hour that is skipped or repeated.
        local = after.astimezone(timezone.get_default_timezone())
        for tick in CronSim(self.cron, local):
            yield tick.astimezone(UTC)

    def _newest_cron_tick(self, until: datetime) -> datetime | None:
        # Past the counting limit, look back in widening windows for the newest tick.
        for days in (1 / 24, 1, 31, 366, 366 * 5):
            newest = None
            for tick in self._cron_ticks(until - timedelta(days=days)):
                if tick > until:
                    break
                newest = tick
            if newest is not None:
                return newest
        return None


def _every_seconds(name: str, value: Any) -> int:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ScheduleError(
            "taskq.E025", f"schedule {name!r}: 'every' is {value!r}; give seconds (an int) or a timedelta."
        )
    if seconds < 1 or seconds != int(seconds):
        raise ScheduleError(
            "taskq.E025",
            f"schedule {name!r}: 'every' is {value!r}; it must be a whole number of seconds, at "
            "least 1: round it, or use 'cron' for calendar times.",
        )
    return int(seconds)


SYNTAX_CHECK_MOMENT = datetime(2000, 1, 1, tzinfo=UTC)


def _crontab(name: str, value: Any) -> str:
    if not isinstance(value, str) or len(value.split()) != 5:
        raise ScheduleError(
            "taskq.E024",
            f"schedule {name!r}: 'cron' is {value!r}; it must be a five-field crontab such as '0 3 * * *' "
            "(minute hour day-of-month month day-of-week).",
        )
    try:
        # Any aware moment checks the syntax; a fixed one reads no setting (TIME_ZONE), so
        # @periodic can check its crontab while its module imports.
        CronSim(value, SYNTAX_CHECK_MOMENT)
    except CronSimError as exc:
        raise ScheduleError(
            "taskq.E024", f"schedule {name!r}: 'cron' is {value!r}: {exc}. Fix the crontab."
        ) from exc
    return value


def parse(name: Any, raw: Any, resolve: bool = True) -> Entry:
    """Validate one entry and return it, or raise ScheduleError; ``resolve`` imports the task."""
    if not isinstance(name, str) or not name or ":" in name or len(name) > MAX_NAME:
        raise ScheduleError(
            "taskq.E021",
            f"schedule name {name!r} is invalid: use a non-empty string without ':' of at most "
            f"{MAX_NAME} characters.",
        )
    if not isinstance(raw, dict):
        raise ScheduleError("taskq.E021", f"schedule {name!r} is {raw!r}; make it a dict with 'task'.")
    unknown = sorted(str(k) for k in set(raw) - KEYS)
    if unknown:
        raise ScheduleError(
            "taskq.E027",
            f"schedule {name!r} has unknown keys {unknown}; the keys are {sorted(KEYS)}.",
        )
    path = raw.get("task")
    if not isinstance(path, str) or not path:
        raise ScheduleError(
            "taskq.E022", f"schedule {name!r} has no 'task': give the function's dotted path."
        )
    if resolve:
        try:
            path = task_path(import_string(path))
        except (ImportError, InvalidTask) as exc:
            raise ScheduleError(
                "taskq.E022",
                f"schedule {name!r} names the task {path!r}, which cannot be used ({exc}): give "
                "the dotted path of a module-level function.",
            ) from exc
    if ("cron" in raw) == ("every" in raw):
        raise ScheduleError(
            "taskq.E023", f"schedule {name!r} must have exactly one of 'cron' and 'every'; remove one."
        )
    cron = _crontab(name, raw["cron"]) if "cron" in raw else None
    every = _every_seconds(name, raw["every"]) if "every" in raw else None
    args, kwargs = raw.get("args", []), raw.get("kwargs", {})
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise ScheduleError(
            "taskq.E026", f"schedule {name!r}: 'args' must be a list and 'kwargs' a dict of JSON values."
        )
    try:
        clean_args, clean_kwargs = clean_arguments(tuple(args), kwargs)
    except InvalidTask as exc:
        raise ScheduleError("taskq.E026", f"schedule {name!r}: {exc}") from exc
    try:
        defaults = TaskDefaults(*(raw.get(key) for key in OPTIONS[2:]))
    except InvalidTask as exc:
        raise ScheduleError("taskq.E028", f"schedule {name!r}: {exc}") from exc
    return Entry(name, path, cron, every, clean_args, clean_kwargs, defaults)


def raw_entries() -> dict[Any, Any]:
    """Every declared entry, unvalidated: @periodic ones, then TASKQ_SCHEDULE, which wins on a clash."""
    # Apps' tasks modules are imported so their @periodic functions register in any
    # process, including a worker process that never imports the site's views.
    autodiscover_modules("tasks")
    return {**registry, **settings.schedule}


def entries() -> list[Entry]:
    """Every valid entry; invalid ones are logged here and reported by manage.py check."""
    valid = []
    for name, raw in raw_entries().items():
        try:
            valid.append(parse(name, raw))
        except ScheduleError as exc:
            logger.error("schedule=%s event=invalid check=%s error=%s", name, exc.check_id, exc)
    return valid


def periodic(*, cron: str | None = None, every: float | timedelta | None = None) -> Callable[[F], F]:
    """Run a module-level function with no arguments on a crontab or every so many seconds."""

    def add(fn: F) -> F:
        required = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if required:
            raise InvalidTask(
                f"{fn.__qualname__} takes arguments, so @periodic cannot call it: give it none, or "
                "declare it in TASKQ_SCHEDULE with 'args'."
            )
        path = f"{fn.__module__}.{fn.__qualname__}"
        raw: dict[str, Any] = {"task": path}
        raw.update({"cron": cron} if cron is not None else {})
        raw.update({"every": every} if every is not None else {})
        # The function's module is still importing, and settings may not be ready, so only
        # the timing is checked now; manage.py check validates the whole entry.
        if (cron is None) == (every is None):
            raise ScheduleError("taskq.E023", f"@periodic on {path} needs exactly one of cron= and every=.")
        if cron is not None:
            _crontab(path, cron)
        else:
            _every_seconds(path, every)
        registry[path] = raw
        return fn

    return add


@register("taskq")
def check_schedule(**kwargs: Any) -> list[CheckMessage]:
    """Report TASKQ_SCHEDULE and @periodic entries that could not run."""
    declared = settings.get("TASKQ_SCHEDULE")
    if not isinstance(declared, dict):
        return [Error(f"TASKQ_SCHEDULE is {declared!r}; make it a dict of name to entry.", id="taskq.E021")]
    messages: list[CheckMessage] = []
    for name, raw in raw_entries().items():
        try:
            parse(name, raw)
        except ScheduleError as exc:
            messages.append(Error(str(exc), id=exc.check_id))
    return messages
