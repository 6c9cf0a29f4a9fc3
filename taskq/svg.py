"""Small charts drawn on the server as inline SVG, every piece of text escaped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 720
HEIGHT = 160
LEFT = 44  # room for the y axis labels
BOTTOM = 18  # room for the x axis labels
TOP = 8
RIGHT_ALIGNED = 'text-anchor="end" font-size="11"'


@dataclass(frozen=True)
class Series:
    """One named row of values; ``css`` picks its colour class, ``colour`` draws it without the stylesheet."""

    name: str
    values: Sequence[float | None]
    css: str
    colour: str


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.2g}"


def _scale(top: float) -> float:
    """A round axis maximum at or above ``top``."""
    if top <= 0:
        return 1.0
    step = 10 ** len(str(int(top))) / 10 if top >= 1 else 0.1
    for factor in (1, 2, 2.5, 5, 10):
        if top <= step * factor:
            return step * factor
    return top


def _frame(title: str, labels: Sequence[str], top: float, unit: str, body: list[str]) -> SafeString:
    bottom = HEIGHT - BOTTOM
    parts = [
        f'<svg class="taskq-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line class="taskq-axis" x1="{LEFT}" y1="{bottom}" x2="{WIDTH}" y2="{bottom}" stroke="#999"/>',
        f'<line class="taskq-axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#999"/>',
        f'<text class="taskq-tick" x="{LEFT - 4}" y="{TOP + 10}" {RIGHT_ALIGNED}>{escape(_number(top))}'
        f"{escape(unit)}</text>",
        f'<text class="taskq-tick" x="{LEFT - 4}" y="{bottom}" {RIGHT_ALIGNED}>0</text>',
    ]
    if labels:
        parts.append(
            f'<text class="taskq-tick" x="{LEFT}" y="{HEIGHT - 4}" font-size="11">{escape(labels[0])}</text>'
        )
        parts.append(
            f'<text class="taskq-tick" x="{WIDTH}" y="{HEIGHT - 4}" {RIGHT_ALIGNED}>'
            f"{escape(labels[-1])}</text>"
        )
    # Every fragment is built from escaped text and numbers formatted here.
    return mark_safe("".join(parts + body + ["</svg>"]))  # noqa: S308


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], unit: str = "") -> SafeString:
    """Stacked bars, one per label, with each bar's numbers in a hover title."""
    n = len(labels)
    totals = [sum((s.values[i] or 0) for s in series) for i in range(n)]
    top = _scale(max(totals, default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / max(n, 1)
    gap = min(slot * 0.2, 2.0)
    body = []
    for i, label in enumerate(labels):
        x = LEFT + i * slot + gap / 2
        base = float(TOP + plot_h)
        tip = "; ".join(f"{s.name} {_number(s.values[i] or 0)}{unit}" for s in series)
        body.append(f"<g><title>{escape(label)}: {escape(tip)}</title>")
        for s in series:
            value = s.values[i] or 0
            if value <= 0:
                continue
            h = value / top * plot_h
            base -= h
            body.append(
                f'<rect class="taskq-{escape(s.css)}" x="{x:.1f}" y="{base:.1f}" '
                f'width="{slot - gap:.1f}" height="{h:.1f}" fill="{escape(s.colour)}"/>'
            )
        body.append("</g>")
    return _frame(title, labels, top, unit, body)


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], unit: str = "") -> SafeString:
    """One line per series; a missing value breaks the line."""
    n = len(labels)
    top = _scale(max((v for s in series for v in s.values if v is not None), default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / max(n, 1)
    body = []
    for s in series:
        fill = f'fill="{escape(s.colour)}"'
        runs: list[list[str]] = [[]]
        for i, value in enumerate(s.values):
            if value is None:
                runs.append([])
                continue
            x = LEFT + (i + 0.5) * slot
            y = TOP + plot_h - value / top * plot_h
            runs[-1].append(f"{x:.1f},{y:.1f}")
        for points in runs:
            if len(points) == 1:
                cx, cy = points[0].split(",")
                body.append(f'<circle class="taskq-{escape(s.css)}" cx="{cx}" cy="{cy}" r="2" {fill}/>')
            elif points:
                body.append(
                    f'<polyline class="taskq-{escape(s.css)}" points="{" ".join(points)}" fill="none" '
                    f'stroke="{escape(s.colour)}" stroke-width="1.5"/>'
                )
    return _frame(title, labels, top, unit, body)
