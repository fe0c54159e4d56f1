"""Small bar charts drawn on the server as inline SVG: no script, no stylesheet, nothing to load.

    bar_chart([("2026-05", 12), ("2026-06", 30)], title="Calls deleted per month")
    bar_chart([("Complaint", 4), ("Regulator", 1)], title="Active holds by kind", horizontal=True)

Each returns ``Markup`` of one ``<svg role="img">`` whose ``<title>`` and ``aria-label`` say what it
shows; every bar carries ``data-label`` and ``data-value`` (tests read the numbers back) and its
number is written beside it, so the chart reads without hovering. Pages put the same numbers in a
table next to the chart (``<details>``), for screen readers and for copying. Colours are SVG
presentation attributes, which a ``style-src 'self'`` Content-Security-Policy allows.
"""
import html
import re
from dataclasses import dataclass

from markupsafe import Markup

BAR_COLOUR = "#2f6f9f"
AXIS_COLOUR = "#555555"
TEXT_COLOUR = "#1a1a1a"
_BAR = re.compile(r'data-label="([^"]*)" data-value="(\d+)"')
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


@dataclass(frozen=True)
class Bar:
    label: str
    value: int


def _bars(data):
    bars = [Bar(str(label), int(value)) for label, value in data]
    if any(bar.value < 0 for bar in bars):
        raise ValueError("bar charts show counts: no negative values")
    return bars


def _open(width, height, title, summary):
    label = f"{title}: {summary}" if summary else f"{title}: no data"
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" class="callrec-chart" role="img" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" aria-label="{label}"><title>{label}</title>'
    ).format(w=width, h=height, label=label)


def _summary(bars):
    return "; ".join(f"{bar.label} {bar.value}" for bar in bars)


def bar_chart(data, title, horizontal=False, width=520, bar_size=22, empty_text="Nothing to show yet."):
    """An SVG bar chart of ``data``, a sequence of (label, count), in the order given."""
    bars = _bars(data)
    if not bars:
        return Markup('<p class="callrec-chart-empty">{}</p>').format(empty_text)
    peak = max(bar.value for bar in bars) or 1
    return (_horizontal if horizontal else _vertical)(bars, title, peak, width, bar_size)


def _horizontal(bars, title, peak, width, bar_size):
    label_width, gap, number_room = 150, 6, 48
    height = len(bars) * (bar_size + gap) + gap
    room = width - label_width - number_room
    parts = [_open(width, height, title, _summary(bars))]
    for index, bar in enumerate(bars):
        y = gap + index * (bar_size + gap)
        length = round(room * bar.value / peak, 1)
        parts.append(Markup(
            '<g data-label="{label}" data-value="{value}">'
            '<text x="{lx}" y="{ty}" text-anchor="end" fill="{text}" ' + FONT + '>{label}</text>'
            '<rect x="{x}" y="{y}" width="{length}" height="{size}" fill="{colour}"></rect>'
            '<text x="{nx}" y="{ty}" fill="{text}" ' + FONT + '>{value}</text></g>'
        ).format(label=bar.label, value=bar.value, lx=label_width - 8, ty=y + bar_size * 0.7, x=label_width, y=y,
                 length=length, size=bar_size, colour=BAR_COLOUR, nx=label_width + length + 6, text=TEXT_COLOUR))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _vertical(bars, title, peak, width, bar_size):
    # Room on the left and below for the labels, which are turned 40 degrees to fit under narrow bars.
    top, bottom, left, height_room = 18, 56, 44, 150
    gap = 8
    width = max(width, left + len(bars) * (bar_size + gap) + gap)
    height = top + height_room + bottom
    baseline = top + height_room
    parts = [_open(width, height, title, _summary(bars)),
             Markup('<line x1="{x}" y1="{y}" x2="{w}" y2="{y}" stroke="{c}"></line>').format(
                 x=left, y=baseline, w=width, c=AXIS_COLOUR)]
    for index, bar in enumerate(bars):
        x = left + gap + index * (bar_size + gap)
        length = round(height_room * bar.value / peak, 1)
        parts.append(Markup(
            '<g data-label="{label}" data-value="{value}">'
            '<rect x="{x}" y="{y}" width="{size}" height="{length}" fill="{colour}"></rect>'
            '<text x="{cx}" y="{ny}" text-anchor="middle" fill="{text}" ' + FONT + '>{value}</text>'
            '<text x="{cx}" y="{ly}" text-anchor="end" fill="{text}" transform="rotate(-40 {cx} {ly})" '
            + FONT + '>{label}</text></g>'
        ).format(label=bar.label, value=bar.value, x=x, y=baseline - length, size=bar_size, length=length,
                 colour=BAR_COLOUR, cx=x + bar_size / 2, ny=baseline - length - 4, ly=baseline + 14,
                 text=TEXT_COLOUR))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def chart_values(svg):
    """(label, value) of every bar in a chart's markup, in order (for tests, and for anyone checking a page)."""
    return [(html.unescape(label), int(value)) for label, value in _BAR.findall(str(svg))]
