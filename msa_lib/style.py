"""How the book's tables and figures look: one place, so every page reads like a paper.

Tables
------
:func:`styled` turns a results table into a self-contained, deterministic pandas ``Styler``:

* **Cells** are either numbers or strings as printed by :func:`msa_lib.metrics.format_mean_std`
  (``"53.46 ± 22.30"``), e.g. the frames of :func:`msa_lib.report.condition_table`,
  :func:`msa_lib.report.auilc_table` and :func:`msa_lib.report.beside`. Numbers are printed with
  the metric's decimals (:func:`msa_lib.metrics.metric_spec`); strings are kept as they are. Numbers
  are taken as printed on the page (accuracies already in %), unless ``fractions=True`` (values
  as :mod:`msa_lib.metrics` returns them; our columns are then multiplied by 100 where the spec
  says %). Ranking uses the **printed** mean -- the number before "±" -- so what is bold is what
  the reader sees, and values tied at the printed precision are bold together.
* **Metric of a cell**: the last word of its column label that is a metric name
  (``"UMDF w/o L_fea F1_non0"`` -> ``F1_non0``), or, when no column names a metric and every row
  label is one (the ``.T`` of an AUILC table, a per-metric table), the row label. ``metrics=``
  overrides it per column.
* **Reported (paper) columns**: labels containing ``reported`` (``beside``'s labels). Each is
  moved right after our column of the same model and metric (or after the metric's last column of
  ours), shaded light grey, and its header says ``reported_label`` ("paper"). Never bold.
* **Best**: bold per metric, respecting the metric's direction (MAE: lower is better), on our
  cells only -- never on reported columns nor on ``reference_rows`` (majority / mean predictor,
  ridge probe), which are set in italics below a rule at the end of the table (of their group
  for a row MultiIndex). ``best="row"`` compares our columns of the same metric within each row
  (models are columns: condition tables); ``best="column"`` compares the rows of each column
  (models are rows: AUILC tables); ``"auto"`` picks ``"row"`` when a metric has two columns of
  ours or metrics are rows, else ``"column"``. Nothing is bold when fewer than two values compete
  or all tie.
* **Header**: when a metric has several columns, a two-level header (metric with unit and
  direction arrow on top, model / "paper" below) instead of the long ``"<model> <metric>"``
  labels; index and column names are hidden.
* **Width**: compact font, cells never wrap (``white-space: nowrap``), column headers may wrap
  between words only when the table would overflow. A table still too wide for the column
  (≈ 750-850 px: about 7 "mean ± std" columns) is split into column groups with
  :func:`styled_parts` (metric groups and model/paper pairs stay together, bold is computed on
  the whole table) or shown transposed with ``transpose=True``.
* **Deterministic HTML**: inline CSS via ``set_table_styles`` and a uuid derived from the
  table's content (or given), so re-running gives byte-identical HTML and two different tables
  on a page never share CSS ids.

:func:`show` displays stylers (or frames) with that HTML as ``text/html`` and a stable,
address-free, padding-free text as ``text/plain`` (what nbval compares).

Figures
-------
:data:`PALETTE` (Okabe-Ito), :data:`LINESTYLES`, :data:`MARKERS`, :func:`series_style`,
:func:`use_book_style` (rcParams: readable at column width, SVG inline), :func:`figure_grid`
(a layout that fits the column) with :func:`shared_legend`, and :func:`chance_line`.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from .metrics import MetricSpec, metric_spec

__all__ = [
    "BOOK_RC",
    "FIGURE_WIDTH",
    "LINESTYLES",
    "MARKERS",
    "PALETTE",
    "chance_line",
    "figure_grid",
    "glue_figure",
    "series_style",
    "shared_legend",
    "show",
    "styled",
    "styled_parts",
    "table_text",
    "use_book_style",
]

Best = Literal["auto", "row", "column"]

#: Printed for a missing value (a condition the paper did not report).
NA = "–"
_NUMBER = re.compile(r"^\s*([-+−]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")

#: Inline CSS of every table (selectors are scoped to the table's id by pandas, which outranks the
#: theme's and myst-nb's table rules). Rules use ``currentColor`` and the shading a translucent grey,
#: so both read in the theme's light and dark modes.
_BASE_CSS: list[dict[str, str]] = [
    {"selector": "", "props": "border-collapse: collapse; table-layout: auto; font-size: 0.8em; line-height: 1.3;"
                              " margin: 0.4em 0 0.8em 0; border-top: 1.5px solid currentColor;"
                              " border-bottom: 1.5px solid currentColor; font-variant-numeric: tabular-nums;"},
    {"selector": "tr", "props": "background: transparent;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; font-size: 1em; padding: 0 0 0.3em 0;"
                                     " white-space: normal;"},
    {"selector": "th, td", "props": "padding: 2px 7px; border: none; background: transparent;"},
    {"selector": "td", "props": "white-space: nowrap; text-align: right;"},
    {"selector": "th.row_heading", "props": "white-space: nowrap; text-align: left; font-weight: normal;"},
    {"selector": "th.col_heading", "props": "white-space: normal; text-align: center; font-weight: bold;"
                                            " vertical-align: bottom;"},
    {"selector": "thead tr:last-child th", "props": "border-bottom: 1px solid currentColor;"},
]
_CSS = {
    "bold": "font-weight: bold;",
    "paper": "background-color: rgba(127, 127, 127, 0.15);",
    "reference": "font-style: italic;",
    "rule_row": "border-top: 1px solid rgba(127, 127, 127, 0.8);",
    "rule_col": "border-left: 1px solid rgba(127, 127, 127, 0.8);",
    "group": "border-bottom: 1px solid rgba(127, 127, 127, 0.6);",
    "gap": "padding-left: 1.4em;",
}


# ---------------------------------------------------------------------------------------------
# reading a table: metric, reported or ours, printed value of every cell
# ---------------------------------------------------------------------------------------------

def _spec(name: str) -> MetricSpec | None:
    try:
        return metric_spec(name)
    except ValueError:
        return None


def _label(x: Any) -> str:
    return " ".join(str(v) for v in x) if isinstance(x, tuple) else str(x)


def _metric_in(label: str) -> str | None:
    """The last word of ``label`` that is a metric name, or None."""
    for word in reversed(label.split()):
        if _spec(word) is not None:
            return word
    return None


def _without(label: str, word: str | None) -> str:
    """``label`` with the last occurrence of the word ``word`` removed, spaces squeezed."""
    words = label.split()
    if word is not None and word in words:
        del words[len(words) - 1 - words[::-1].index(word)]
    return " ".join(words)


def _header(metric: str, arrows: bool, units: bool) -> str:
    spec = metric_spec(metric)
    return metric + (spec.unit if units else "") + ((" ↑" if spec.higher else " ↓") if arrows else "")


def _printed(value: Any, metric: str | None, scale: bool) -> str:
    """A cell as the page prints it."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)) or value is pd.NA:
        return NA
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if metric is None:
        return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)
    spec = metric_spec(metric)
    return f"{float(value) * (spec.scale if scale else 1.0):.{spec.decimals}f}"


