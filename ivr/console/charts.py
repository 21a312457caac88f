"""Bar charts drawn on the server as inline SVG: no JavaScript, no CDN, readable by anyone.

A chart says what it is in its <title> and <desc>, has its axis ticks and labels as text, a
legend, and each series in a `<g data-series="...">` whose bars each carry a <title> with
their value, so a screen reader, a text browser and a test read the same figures. Series
differ in more than hue: the palette (Okabe and Ito's, for colour-blind readers) alternates
dark and light, and every other series is hatched or dotted. The page shows a table of the
same figures under each chart; the words come in already translated, this module only draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

WIDTH = 960  # the viewBox's width; the SVG itself scales to its container
PLOT_HEIGHT = 240
LEFT, RIGHT = 64, 16  # room for the y ticks and the axis label; a little air on the right
TITLE_HEIGHT = 28
LEGEND_ROW = 20
FONT = "system-ui, sans-serif"
INK, MUTED, GRID = "#1d2430", "#4a5566", "#e3e6ea"

# (fill colour, pattern drawn over it): dark and light alternate, and patterns set apart what colour alone might not.
STYLES: tuple[tuple[str, str | None], ...] = (
    ("#0072B2", None),  # blue, dark
    ("#E69F00", "stripes"),  # orange, light
    ("#009E73", None),  # bluish green, middle
    ("#CC79A7", "dots"),  # reddish purple, light
    ("#1d3557", "stripes"),  # navy, very dark
    ("#56B4E9", None),  # sky blue, light
    ("#D55E00", "crosses"),  # vermilion, middle
    ("#F0E442", "dots"),  # yellow, very light
)


@dataclass(frozen=True)
class Series:
    """One series: `key` names it in no language (the `data-series` attribute), `label` in the reader's."""

    key: str
    label: str
    values: tuple[float | None, ...]  # one per category; None: no figure


@dataclass(frozen=True)
class BarChart:
    """What a chart shows, in the reader's words; `ident` is unique on the page (the prefix of its element ids)."""

    ident: str
    title: str
    description: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    unit: str  # the y axis' label
    value_text: Callable[[float], str] = field(default=lambda value: f"{value:g}")  # a bar's value, in its <title>
    tick_text: Callable[[float], str] = field(default=lambda value: f"{value:g}")  # an axis tick
    whole_numbers: bool = False  # ticks at whole numbers only (counts; minutes)


def stacked(chart: BarChart) -> Markup:
    """A stacked bar chart: one bar per category, each series a segment of it; empty segments are not drawn."""
    totals = [sum(series.values[i] or 0 for series in chart.series) for i in range(len(chart.categories))]
    frame = _Frame(chart, max(totals, default=0))
    groups = []
    base = [0.0] * len(chart.categories)
    for index, series in enumerate(chart.series):
        bars = []
        for i, value in enumerate(series.values):
            if not value:
                continue
            x = frame.slot_x(i) + frame.slot * 0.15
            bars.append(frame.bar(chart, index, i, x, frame.slot * 0.7, base[i], value))
            base[i] += value
        groups.append(_series_group(series, bars))
    return frame.svg(chart, groups)


def grouped(chart: BarChart) -> Markup:
    """A grouped bar chart: in each category one bar per series, side by side; a missing figure leaves a gap."""
    values = [value for series in chart.series for value in series.values if value is not None]
    frame = _Frame(chart, max(values, default=0))
    width = frame.slot * 0.8 / max(1, len(chart.series))
    groups = []
    for index, series in enumerate(chart.series):
        bars = []
        for i, value in enumerate(series.values):
            if value is None:
                continue
            x = frame.slot_x(i) + frame.slot * 0.1 + index * width
            bars.append(frame.bar(chart, index, i, x, width * 0.92, 0.0, value))
        groups.append(_series_group(series, bars))
    return frame.svg(chart, groups)


def ticks(top: float, whole_numbers: bool = False) -> list[float]:
    """About five evenly spaced, round ticks from 0 to at least `top` (steps of 1, 2 or 5 times a power of ten)."""
    if top <= 0:
        return [0.0, 1.0]
    rough = top / 5
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    if whole_numbers:
        step = max(1.0, float(math.ceil(step)))
    count = math.ceil(top / step - 1e-9)
    return [round(n * step, 10) for n in range(count + 1)]


def legend_rows(labels: Sequence[str], width: float) -> list[list[tuple[int, float]]]:
    """The legend's items (index, x) laid out in rows that fit `width`, text measured roughly."""
    rows: list[list[tuple[int, float]]] = [[]]
    x = 0.0
    for index, label in enumerate(labels):
        item = 22 + 7 * len(label) + 18  # swatch, text, gap
        if rows[-1] and x + item > width:
            rows.append([])
            x = 0.0
        rows[-1].append((index, x))
        x += item
    return rows


