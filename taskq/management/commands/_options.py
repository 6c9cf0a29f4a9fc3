"""Numeric command options held to a range, with one message shape for every taskq command."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from django.core.management.base import CommandError


def number(value: float) -> str:
    """``value`` as people write it: 86400, not 86400.0 or 8.64e+04."""
    return str(int(value)) if math.isfinite(value) and value == int(value) else str(value)


@dataclass(frozen=True)
class Bound:
    """A numeric option's allowed range, checked on the command line and in call_command alike."""

    flag: str
    low: float
    high: float
    whole: bool = False
    unit: str = ""

    @property
    def expected(self) -> str:
        """What the option takes, e.g. "a number of seconds from 0.1 to 86400"."""
        kind = "a whole number" if self.whole else "a number"
        unit = f" of {self.unit}" if self.unit else ""
        return f"{kind}{unit} from {number(self.low)} to {number(self.high)}"

    def parse(self, value: object) -> float:
        """Return ``value`` as a number within range, or raise ValueError saying what is expected."""
        try:
            if isinstance(value, bool):
                raise TypeError
            if self.whole:
                if isinstance(value, float):
                    raise TypeError
                parsed: float = int(value)  # type: ignore[call-overload]
            else:
                parsed = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            parsed = math.nan
        if not self.low <= parsed <= self.high:  # also refuses nan
            raise ValueError(f"expected {self.expected}, not {value!r}")
        return parsed

    def argument(self, text: str) -> float:
        """Argparse ``type=``: parse a command-line value, so a bad one gets a usage error."""
        try:
            return self.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def check(self, value: object) -> float:
        """Check a value that call_command passed as a keyword, which argparse never saw."""
        try:
            return self.parse(value)
        except ValueError as exc:
            raise CommandError(f"{self.flag}: {exc}; give a value in that range.") from None