def _mean_of(text: str) -> float | None:
    """The printed mean of a cell ("53.46 ± 22.30" -> 53.46), None if it has none."""
    m = _NUMBER.match(text)
    return float(m.group(1).replace("−", "-")) if m else None


@dataclass
class _Layout:
    """A table ready to render: printed strings plus which cells get which look."""

    display: pd.DataFrame
    bold: set[tuple[int, int]] = field(default_factory=set)
    paper_cols: list[int] = field(default_factory=list)
    paper_rows: list[int] = field(default_factory=list)
    reference_rows: list[int] = field(default_factory=list)
    reference_cols: list[int] = field(default_factory=list)
    rule_rows: list[int] = field(default_factory=list)
    rule_cols: list[int] = field(default_factory=list)
    gap_cols: list[int] = field(default_factory=list)  # first column of a metric group: more space left
    units: list[list[list[int]]] = field(default_factory=list)  # column groups > units > positions

    def transposed(self) -> "_Layout":
        return _Layout(display=self.display.T, bold={(j, i) for i, j in self.bold},
                       paper_cols=self.paper_rows, paper_rows=self.paper_cols,
                       reference_rows=self.reference_cols, reference_cols=self.reference_rows,
                       rule_rows=self.rule_cols, rule_cols=self.rule_rows,
                       units=[[[j] for j in range(len(self.display.index))]])

    def columns(self, keep: Sequence[int]) -> "_Layout":
        """The same table restricted to the column positions ``keep`` (in that order)."""
        new = {old: k for k, old in enumerate(keep)}
        return _Layout(display=self.display.iloc[:, list(keep)], bold={(i, new[j]) for i, j in self.bold if j in new},
                       paper_cols=[new[j] for j in self.paper_cols if j in new], paper_rows=self.paper_rows,
                       reference_rows=self.reference_rows,
                       reference_cols=[new[j] for j in self.reference_cols if j in new],
                       rule_rows=self.rule_rows, rule_cols=[new[j] for j in self.rule_cols if j in new and new[j]],
                       gap_cols=[new[j] for j in self.gap_cols if j in new and new[j]],
                       units=[[list(range(len(keep)))]])


