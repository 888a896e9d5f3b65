"""Inline SVG charts: the pass-rate timeline and figures over time. No script, no
external resource; every text from data is escaped, every link is an in-page anchor."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from aevolve._report.model import Proposal, Report, Version

TAG_COLOURS = ("#8250df", "#bf8700", "#1b7c83", "#bc4c00", "#4d2d00", "#6639ba", "#116329", "#a40e26")
MAX_TAG_LINES = len(TAG_COLOURS)


@dataclass(frozen=True)
class Frame:
    """The plotting area of one chart: version index and value to pixels."""

    count: int  # versions on the x axis
    top: float  # the value at the top of the y axis
    width: int = 1100
    height: int = 300
    left: int = 56
    right: int = 44
    upper: int = 16
    lower: int = 44

    def x(self, index: float) -> float:
        """The middle of the version's slot: room on both ends, and beside each point."""
        return round(self.left + (self.width - self.left - self.right) * (index + 0.5) / max(self.count, 1), 1)

    def y(self, value: float) -> float:
        share = value / self.top if self.top else 0.0
        return round(self.upper + (self.height - self.upper - self.lower) * (1 - min(max(share, 0.0), 1.0)), 1)

    @property
    def radius(self) -> int:
        return 5 if self.count <= 100 else (3 if self.count <= 1000 else 2)


def _open(frame: Frame, label: str, css: str) -> str:
    return (f'<svg class="{css}" role="img" aria-label="{escape(label)}" viewBox="0 0 {frame.width} {frame.height}" '
            f'width="100%" preserveAspectRatio="xMidYMid meet">')


def _axes(frame: Frame, versions: list[Version], ticks: list[float], fmt: Callable[[float], str]) -> list[str]:
    out = []
    for value in ticks:
        y = frame.y(value)
        out.append(f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y}" y2="{y}"/>')
        out.append(f'<text class="axis" x="{frame.left - 6}" y="{y + 4}" text-anchor="end">{escape(fmt(value))}</text>')
    step = max(1, len(versions) // 8)
    shown = sorted({*range(0, len(versions), step), len(versions) - 1}) if versions else []
    for i in shown:
        v = versions[i]
        out.append(f'<text class="axis" x="{frame.x(i)}" y="{frame.height - frame.lower + 16}" text-anchor="middle">'
                   f'{escape(v.short[:7])}</text>')
        out.append(f'<text class="axis date" x="{frame.x(i)}" y="{frame.height - frame.lower + 30}" '
                   f'text-anchor="middle">{escape(v.date[:10])}</text>')
    return out


def _polyline(frame: Frame, points: list[tuple[int, float]], css: str, colour: str | None = None,
              data: str = "") -> str:
    if len(points) < 2:
        return ""
    coords = " ".join(f"{frame.x(i)},{frame.y(v)}" for i, v in points)
    stroke = f' stroke="{colour}"' if colour else ""
    return f'<polyline class="{css}"{stroke}{data} points="{coords}"/>'


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _version_point(frame: Frame, i: int, v: Version, label: bool) -> str:
    tip = f"{v.short} · {v.title or v.subject} · pass rate {_percent(v.pass_rate)}"
    if v.pass_rate is None:  # not measured: a tick under the axis, still a link
        x, axis = frame.x(i), frame.height - frame.lower
        return (f'<a href="#c-{v.commit}"><path class="point ungated" data-commit="{v.short}" '
                f'd="M{x},{axis - 6} L{x - 4},{axis + 2} L{x + 4},{axis + 2} Z">'
                f"<title>{escape(tip)} (not gated)</title></path></a>")
    css = "promotion" if v.promotion else ("start" if v.start else "version")
    x, y = frame.x(i), frame.y(v.pass_rate)
    text = f'<text class="point-label" x="{x}" y="{y - 9}" text-anchor="middle">{v.short[:7]}</text>' if label else ""
    return (f'<a href="#c-{v.commit}"><circle class="point {css}" data-commit="{v.short}" cx="{x}" cy="{y}" '
            f'r="{frame.radius}"><title>{escape(tip)}</title></circle>{text}</a>')


def _proposal_point(frame: Frame, index: int, p: Proposal) -> str:
    value = p.pass_rate if p.pass_rate is not None else (p.baseline_pass_rate or 0.0)
    x, y, s = frame.x(index + 0.35), frame.y(value), frame.radius
    css = "rejected" if p.rejected else "pending"
    reason = p.reasons[0] if p.reasons else ""
    tip = f"{p.short} · {p.status} · {p.title or p.subject}" + (f" · {reason}" if reason else "")
    return (f'<a href="#p-{p.commit}"><path class="point {css}" data-commit="{p.short}" '
            f'd="M{x - s},{y - s} L{x + s},{y + s} M{x - s},{y + s} L{x + s},{y - s}">'
            f'<title>{escape(tip)}</title></path></a>')


def timeline(report: Report) -> str:
    """Pass rate of each version (overall, and per tag), rejected proposals beside their baseline."""
    versions = report.versions
    frame = Frame(count=len(versions), top=1.0)
    out = [_open(frame, "pass rate of main over its history", "timeline")]
    out += _axes(frame, versions, [0.0, 0.25, 0.5, 0.75, 1.0], lambda v: f"{v * 100:.0f}%")
    for tag, colour in zip(report.tags[:MAX_TAG_LINES], TAG_COLOURS, strict=False):
        points = [(i, v.tag_rates[tag]) for i, v in enumerate(versions) if tag in v.tag_rates]
        out.append(_polyline(frame, points, "tag-line", colour, f' data-tag="{escape(tag)}"'))
    out.append(_polyline(frame, [(i, v.pass_rate) for i, v in enumerate(versions) if v.pass_rate is not None],
                         "rate-line"))
    index = {v.commit: i for i, v in enumerate(versions)}
    out += [_proposal_point(frame, index[p.baseline], p) for p in report.proposals if p.baseline in index]
    label = len(versions) <= 25
    out += [_version_point(frame, i, v, label) for i, v in enumerate(versions)]
    out.append("</svg>")
    return "".join(out)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(power * m for m in (1, 2, 2.5, 5, 10) if power * m >= value)


def series_chart(versions: list[Version], series: list[tuple[str, str, list[tuple[int, float]]]],
                 fmt: Callable[[float], str], label: str) -> str:
    """Lines over the versions: series are (name, css class, [(version index, value)])."""
    top = nice_ceiling(max((v for _, _, points in series for _, v in points), default=0.0))
    frame = Frame(count=len(versions), top=top, height=220)
    out = [_open(frame, label, "chart")]
    out += _axes(frame, versions, [top * k / 4 for k in range(5)], fmt)
    for name, css, points in series:
        out.append(_polyline(frame, points, f"series {css}", data=f' data-series="{escape(name)}"'))
        for i, value in points:
            tip = f"{versions[i].short} · {name} {fmt(value)}"
            out.append(f'<circle class="series-point {css}" cx="{frame.x(i)}" cy="{frame.y(value)}" r="2.5">'
                       f'<title>{escape(tip)}</title></circle>')
    out.append("</svg>")
    return "".join(out)
