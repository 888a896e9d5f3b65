"""The report as one self-contained HTML page: inline CSS and SVG, no script, no
external resource. Everything from commits and notes (titles, rationales, case ids,
reasons, paths) goes through `escape`; links are in-page anchors, except the
optional commit links to GitHub or GitLab, which are plain `<a rel=noopener>`."""

from __future__ import annotations

import itertools
from html import escape

from aevolve._report import svg
from aevolve._report.model import Proposal, Report, Version

MAX_GRID_COLUMNS = 60
MAX_GRID_ROWS = 500

CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--pass:#1a7f37;--fail:#cf222e;--blue:#0969da}
*{box-sizing:border-box}
body{font:15px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--fg);margin:0;background:#fff}
main{max-width:1200px;margin:0 auto;padding:24px 28px 80px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:20px;margin:36px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:16px;margin:0 0 6px}h4{font-size:14px;margin:12px 0 4px;color:var(--muted)}
a{color:var(--blue);text-decoration:none}a:hover{text-decoration:underline}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.muted{color:var(--muted)}.sub{color:var(--muted);margin:0 0 18px}
.figures{display:flex;flex-wrap:wrap;gap:12px;margin:18px 0}
.figure{border:1px solid var(--line);border-radius:8px;padding:10px 16px;min-width:150px;background:var(--bg)}
.figure b{display:block;font-size:26px;line-height:1.2}.figure span{color:var(--muted);font-size:13px}
.legend{display:flex;flex-wrap:wrap;gap:16px;font-size:13px;color:var(--muted);margin:4px 0 8px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:50%;margin-right:5px;vertical-align:-1px}
svg{display:block;max-width:100%;height:auto;background:#fff;border:1px solid var(--line);border-radius:8px}
svg .grid{stroke:#eaeef2;stroke-width:1}svg .axis{font-size:11px;fill:var(--muted)}
svg .rate-line{fill:none;stroke:var(--blue);stroke-width:2.5}svg .tag-line{fill:none;stroke-width:1.5;opacity:.8}
svg .point{stroke:#fff;stroke-width:1.5}svg .promotion{fill:var(--blue)}svg .start,svg .version{fill:#8c959f}
svg .ungated{fill:#d4a72c;stroke:none}svg .rejected{stroke:var(--fail);stroke-width:2.5;fill:none}
svg .pending{stroke:#bf8700;stroke-width:2;fill:none}svg .point-label{font-size:10px;fill:var(--muted)}
svg .series{fill:none;stroke-width:2}svg .median,svg .series-point.median{stroke:var(--blue);fill:var(--blue)}
svg .p95,svg .series-point.p95{stroke:#bc4c00;fill:#bc4c00}
svg .total,svg .series-point.total{stroke:#8250df;fill:#8250df}
table{border-collapse:collapse;margin:8px 0;font-size:14px}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}th{background:var(--bg)}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto;max-width:100%}
table.grid th.col{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal;padding:6px 2px}
table.grid th.case{white-space:nowrap}
table.grid td.cell{width:18px;min-width:18px;text-align:center;padding:1px;font-size:12px}
td.pass{background:#dafbe1;color:var(--pass)}td.fail{background:#ffebe9;color:var(--fail)}td.none{color:#8c959f}
.version{border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin:12px 0}
.version.promoted{border-left:4px solid var(--blue)}.version.proposal{border-left:4px solid var(--fail)}
.badge{display:inline-block;font-size:12px;padding:0 8px;border-radius:10px;background:var(--bg);
border:1px solid var(--line);margin-right:4px}
.badge.accept{color:var(--pass);border-color:var(--pass)}.badge.reject,.badge.error{color:var(--fail);border-color:var(--fail)}
.text{white-space:pre-wrap;margin:0 0 6px}ul.files{columns:2;margin:4px 0;padding-left:20px}
.fixed{color:var(--pass)}.broke{color:var(--fail)}.note{background:#fff8c5;border:1px solid #d4a72c;
border-radius:6px;padding:6px 10px;margin:6px 0;font-size:14px}
nav a{margin-right:14px}
"""


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f} pt"


def render(report: Report) -> str:
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # nothing may load: not even by mistake (a future edit adding an image or a font)
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>aevolve report · {escape(report.name)}</title><style>{CSS}</style></head><body><main>",
        _header(report), _timeline(report), _grid(report), _tags(report), _evolvers(report), _costs(report),
        _proposals(report), _versions(report), "</main></body></html>\n",
    ]
    return "".join(parts)


def _header(report: Report) -> str:
    s = report.summary()
    since = f", since {report.since[:12]}" if report.since else ""
    figures = [(_pct(s["pass_rate"]), "current pass rate"),
               (_signed(None if s["pass_rate"] is None or s["first_pass_rate"] is None
                        else s["pass_rate"] - s["first_pass_rate"]), "since the first version"),
               (str(s["promotions"]), "promotions"), (str(s["rejections"]), "rejected proposals"),
               (str(s["ungated"]), "ungated commits on main"), (str(s["cases"]), "cases")]
    if report.all:
        figures.append((str(s["pending"]), "other proposals (--all)"))
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in report.notes)
    return (f"<header><h1>How the agent evolved: {escape(report.name)}</h1>"
            f'<p class="sub">{escape(report.base)} at <code>{report.main[:12]}</code>, {s["versions"]} version(s)'
            f"{since}; generated {escape(report.generated)} by <code>aevolve report</code></p>"
            '<div class="figures">'
            + "".join(f'<div class="figure"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for v, k in figures)
            + '</div><nav><a href="#timeline">Timeline</a><a href="#grid">Cases × versions</a><a href="#tags">Tags</a>'
            '<a href="#evolvers">Evolvers</a><a href="#costs">Latency and cost</a><a href="#rejected">Rejected</a>'
            f'<a href="#versions">Versions</a></nav>{notes}</header>')


def _timeline(report: Report) -> str:
    legend = ['<span><i style="background:#0969da"></i>promotion (links to its rationale, flips and files)</span>',
              '<span><i style="background:#8c959f"></i>start of the history</span>',
              '<span><i style="background:#d4a72c"></i>not gated</span>',
              '<span style="color:#cf222e">✕ rejected proposal, beside the version it was judged against</span>']
    for tag, colour in zip(report.tags[:svg.MAX_TAG_LINES], svg.TAG_COLOURS, strict=False):
        legend.append(f'<span><i style="background:{colour}"></i>tag {escape(tag)}</span>')
    more = len(report.tags) - svg.MAX_TAG_LINES
    if more > 0:
        legend.append(f"<span>{more} more tag(s) in the tag table</span>")
    return (f'<section id="timeline"><h2>Pass rate of {escape(report.base)} over its history</h2>'
            f'<div class="legend">{"".join(legend)}</div>{svg.timeline(report)}</section>')


def grid_columns(versions: list[Version]) -> tuple[list[Version], str]:
    """The versions the case grid shows, and a caption saying which were left out."""
    measured = [v for v in versions if v.cases]
    if len(measured) <= MAX_GRID_COLUMNS:
        return measured, ""
    keep = {measured[0].commit, measured[-1].commit}
    keep.update(v.commit for prev, v in itertools.pairwise(measured) if v.cases != prev.cases)
    kept = [v for v in measured if v.commit in keep][-MAX_GRID_COLUMNS:]
    return kept, (f"Showing {len(kept)} of {len(measured)} measured versions: those where a case changed "
                  f"state{' (the latest ones)' if len(kept) == MAX_GRID_COLUMNS else ''}, with the first and last.")


def _grid(report: Report) -> str:
    columns, caption = grid_columns(report.versions)
    rows = report.case_ids[:MAX_GRID_ROWS]
    if not columns or not rows:
        return ('<section id="grid"><h2>Cases × versions</h2><p class="muted">No gate report lists per-case results.'
                "</p></section>")
    if len(report.case_ids) > len(rows):
        caption += f" Showing the first {len(rows)} of {len(report.case_ids)} cases (all are in --format json)."
    head = "".join(f'<th class="col"><a href="#c-{v.commit}">{v.short[:7]}</a></th>' for v in columns)
    mark = {True: ("pass", "✓", "passes"), False: ("fail", "✗", "fails"), None: ("none", "·", "not run")}
    body = []
    for case in rows:
        cells = []
        for v in columns:
            css, sym, word = mark[v.cases.get(case)]
            cells.append(f'<td class="cell {css}" title="{escape(case)} {word} at {v.short}">{sym}</td>')
        body.append(f'<tr><th class="case mono">{escape(case)}</th>{"".join(cells)}</tr>')
    return (f'<section id="grid"><h2>Cases × versions</h2><p class="muted">{escape(caption)} '
            "✓ passes, ✗ fails, · not run at that version. Columns link to the version.</p>"
            f'<div class="scroll"><table class="grid"><thead><tr><th>case</th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div></section>')


def _tags(report: Report) -> str:
    if not report.tags:
        return ('<section id="tags"><h2>Per tag</h2><p class="muted">No case carries tags, so there are no per-tag '
                "pass rates.</p></section>")
    rows = []
    for tag in report.tags:
        seen = [v.tag_rates[tag] for v in report.versions if tag in v.tag_rates]
        first, last = (seen[0], seen[-1]) if seen else (None, None)
        change = last - first if first is not None and last is not None else None
        rows.append(f'<tr><td class="mono">{escape(tag)}</td><td class="num">{_pct(first)}</td>'
                    f'<td class="num">{_pct(last)}</td><td class="num">{_signed(change)}</td></tr>')
    return ('<section id="tags"><h2>Per tag</h2><table><thead><tr><th>tag</th><th>first measured</th><th>now</th>'
            f'<th>change</th></tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def _evolvers(report: Report) -> str:
    if not report.evolvers:
        return '<section id="evolvers"><h2>Evolvers</h2><p class="muted">No proposal yet.</p></section>'
    rows = "".join(
        f'<tr><td class="mono">{escape(e.name)}</td><td class="num">{e.proposals}</td>'
        f'<td class="num">{e.promoted}</td><td class="num">{e.rejected}</td><td class="num">{e.pending}</td>'
        f'<td class="num">{_pct(e.acceptance_rate)}</td><td class="num">{_signed(e.mean_gain)}</td></tr>'
        for e in report.evolvers)
    return ('<section id="evolvers"><h2>Evolvers</h2><table><thead><tr><th>evolver</th><th>proposals</th>'
            "<th>promoted</th><th>rejected</th><th>other</th><th>acceptance</th><th>mean gain</th></tr></thead>"
            f"<tbody>{rows}</tbody></table><p class=\"muted\">Acceptance: promoted ÷ (promoted + rejected). Mean gain: "
            "the mean pass-rate change of its promotions.</p></section>")


def _costs(report: Report) -> str:
    vs = report.versions
    parts = ['<section id="costs"><h2>Latency and cost over time</h2>']
    lat = [(i, v.latency) for i, v in enumerate(vs) if v.latency]
    if lat:
        parts.append("<h4>Per-case latency (median and p95 of the cases' mean latency), ms</h4>")
        parts.append(svg.series_chart(vs, [("median", "median", [(i, d["median_ms"]) for i, d in lat]),
                                           ("p95", "p95", [(i, d["p95_ms"]) for i, d in lat])],
                                      lambda x: f"{x:.0f}", "latency over the versions"))
    cost = [(i, v.cost["total"]) for i, v in enumerate(vs) if v.cost]
    if cost:
        parts.append("<h4>Cost of one run of the suite (sum of the cases' mean cost)</h4>")
        parts.append(svg.series_chart(vs, [("total", "total", cost)], lambda x: f"{x:.4g}", "cost over the versions"))
    if not lat and not cost:
        parts.append('<p class="muted">No gate report records per-case latency or cost.</p>')
    parts.append("</section>")
    return "".join(parts)


def _commit_link(report: Report, sha: str) -> str:
    if not report.commit_url:
        return ""
    host = report.commit_url.split("/")[2]
    return (f' <a class="remote" href="{escape(report.commit_url + sha)}" rel="noopener noreferrer">'
            f"on {escape(host)}</a>")


def _ids(ids: list[str], css: str) -> str:
    return ", ".join(f'<code class="{css}">{escape(i)}</code>' for i in ids) or '<span class="muted">none</span>'


def _proposals(report: Report) -> str:
    shown = report.proposals
    title = "Proposals that did not reach main" if report.all else "Rejected proposals"
    if not shown:
        return f'<section id="rejected"><h2>{title}</h2><p class="muted">None.</p></section>'
    return f'<section id="rejected"><h2>{title}</h2>{"".join(_proposal(report, p) for p in reversed(shown))}</section>'


def _proposal(report: Report, p: Proposal) -> str:
    base = (f'against <a href="#c-{p.baseline}"><code>{p.baseline[:12]}</code></a>' if p.baseline else "")
    reasons = "".join(f"<li>{escape(r)}</li>" for r in p.reasons)
    return (f'<article class="version proposal" id="p-{p.commit}"><h3><code>{p.short}</code> '
            f"{escape(p.title or p.subject)}</h3><p class=\"muted\"><span class=\"badge {escape(p.status)}\">"
            f"{escape(p.status)}</span>{escape(p.date or '')} · evolver {escape(p.evolver or '?')}"
            f"{' · branch ' + escape(p.branch) if p.branch else ''} · {base} · pass rate "
            f"{_pct(p.baseline_pass_rate)} → {_pct(p.pass_rate)}{_commit_link(report, p.commit)}</p>"
            f"{'<ul>' + reasons + '</ul>' if reasons else ''}"
            f"<p>P→F: {_ids(p.broke, 'broke')} · F→P: {_ids(p.fixed, 'fixed')}</p></article>")


def _versions(report: Report) -> str:
    body = "".join(_version(report, v) for v in reversed(report.versions))
    return f'<section id="versions"><h2>Versions, newest first</h2>{body}</section>'


def _version(report: Report, v: Version) -> str:
    css = "version promoted" if v.promotion else "version"
    decision = (f'<span class="badge {escape(v.decision)}">{escape(v.decision)}</span>' if v.decision
                else '<span class="badge">not gated</span>')
    meta = (f"{decision}{escape(v.date)} · evolver {escape(v.evolver or ('?' if v.aevolve else 'none: by hand'))}"
            + (f" · proposal <code>{escape(v.proposal_id)}</code>" if v.proposal_id else "")
            + f" · pass rate {_pct(v.pass_rate)}"
            + (f" ({_signed(v.gain)})" if v.gain is not None and v.decision else "")
            + (" <span class=\"muted\">(measured as the next commit's baseline)</span>"
               if v.measured == "next commit's baseline" else "") + _commit_link(report, v.commit))
    return (f'<article class="{css}" id="c-{v.commit}"><h3><code>{v.short}</code> {escape(v.title or v.subject)}</h3>'
            f'<p class="muted">{meta} · <a href="#c-{v.commit}-rationale">rationale</a> · '
            f'<a href="#c-{v.commit}-flips">flips</a> · <a href="#c-{v.commit}-files">files</a></p>'
            f"{_rationale(v)}{_flips(v)}{_files(v)}</article>")


def _rationale(v: Version) -> str:
    sections = [("Diagnosis", v.rationale.get("diagnosis")), ("Change", v.rationale.get("change")),
                ("Expected effect", v.rationale.get("expected_effect"))]
    inner = "".join(f'<h4>{name}</h4><p class="text">{escape(body)}</p>' for name, body in sections if body)
    if v.evidence:
        inner += f"<h4>Evidence</h4><p>{_ids(v.evidence, 'evidence')}</p>"
    if v.reasons:
        inner += "<h4>Gate</h4><ul>" + "".join(f"<li>{escape(r)}</li>" for r in v.reasons) + "</ul>"
    if not inner:
        inner = '<p class="muted">No rationale: not made by aevolve.</p>'
    return f'<div id="c-{v.commit}-rationale">{inner}</div>'


def _flips(v: Version) -> str:
    if v.start or not v.decision:
        return f'<div id="c-{v.commit}-flips"></div>'
    return (f'<div id="c-{v.commit}-flips"><h4>Flips</h4><p>F→P (fixed): {_ids(v.fixed, "fixed")}<br>'
            f'P→F (broke): {_ids(v.broke, "broke")}</p></div>')


def _files(v: Version) -> str:
    items = "".join(f'<li><code>{escape(f["status"])} {escape(f["path"])}</code></li>' for f in v.files)
    more = f'<p class="muted">and {v.files_more} more file(s)</p>' if v.files_more else ""
    listed = f'<ul class="files">{items}</ul>{more}' if items else '<p class="muted">no file changed</p>'
    return f'<div id="c-{v.commit}-files"><h4>Changed files</h4>{listed}</div>'