def _layout(df: pd.DataFrame, *, best: Best | None, reference_rows: Sequence[Any], rule_before: Sequence[Any],
            reported: str, reported_label: str, metrics: Mapping[Any, str] | None,
            directions: Mapping[str, str] | None, fractions: bool, arrows: bool, units: bool) -> _Layout:
    if best not in (None, "auto", "row", "column"):
        raise ValueError(f"best must be 'auto', 'row', 'column' or None; got {best!r}")
    for d in (directions or {}).values():
        if d not in ("max", "min"):
            raise ValueError(f"directions values must be 'max' or 'min'; got {d!r}")
    df = df.copy()
    if isinstance(df.columns, pd.MultiIndex):
        df.columns = [_label(c) for c in df.columns]
    labels = [str(c) for c in df.columns]
    if len(set(labels)) != len(labels):
        raise ValueError(f"column labels must be unique; got {labels}")
    df.columns = labels
    metrics = dict(metrics or {})
    col_metric = {c: metrics.get(c, _metric_in(c)) for c in labels}
    is_paper = {c: reported.lower() in c.lower() for c in labels}

    # metrics are rows (e.g. auilc_table(...).T): no column names one, every row label does
    row_metrics = (not any(col_metric.values()) and not isinstance(df.index, pd.MultiIndex)
                   and len(df.index) > 0 and all(_spec(str(r)) is not None for r in df.index))

    # --- rows: reference rows last (of their first-level group), then mark rules
    def is_ref(label: Any) -> bool:
        return label in reference_rows or (isinstance(label, tuple) and label[-1] in reference_rows)

    group_of = (lambda lab: lab[0]) if isinstance(df.index, pd.MultiIndex) else (lambda lab: None)
    first_pos: dict[Any, int] = {}
    for k, lab in enumerate(df.index):
        first_pos.setdefault(group_of(lab), k)
    order = sorted(range(len(df.index)), key=lambda k: (first_pos[group_of(df.index[k])], is_ref(df.index[k]), k))
    df = df.iloc[order]
    ref_rows = [i for i, lab in enumerate(df.index) if is_ref(lab)]
    rules = [i for i in range(1, len(df.index))
             if (i in ref_rows and i - 1 not in ref_rows)
             or df.index[i] in rule_before or (isinstance(df.index[i], tuple) and df.index[i][-1] in rule_before)
             or group_of(df.index[i]) != group_of(df.index[i - 1])]

    # --- columns: each metric's columns together, a paper column right after our column of its model
    ours_model = {c: _without(c, col_metric[c]) for c in labels if not is_paper[c]}
    paper_model = {c: c[:c.lower().index(reported.lower())].strip() for c in labels if is_paper[c]}
    groups: list[list[list[str]]] = []  # groups (one per metric, or a lone column) > units > labels
    seen: set[str] = set()
    for c in labels:
        if c in seen:
            continue
        m = col_metric[c]
        members = [c] if m is None else [x for x in labels if col_metric[x] == m]
        kept = [[x] for x in members if not is_paper[x]]
        for p in (x for x in members if is_paper[x]):
            home = [u for u in kept if not is_paper[u[0]] and ours_model[u[0]] == paper_model[p]]
            if home:
                home[0].append(p)
            elif kept:
                kept[-1].append(p)
            else:
                kept.append([p])
        groups.append(kept)
        seen.update(members)
    ordered = [c for g in groups for u in g for c in u]
    # reference models as columns (condition tables: one column per model): never bold, in italics
    ref_cols = {c for c in labels if not is_paper[c] and ours_model[c] in reference_rows}

    # --- headers
    two_level = not row_metrics and any(sum(len(u) for u in g) > 1 for g in groups if col_metric[g[0][0]])

    def paper_header(c: str, follows_model: bool) -> str:
        rest = _without(c[c.lower().index(reported.lower()) + len(reported):].strip(), col_metric[c])
        who = "" if follows_model else paper_model[c]
        return " ".join(x for x in (who, reported_label, rest) if x)

    headers: list[Any] = []
    for g in groups:
        for u in g:
            for k, c in enumerate(u):
                m = col_metric[c]
                if is_paper[c]:
                    follows = k > 0 and two_level and ours_model[u[0]] == paper_model[c]
                    sub = paper_header(c, follows)
                elif m is not None and c == m:
                    sub = ""
                else:
                    sub = ours_model[c] if m is not None and two_level else c
                if two_level:
                    headers.append((_header(m, arrows, units) if m else c, sub if m else ""))
                elif m is not None and not is_paper[c] and c == m:
                    headers.append(_header(m, arrows, units))
                else:
                    headers.append(sub if is_paper[c] else c)
    # several "paper" headers under one metric are fine: each sits right after its model's column
    columns: pd.Index = pd.MultiIndex.from_tuples(headers) if two_level else pd.Index(headers)
    pos = {c: j for j, c in enumerate(ordered)}

    # --- printed cells
    def metric_at(i: int, c: str) -> str | None:
        return str(df.index[i]) if row_metrics else col_metric[c]

    display = pd.DataFrame(
        [[_printed(df[c].iloc[i], metric_at(i, c), fractions and not is_paper[c]) for c in ordered]
         for i in range(len(df.index))], columns=columns)
    display.index = (pd.Index([_header(str(r), arrows, units) for r in df.index]) if row_metrics else df.index)

    # --- the best of our cells
    bold: set[tuple[int, int]] = set()
    mode = best
    if best == "auto":
        mode = "row" if row_metrics or any(sum(1 for u in g for c in u if not is_paper[c]) > 1
                                           for g in groups if col_metric[g[0][0]]) else "column"
    if mode is not None:
        candidates: dict[Any, list[tuple[int, int, float, bool]]] = {}
        for c in ordered:
            if is_paper[c] or c in ref_cols:
                continue
            for i in range(len(df.index)):
                if i in ref_rows:
                    continue
                m = metric_at(i, c)
                direction = (directions or {}).get(c) or (directions or {}).get(m or "")
                if direction is None and m is None:
                    continue
                higher = direction == "max" if direction else metric_spec(m).higher  # type: ignore[arg-type]
                value = _mean_of(display.iat[i, pos[c]])
                if value is None or not math.isfinite(value):
                    continue
                key = (i, m if m else c) if mode == "row" else (c, m, group_of(df.index[i]))
                candidates.setdefault(key, []).append((i, pos[c], value, higher))
        for cells in candidates.values():
            values = [v if h else -v for _, _, v, h in cells]
            if len(cells) > 1 and len(set(values)) > 1:
                top = max(values)
                bold |= {(i, j) for (i, j, _, _), v in zip(cells, values) if v == top}

    units_pos = [[[pos[c] for c in u] for u in g] for g in groups]
    gaps = [g[0][0] for g in units_pos[1:]] if two_level else []
    return _Layout(display=display, bold=bold, paper_cols=[pos[c] for c in ordered if is_paper[c]],
                   reference_rows=ref_rows, reference_cols=[pos[c] for c in ordered if c in ref_cols],
                   rule_rows=rules, gap_cols=gaps, units=units_pos)


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------