class _Frame:
    """The chart's geometry: the legend's rows, the plot's box, the y scale and the slots of the categories."""

    def __init__(self, chart: BarChart, top: float) -> None:
        self.plot_width = WIDTH - LEFT - RIGHT
        self.legend = legend_rows([series.label for series in chart.series], self.plot_width)
        self.plot_top = TITLE_HEIGHT + LEGEND_ROW * len(self.legend) + 12
        self.plot_bottom = self.plot_top + PLOT_HEIGHT
        self.slanted = len(chart.categories) > 12  # many days: the labels turn to fit
        self.height = self.plot_bottom + (64 if self.slanted else 40)
        self.ticks = ticks(top, chart.whole_numbers)
        self.top_value = self.ticks[-1]
        self.slot = self.plot_width / max(1, len(chart.categories))

    def y(self, value: float) -> float:
        return self.plot_bottom - PLOT_HEIGHT * value / self.top_value

    def slot_x(self, index: int) -> float:
        return LEFT + index * self.slot

    def bar(self, chart: BarChart, index: int, category: int, x: float, width: float, base: float, value: float) -> str:
        """A bar (or a stacked segment from `base` up) of series `index` in `category`, saying its value."""
        series = chart.series[index]
        top, bottom = self.y(base + value), self.y(base)
        said = f"{series.label}, {chart.categories[category]}: {chart.value_text(value)}"
        return (
            f'<rect x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{bottom - top:.1f}" '
            f'fill="{_fill(chart, index)}" stroke="{INK}" stroke-width="0.5" '
            f'data-category="{escape(chart.categories[category])}" data-value="{value:g}">'
            f"<title>{escape(said)}</title></rect>"
        )

    def svg(self, chart: BarChart, groups: list[str]) -> Markup:
        title_id, desc_id = f"{chart.ident}-title", f"{chart.ident}-desc"
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart.ident)}" '
            f'viewBox="0 0 {WIDTH} {self.height}" width="100%" role="img" '
            f'aria-labelledby="{escape(title_id)} {escape(desc_id)}" font-family="{FONT}" font-size="12" fill="{INK}">',
            f'<title id="{escape(title_id)}">{escape(chart.title)}</title>',
            f'<desc id="{escape(desc_id)}">{escape(chart.description)}</desc>',
            _patterns(chart),
            f'<text x="{LEFT}" y="18" font-size="15" font-weight="600">{escape(chart.title)}</text>',
            self._legend(chart),
            self._axes(chart),
            *groups,
            "</svg>",
        ]
        return Markup("".join(parts))

    def _legend(self, chart: BarChart) -> str:
        items = []
        for row, placed in enumerate(self.legend):
            y = TITLE_HEIGHT + row * LEGEND_ROW
            for index, x in placed:
                label = chart.series[index].label
                items.append(
                    f'<g class="legend-item" data-legend="{escape(chart.series[index].key)}">'
                    f'<rect x="{LEFT + x:.1f}" y="{y}" width="14" height="14" fill="{_fill(chart, index)}" '
                    f'stroke="{INK}" stroke-width="0.5"/>'
                    f'<text x="{LEFT + x + 20:.1f}" y="{y + 11}">{escape(label)}</text></g>'
                )
        return f'<g class="legend">{"".join(items)}</g>'

    def _axes(self, chart: BarChart) -> str:
        parts = ['<g class="axes">']
        for value in self.ticks:
            y = self.y(value)
            parts.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}" class="tick">'
                f"{escape(chart.tick_text(value))}</text>"
            )
        middle = (self.plot_top + self.plot_bottom) / 2
        parts.append(
            f'<text transform="translate(14 {middle:.1f}) rotate(-90)" text-anchor="middle" fill="{MUTED}">'
            f"{escape(chart.unit)}</text>"
        )
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{self.plot_bottom}" y2="{self.plot_bottom}" stroke="{INK}"/>'
        )
        for index, label in enumerate(chart.categories):
            x = self.slot_x(index) + self.slot / 2
            y = self.plot_bottom + 16
            if self.slanted:
                parts.append(
                    f'<text transform="translate({x + 4:.1f} {y - 4}) rotate(-55)" text-anchor="end" '
                    f'font-size="11" class="category">{escape(label)}</text>'
                )
            else:
                parts.append(f'<text x="{x:.1f}" y="{y}" text-anchor="middle" class="category">{escape(label)}</text>')
        parts.append("</g>")
        return "".join(parts)


def _series_group(series: Series, bars: list[str]) -> str:
    return f'<g class="series" data-series="{escape(series.key)}">{"".join(bars)}</g>'


def _fill(chart: BarChart, index: int) -> str:
    colour, pattern = STYLES[index % len(STYLES)]
    return f"url(#{chart.ident}-pattern-{index})" if pattern else colour


def _patterns(chart: BarChart) -> str:
    """The hatched and dotted fills of this chart's series, with ids of its own (many charts share the page)."""
    defs = []
    for index in range(len(chart.series)):
        colour, pattern = STYLES[index % len(STYLES)]
        if pattern is None:
            continue
        mark = {
            "stripes": '<path d="M0 0L0 6" stroke="#fff" stroke-width="2"/>',
            "dots": '<circle cx="3" cy="3" r="1.3" fill="#1d2430"/>',
            "crosses": '<path d="M0 0L0 6M0 3L6 3" stroke="#fff" stroke-width="1.2"/>',
        }[pattern]
        turn = ' patternTransform="rotate(45)"' if pattern != "dots" else ""
        defs.append(
            f'<pattern id="{escape(chart.ident)}-pattern-{index}" patternUnits="userSpaceOnUse" '
            f'width="6" height="6"{turn}>'
            f'<rect width="6" height="6" fill="{colour}"/>{mark}</pattern>'
        )
    return f"<defs>{''.join(defs)}</defs>" if defs else ""
