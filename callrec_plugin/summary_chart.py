"""A horizontal stacked-bar chart drawn on the server as SVG: no script, no external CDN.

Each bar is one row of a table shown beside it, each segment one of its counts, labelled with its
number, so the chart and the table read the same figures. Colours are paired with a legend and the
numbers are written out, so no one needs to tell colours apart.
"""
from markupsafe import Markup, escape

ROW_HEIGHT = 26
BAR_HEIGHT = 18
LABEL_WIDTH = 260
BAR_WIDTH = 420
TOTAL_WIDTH = 60
LEGEND_HEIGHT = 28
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def stacked_bars(title, rows, series):
    """SVG for ``rows`` = [(label, {series key: count})], ``series`` = [(key, legend label, colour)].

    Bars share one scale (the largest row total), so lengths compare across rows."""
    largest = max((sum(counts.get(key, 0) for key, _, _ in series) for _, counts in rows), default=0) or 1
    height = LEGEND_HEIGHT + ROW_HEIGHT * max(len(rows), 1) + 4
    width = LABEL_WIDTH + BAR_WIDTH + TOTAL_WIDTH
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="callrec-chart" role="img" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-labelledby="{_id(title)}">',
             f'<title id="{_id(title)}">{escape(title)}</title>']
    parts.extend(_legend(series))
    for index, (label, counts) in enumerate(rows):
        parts.extend(_bar(index, label, counts, series, largest))
    if not rows:
        parts.append(f'<text x="0" y="{LEGEND_HEIGHT + 16}" {FONT}>No results yet.</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _id(title):
    return "chart-" + "".join(ch if ch.isalnum() else "-" for ch in title.lower())[:40]


def _legend(series):
    x = LABEL_WIDTH
    for _key, name, colour in series:
        yield f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>'
        yield f'<text x="{x + 16}" y="14" {FONT}>{escape(name)}</text>'
        x += 30 + 7 * len(name)


def _bar(index, label, counts, series, largest):
    y = LEGEND_HEIGHT + index * ROW_HEIGHT
    total = sum(counts.get(key, 0) for key, _, _ in series)
    yield f'<text x="{LABEL_WIDTH - 8}" y="{y + 13}" text-anchor="end" {FONT}>{escape(_shorten(label))}</text>'
    x = float(LABEL_WIDTH)
    for key, name, colour in series:
        value = counts.get(key, 0)
        if not value:
            continue
        length = BAR_WIDTH * value / largest
        yield (f'<rect x="{x:.1f}" y="{y}" width="{length:.1f}" height="{BAR_HEIGHT}" fill="{colour}">'
               f'<title>{escape(label)}: {escape(name)} {value}</title></rect>')
        if length >= 18:
            yield (f'<text x="{x + length / 2:.1f}" y="{y + 13}" text-anchor="middle" fill="#fff" {FONT}>'
                   f'{value}</text>')
        x += length
    yield f'<text x="{LABEL_WIDTH + BAR_WIDTH + 6}" y="{y + 13}" {FONT}>{total}</text>'


def _shorten(label, limit=40):
    return label if len(label) <= limit else label[:limit - 1] + "…"