def _uuid(layout: _Layout, caption: str | None) -> str:
    text = layout.display.to_csv() + repr(caption) + repr([sorted(layout.bold), layout.paper_cols, layout.paper_rows,
                                                           layout.reference_rows, layout.reference_cols,
                                                           layout.rule_rows, layout.rule_cols, layout.gap_cols])
    return "msa-" + hashlib.sha1(text.encode()).hexdigest()[:12]


def _styler(layout: _Layout, caption: str | None, uuid: str | None) -> Styler:
    d = layout.display
    col_levels = d.columns.nlevels
    row_levels = d.index.nlevels
    rules: dict[str, list[str]] = {k: [] for k in _CSS}
    for i, j in sorted(layout.bold):
        rules["bold"].append(f"td.row{i}.col{j}")
    for j in layout.paper_cols:
        rules["paper"] += [f"td.col{j}", f"th.col_heading.level{col_levels - 1}.col{j}"]
    for i in layout.paper_rows:
        rules["paper"] += [f"td.row{i}", f"th.row_heading.level{row_levels - 1}.row{i}"]
    for i in layout.reference_rows:
        rules["reference"] += [f"td.row{i}", f"th.row_heading.row{i}"]
    for j in layout.reference_cols:
        rules["reference"] += [f"td.col{j}", f"th.col_heading.col{j}"]
    for i in layout.rule_rows:
        rules["rule_row"] += [f"td.row{i}", f"th.row_heading.row{i}"]
    for j in layout.rule_cols:
        rules["rule_col"] += [f"td.col{j}", f"th.col_heading.level{col_levels - 1}.col{j}"]
    for j in layout.gap_cols:
        rules["gap"] += [f"td.col{j}", f"th.col_heading.level{col_levels - 1}.col{j}"]
    if col_levels > 1:
        rules["group"] += [f"th.col_heading.level{k}" for k in range(col_levels - 1)]
    styles = list(_BASE_CSS) + [{"selector": ", ".join(sel), "props": _CSS[k]} for k, sel in rules.items() if sel]
    st = Styler(d, uuid=uuid or _uuid(layout, caption), cell_ids=False, escape="html", caption=caption)
    st.set_table_styles(styles)
    st.hide(axis="index", names=True)
    st.hide(axis="columns", names=True)
    return st


def _options(best: Best | None, reference_rows: Sequence[Any], rule_before: Sequence[Any], reported: str,
             reported_label: str, metrics: Mapping[Any, str] | None, directions: Mapping[str, str] | None,
             fractions: bool, arrows: bool, units: bool) -> dict[str, Any]:
    return dict(best=best, reference_rows=tuple(reference_rows), rule_before=tuple(rule_before), reported=reported,
                reported_label=reported_label, metrics=metrics, directions=directions, fractions=fractions,
                arrows=arrows, units=units)


def styled(df: pd.DataFrame, *, caption: str | None = None, best: Best | None = "auto",
           reference_rows: Sequence[Any] = (), rule_before: Sequence[Any] = (), reported: str = "reported",
           reported_label: str = "paper", metrics: Mapping[Any, str] | None = None,
           directions: Mapping[str, str] | None = None, fractions: bool = False, arrows: bool = True,
           units: bool = True, transpose: bool = False, uuid: str | None = None, prose: bool = False) -> Styler:
    """A results table styled for the book (see the module docstring for the conventions).

    Args:
        df: rows = conditions / variants / metrics (a row MultiIndex such as dataset / condition is
            fine), flat unique column labels; cells numbers or printed "mean ± std" strings.
        caption: table caption (Markdown is not rendered inside it; plain text).
        best: where the best value is looked for -- ``"row"`` (our columns of the same metric in
            each row), ``"column"`` (the rows of each column, per first-level row group), ``"auto"``
            or ``None`` (no bold).
        reference_rows: labels of rows -- or models of columns -- that are references, not models
            (``"majority predictor"``,
            ``"ridge probe"``); for a row MultiIndex the last level is matched too. Italic, last,
            below a rule, never bold.
        rule_before: row labels to draw a thin rule above (e.g. ``("Avg",)``).
        reported: the word that marks a paper column (``beside``'s ``"... reported ..."``).
        reported_label: what the header says instead (``"paper"``).
        metrics: ``{column label: metric name}`` where the label does not name the metric.
        directions: ``{column label or metric name: "max" | "min"}``: overrides the spec's direction,
            and makes a column that is not a library metric (``"5-NN accuracy"``) rankable.
        fractions: numbers in our columns are fractions as :mod:`msa_lib.metrics` returns them
            (multiplied by 100 for % metrics); default: already as printed. Paper columns never.
        arrows: add ↑ / ↓ (higher / lower is better) to metric headers.
        units: add " (%)" to the headers of % metrics (``False`` for AUILC tables, whose areas are
            not percentages).
        transpose: swap rows and columns after the layout (for tables with many columns and few
            rows); bold, shading and italics follow.
        uuid: the table id; default: a hash of the content, so the HTML is byte-identical across runs.
        prose: cells are sentences (claims, verdicts, status): they wrap and align left, so the
            table fits the column.

    Returns:
        A ``Styler`` whose data are the printed strings (``styler.data``).

    Example::

        show(styled(beside(condition_table(res, ["MAE", "F1_non0"]), rows, "UMDF reported {metric}"),
                    rule_before=("Avg",)))
    """
    layout = _layout(df, **_options(best, reference_rows, rule_before, reported, reported_label, metrics, directions,
                                    fractions, arrows, units))
    if transpose:
        layout = layout.transposed()
    st = _styler(layout, caption, uuid)
    if prose:
        st.set_table_styles([{"selector": "", "props": "width: 100%; box-sizing: border-box;"},
                             {"selector": "td, th, th.row_heading", "props": "white-space: normal; text-align: left;"}],
                            overwrite=False)
    return st


def styled_parts(df: pd.DataFrame, max_columns: int = 6, *, caption: str | None = None, best: Best | None = "auto",
                 reference_rows: Sequence[Any] = (), rule_before: Sequence[Any] = (), reported: str = "reported",
                 reported_label: str = "paper", metrics: Mapping[Any, str] | None = None,
                 directions: Mapping[str, str] | None = None, fractions: bool = False, arrows: bool = True,
                 units: bool = True, uuid: str | None = None) -> list[Styler]:
    """:func:`styled` split into column groups of at most ``max_columns`` data columns, for tables
    wider than the page. A metric's columns stay together when they fit, a model's column and its
    paper column always; bold is decided on the whole table. The caption goes on the first part,
    later parts say "(continued)". Display with ``show(*styled_parts(...))``."""
    if max_columns < 1:
        raise ValueError(f"max_columns must be >= 1; got {max_columns}")
    layout = _layout(df, **_options(best, reference_rows, rule_before, reported, reported_label, metrics, directions,
                                    fractions, arrows, units))
    parts: list[list[int]] = []
    current: list[int] = []
    for group in layout.units:
        flat = [j for u in group for j in u]
        if len(current) + len(flat) <= max_columns:
            current += flat
            continue
        if current and len(flat) <= max_columns:
            parts.append(current)
            current = list(flat)
            continue
        for unit in group:
            if current and len(current) + len(unit) > max_columns:
                parts.append(current)
                current = []
            current += unit
    if current:
        parts.append(current)
    base = uuid or _uuid(layout, caption)
    return [_styler(layout.columns(keep), caption if k == 0 else "(continued)" if caption else None,
                    f"{base}-{k}" if len(parts) > 1 else base)
            for k, keep in enumerate(parts)]


# ---------------------------------------------------------------------------------------------
# display: styled HTML, and a text/plain that nbval can compare
# ---------------------------------------------------------------------------------------------

def table_text(obj: Styler | pd.DataFrame) -> str:
    """A stable plain-text rendering: caption, shape, header lines and rows with cells joined by
    " | " (no padding, so widths of numbers never shift the text; no memory address)."""
    st = obj if isinstance(obj, Styler) else None
    data = st.data if st is not None else obj
    if st is not None and not all(isinstance(v, str) for v in np.ravel(data.to_numpy())):
        text = st.to_string(delimiter=" | ").rstrip("\n")  # someone else's styler: its own formats
        return (f"Table: {st.caption}\n" if isinstance(st.caption, str) else "") + text
    if isinstance(data, pd.Series):
        data = data.to_frame()
    hide_index = st is not None and all(getattr(st, "hide_index_", [False]))
    lines = []
    caption = getattr(st, "caption", None) if st is not None else None
    if caption:
        lines.append(f"Table: {caption if isinstance(caption, str) else caption[0]}")
    lines.append(f"[{data.shape[0]} rows x {data.shape[1]} columns]")
    blank = [] if hide_index else [""] * data.index.nlevels
    for level in range(data.columns.nlevels):
        lines.append(" | ".join(blank + [str(c[level] if isinstance(c, tuple) else c) for c in data.columns]))
    for label, row in zip(data.index, data.itertuples(index=False)):
        head = [] if hide_index else [str(x) for x in (label if isinstance(label, tuple) else (label,))]
        lines.append(" | ".join(head + [_printed(v, None, False) for v in row]))
    return "\n".join(lines)


class _Shown:
    """Displayed as the tables' HTML (text/html) and their :func:`table_text` (text/plain)."""

    def __init__(self, html: str, text: str) -> None:
        self.html, self.text = html, text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def show(*tables: Styler | pd.DataFrame, **styled_options: Any) -> None:
    """Display one or more tables (stylers; data frames are passed through :func:`styled` with
    ``styled_options``) as one output: styled HTML, and a stable text/plain (:func:`table_text`).
    Returns None, so it can end a cell. Outside IPython it prints the text."""
    stylers = [t if isinstance(t, Styler) else styled(t, **styled_options) for t in tables]
    shown = _Shown("\n".join(s.to_html() for s in stylers), "\n\n".join(table_text(s) for s in stylers))
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a book dependency
        print(shown.text)
        return
    if get_ipython() is None:
        print(shown.text)
    else:
        display(shown)


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------

#: Okabe & Ito's colour-blind-safe palette (orange, sky blue, bluish green, yellow, blue,
#: vermillion, reddish purple, black).
PALETTE: dict[str, str] = {
    "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7", "black": "#000000",
}
#: Series colours in order of use (yellow left out: too light for lines on white).
_SERIES_COLORS: tuple[str, ...] = tuple(PALETTE[k] for k in ("blue", "vermillion", "bluish green", "reddish purple",
                                                             "orange", "sky blue", "black"))
#: Line styles, cycled independently of the colours (7 colours x 4 styles: 28 distinct pairs).
LINESTYLES: tuple[Any, ...] = ("-", "--", "-.", ":")
#: Markers (cycled with period 6).
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P")

#: Widest figure in inches: drawn at its natural size (96 px/in) it stays under the ≈ 750 px
#: content column, so it is never scaled down and 9 pt text stays 9 pt (12 px).
FIGURE_WIDTH = 7.5
_CHANCE_COLOR = "0.45"


def series_style(i: int) -> dict[str, Any]:
    """Matplotlib keyword arguments (``color``, ``linestyle``, ``marker``) of the ``i``-th series:
    ``ax.plot(x, y, label=name, **series_style(i))``. Distinct (colour, line style) pairs for 28
    series; the book's default property cycle (:func:`use_book_style`) follows the same order."""
    return {"color": _SERIES_COLORS[i % len(_SERIES_COLORS)], "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "marker": MARKERS[i % len(MARKERS)]}


def _cycle() -> Any:
    from cycler import cycler

    n = len(_SERIES_COLORS) * len(LINESTYLES)
    return cycler(color=[series_style(i)["color"] for i in range(n)],
                  linestyle=[series_style(i)["linestyle"] for i in range(n)])


#: The book's rcParams (also usable as ``plt.rc_context(BOOK_RC)``; the property cycle is added
#: by :func:`use_book_style`).
BOOK_RC: dict[str, Any] = {
    "figure.figsize": (FIGURE_WIDTH, 3.0),
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 11,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "0.88",
    "grid.linewidth": 0.6,
    "grid.linestyle": "-",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.5,
    "lines.markersize": 4.5,
    "legend.frameon": False,
    "svg.hashsalt": "msa-book",  # deterministic SVG ids
}


def use_book_style(svg: bool = True) -> None:
    """Apply :data:`BOOK_RC` and the series property cycle; in IPython, also switch inline
    figures to SVG (sharp at any zoom, date-free so re-runs give the same output)."""
    import matplotlib as mpl

    mpl.rcParams.update(BOOK_RC)
    mpl.rcParams["axes.prop_cycle"] = _cycle()
    if not svg:
        return
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("svg", metadata={"Date": None})


def _grid_shape(n_panels: int, ncols: int | None) -> tuple[int, int]:
    if n_panels < 1:
        raise ValueError(f"n_panels must be >= 1; got {n_panels}")
    cols = ncols or {1: 1, 2: 2, 4: 2}.get(n_panels, 3)
    return math.ceil(n_panels / cols), cols


def figure_grid(n_panels: int, *, ncols: int | None = None, width: float = FIGURE_WIDTH, aspect: float = 0.7,
                sharex: bool = False, sharey: bool = False) -> tuple[Any, list[Any]]:
    """A constrained-layout figure of ``n_panels`` axes that fits the column: at most 3 per row,
    4 panels as 2 x 2; panel height ``aspect`` x panel width (kept within 1.8-3.2 in). Unused grid
    cells are removed. Put one legend below all panels with :func:`shared_legend`.

    Returns:
        ``(figure, axes)`` with ``axes`` a flat list of ``n_panels`` axes, row by row.
    """
    import matplotlib.pyplot as plt

    rows, cols = _grid_shape(n_panels, ncols)
    height = min(3.2, max(1.8, width / cols * aspect))
    fig, grid = plt.subplots(rows, cols, figsize=(width, rows * height + 0.4), squeeze=False, sharex=sharex,
                             sharey=sharey, layout="constrained")
    axes = list(grid.flat)
    for ax in axes[n_panels:]:
        ax.remove()
    return fig, axes[:n_panels]


def shared_legend(fig: Any, axes: Sequence[Any] | None = None, ncol: int | None = None, **kwargs: Any) -> Any:
    """One legend below the panels of ``fig`` (entries of all ``axes``, first label wins), replacing
    the axes' own legends. Returns the legend, or None when nothing is labelled."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    handles: dict[str, Any] = {}
    for ax in axes if axes is not None else fig.axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if not handles:
        return None
    options: dict[str, Any] = {"ncol": ncol or min(len(handles), 4), "frameon": False}
    if isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        options["loc"] = "outside lower center"
    else:
        options.update(loc="upper center", bbox_to_anchor=(0.5, 0.0))
    options.update(kwargs)
    return fig.legend(list(handles.values()), list(handles), **options)


def chance_line(ax: Any, value: float, label: str = "chance", *, color: str = _CHANCE_COLOR) -> Any:
    """A dashed grey horizontal line at ``value`` (in the axis' units, e.g. % for accuracies)
    labelled at its right end inside the axes; kept out of the legend. Returns the line."""
    line = ax.axhline(value, linestyle=(0, (4, 3)), linewidth=1.0, color=color, zorder=1.5, label=f"_{label}")
    ax.text(0.99, value, label, transform=ax.get_yaxis_transform(), ha="right", va="bottom", color=color,
            fontsize="small")
    return line


def glue_figure(name: str, fig: Any) -> None:
    """Glue ``fig`` under ``name`` for a ``{glue:figure}`` block (numbered, cross-referenceable) and
    close it, so the page shows it once: where the block is, not also below the cell."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    glue(name, fig, display=False)
    plt.close(fig)
