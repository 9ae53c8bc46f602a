"""The book's table and figure style (msa_lib.style): bold on the right cell, paper columns beside
ours, the spec's decimals, deterministic HTML, a stable text/plain, and figures that fit the column."""
from __future__ import annotations

import configparser
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib as mpl  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from IPython.core.formatters import DisplayFormatter  # noqa: E402

from msa_lib import style  # noqa: E402
from msa_lib.metrics import format_mean_std  # noqa: E402
from msa_lib.style import (  # noqa: E402
    chance_line,
    figure_grid,
    series_style,
    shared_legend,
    show,
    styled,
    styled_parts,
    table_text,
    use_book_style,
)

CONDITIONS = ["{l}", "{a}", "Avg", "{l,a,v}"]


def ms(metric: str, mean: float, std: float = 0.01) -> str:
    return format_mean_std(metric, mean, std)


def condition_frame() -> pd.DataFrame:
    """Shaped like report.beside(report.condition_table(...), reported(...), "UMDF reported {metric}")."""
    return pd.DataFrame({
        "UMDF MAE": [ms("MAE", 1.20), ms("MAE", 1.30), ms("MAE", 1.10), ms("MAE", 1.00)],
        "TFN (complete-trained) MAE": [ms("MAE", 1.25), ms("MAE", 1.28), ms("MAE", 1.10), ms("MAE", 1.20)],
        "UMDF F1_non0": [ms("F1_non0", 0.60), ms("F1_non0", 0.50), ms("F1_non0", 0.70), ms("F1_non0", 0.40)],
        "TFN (complete-trained) F1_non0": [ms("F1_non0", 0.55), ms("F1_non0", 0.52), ms("F1_non0", 0.70),
                                           ms("F1_non0", 0.45)],
        # the paper is better everywhere: it must never be bold
        "UMDF reported MAE": [0.70, 0.80, 0.75, 0.60],
        "UMDF reported F1_non0": [85.0, 80.0, float("nan"), 90.0],
    }, index=pd.Index(CONDITIONS, name="condition"))


def auilc_frame() -> pd.DataFrame:
    """Shaped like report.auilc_table(...) plus a reference row (rows = variants, numbers as printed)."""
    return pd.DataFrame({"MAE": [1.23764, 1.27381, 0.5], "Corr": [0.1256, 0.0714, 0.9],
                         "Acc-2_non0": [56.25, 50.0, 99.0], "F1_non0": [48.05, 53.4, 99.0]},
                        index=pd.Index(["UMDF", "TFN (complete-trained)", "ridge probe"], name="variant"))


def bold_cells(st) -> set[tuple]:
    """(row label, column label) of every bold data cell, read back from the rendered CSS."""
    html = st.to_html()
    out = set()
    for selectors, props in re.findall(r"([^{}]+)\{([^}]*)\}", html):
        if "font-weight: bold" not in props:
            continue
        for i, j in re.findall(r"td\.row(\d+)\.col(\d+)", selectors):
            out.add((st.data.index[int(i)], st.data.columns[int(j)]))
    return out


def shaded_columns(st) -> set:
    html = st.to_html()
    out = set()
    for selectors, props in re.findall(r"([^{}]+)\{([^}]*)\}", html):
        if "background-color: rgba(127, 127, 127, 0.15)" in props:
            out |= {st.data.columns[int(j)] for j in re.findall(r"td\.col(\d+)", selectors)}
    return out


# ---------------------------------------------------------------------------------------------
# bold
# ---------------------------------------------------------------------------------------------

def test_bold_is_the_min_for_mae_and_the_max_for_f1_per_row_never_the_paper():
    st = styled(condition_frame())
    mae, f1 = "MAE ↓", "F1_non0 (%) ↑"
    assert bold_cells(st) == {
        ("{l}", (mae, "UMDF")), ("{l}", (f1, "UMDF")),
        ("{a}", (mae, "TFN (complete-trained)")), ("{a}", (f1, "TFN (complete-trained)")),
        # Avg: MAE ties and F1 ties at the printed precision -> nothing is better, nothing bold
        ("{l,a,v}", (mae, "UMDF")), ("{l,a,v}", (f1, "TFN (complete-trained)")),
    }
    assert not any(col[1] == "paper" for _, col in bold_cells(st))


def test_bold_per_column_respects_direction_and_skips_reference_rows():
    st = styled(auilc_frame(), reference_rows=["ridge probe"])
    # the ridge probe is best everywhere, but it is a reference
    assert bold_cells(st) == {("UMDF", "MAE ↓"), ("UMDF", "Corr ↑"), ("UMDF", "Acc-2_non0 (%) ↑"),
                              ("TFN (complete-trained)", "F1_non0 (%) ↑")}
    # without naming it, it would win: the check above can fail
    assert ("ridge probe", "MAE ↓") in bold_cells(styled(auilc_frame()))


def test_reference_rows_go_last_in_italics_below_a_rule():
    df = auilc_frame().iloc[[2, 0, 1]]  # the reference first
    st = styled(df, reference_rows=["ridge probe"])
    assert list(st.data.index) == ["UMDF", "TFN (complete-trained)", "ridge probe"]
    html = st.to_html()
    assert re.search(r"td\.row2 \{\s*font-style: italic", html)
    assert re.search(r"td\.row2 \{\s*border-top", html)


def test_reference_rows_last_within_each_dataset_and_best_per_dataset():
    a = auilc_frame()
    b = auilc_frame().assign(MAE=[2.0, 1.0, 0.1])
    df = pd.concat({"MOSI": a.iloc[[2, 0, 1]], "MOSEI": b}, names=["dataset"])
    st = styled(df, reference_rows=["ridge probe"], best="column")
    assert list(st.data.index) == [("MOSI", "UMDF"), ("MOSI", "TFN (complete-trained)"), ("MOSI", "ridge probe"),
                                   ("MOSEI", "UMDF"), ("MOSEI", "TFN (complete-trained)"), ("MOSEI", "ridge probe")]
    mae_bold = {row for row, col in bold_cells(st) if col == "MAE ↓"}
    assert mae_bold == {("MOSI", "UMDF"), ("MOSEI", "TFN (complete-trained)")}


def test_metrics_as_rows_rank_across_columns():
    """auilc_table(...).T beside the paper: rows are metrics, models are columns."""
    df = auilc_frame().drop("ridge probe").T.rename_axis("metric")
    df["TFN reported (MITR-DNet Tab. I)"] = [0.9, 0.7, 80.0, 79.0]
    st = styled(df)
    assert list(st.data.index) == ["MAE ↓", "Corr ↑", "Acc-2_non0 (%) ↑", "F1_non0 (%) ↑"]
    assert list(st.data.columns) == ["UMDF", "TFN (complete-trained)", "TFN paper (MITR-DNet Tab. I)"]
    assert bold_cells(st) == {("MAE ↓", "UMDF"), ("Corr ↑", "UMDF"), ("Acc-2_non0 (%) ↑", "UMDF"),
                              ("F1_non0 (%) ↑", "TFN (complete-trained)")}
    assert st.data.loc["MAE ↓", "TFN paper (MITR-DNet Tab. I)"] == "0.900"


def test_directions_override_and_rank_non_metric_columns():
    df = pd.DataFrame({"5-NN accuracy (%)": [45.3, 54.0]}, index=["UMDF", "TFN"])
    assert bold_cells(styled(df)) == set()
    assert bold_cells(styled(df, directions={"5-NN accuracy (%)": "max"})) == {("TFN", "5-NN accuracy (%)")}
    assert bold_cells(styled(auilc_frame().iloc[:2], directions={"MAE": "max"}))  >= {("TFN (complete-trained)",
                                                                                       "MAE ↓")}
    assert bold_cells(styled(auilc_frame(), best=None)) == set()
    with pytest.raises(ValueError):
        styled(df, best="diagonal")


# ---------------------------------------------------------------------------------------------
# decimals, paper columns, header
# ---------------------------------------------------------------------------------------------

def test_decimals_follow_the_metric_spec():
    st = styled(auilc_frame())
    assert st.data.iloc[0].tolist() == ["1.238", "0.126", "56.25", "48.05"]
    frac = pd.DataFrame({"MAE": [0.81234], "Acc-7": [0.3077], "F1_non0": [0.5]}, index=["UMDF"])
    assert styled(frac, fractions=True).data.iloc[0].tolist() == ["0.812", "30.77", "50.00"]
    # strings are printed by format_mean_std already and kept as they are; NaN prints as a dash
    d = styled(condition_frame()).data
    assert d.loc["{l}", ("MAE ↓", "UMDF")] == "1.200 ± 0.010"
    assert d.loc["{l}", ("F1_non0 (%) ↑", "UMDF")] == "60.00 ± 1.00"
    assert d.loc["{l}", ("MAE ↓", "paper")] == "0.700"  # paper numbers: the spec's decimals, never scaled
    assert d.loc["Avg", ("F1_non0 (%) ↑", "paper")] == "–"
    # fractions=True scales our columns only, never the paper's
    df = pd.DataFrame({"UMDF F1": [0.8], "TFN F1": [0.7], "UMDF reported F1": [81.0]})
    assert styled(df, fractions=True).data.iloc[0].tolist() == ["80.00", "81.00", "70.00"]


def test_paper_columns_sit_right_after_our_column_of_the_same_metric_and_model_shaded():
    st = styled(condition_frame())
    assert list(st.data.columns) == [("MAE ↓", "UMDF"), ("MAE ↓", "paper"), ("MAE ↓", "TFN (complete-trained)"),
                                     ("F1_non0 (%) ↑", "UMDF"), ("F1_non0 (%) ↑", "paper"),
                                     ("F1_non0 (%) ↑", "TFN (complete-trained)")]
    assert shaded_columns(st) == {("MAE ↓", "paper"), ("F1_non0 (%) ↑", "paper")}
    html = st.to_html()
    assert re.search(r"th\.col_heading\.level1\.col1 \{\s*background-color: rgba", html)
    # a paper column of a model we did not run goes last in its metric and names the model
    df = condition_frame().drop(columns=["UMDF MAE"]).rename(columns={"UMDF reported MAE": "Self-MM reported MAE"})
    cols = list(styled(df).data.columns)
    assert cols[:2] == [("MAE ↓", "TFN (complete-trained)"), ("MAE ↓", "Self-MM paper")]


def test_header_hides_index_names_and_keeps_single_metric_tables_flat():
    st = styled(auilc_frame())
    assert list(st.data.columns) == ["MAE ↓", "Corr ↑", "Acc-2_non0 (%) ↑", "F1_non0 (%) ↑"]
    html = st.to_html()
    assert ">variant<" not in html and ">condition<" not in styled(condition_frame()).to_html()
    assert ">variant<" in auilc_frame().style.to_html()  # what is hidden
    assert "white-space: nowrap" in html
    assert "↓" not in list(styled(auilc_frame(), arrows=False).data.columns)[0]
    assert list(styled(auilc_frame(), units=False).data.columns)[2] == "Acc-2_non0 ↑"  # AUILC areas are not %
    assert list(styled(pd.DataFrame({0: [1.5], 1: ["x"]})).data.columns) == ["0", "1"]  # any labels


def test_with_the_reports_own_beside_and_reported_tables():
    from msa_lib.report import CONDITIONS as conditions, beside, reported

    ours = pd.DataFrame({f"{v} {m}": [ms(m, 0.5)] * len(conditions) for m in ("MAE", "F1_non0")
                         for v in ("UMDF", "TFN (complete-trained)")},
                        index=pd.Index(list(conditions), name="condition"))
    table = beside(ours, reported("umdf_table1", dataset="MOSI", model="UMDF"), "UMDF reported {metric}")
    st = styled(table, rule_before=("Avg",))
    assert [c[1] for c in st.data.columns] == ["UMDF", "paper", "TFN (complete-trained)"] * 2
    assert shaded_columns(st) == {("MAE ↓", "paper"), ("F1_non0 (%) ↑", "paper")}
    assert all(re.fullmatch(r"\d\.\d{3}", v) for v in st.data[("MAE ↓", "paper")])
    assert all(re.fullmatch(r"\d{2}\.\d{2}", v) for v in st.data[("F1_non0 (%) ↑", "paper")])
    assert bold_cells(st) == set()  # our two models tie everywhere


def test_the_style_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, msa_lib.style; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() \
        == "False"


# ---------------------------------------------------------------------------------------------
# wide tables
# ---------------------------------------------------------------------------------------------

def wide_frame() -> pd.DataFrame:
    variants = ["UMDF", "UMDF w/o L_fea", "UMDF w/o L_logits", "UMDF w/o MCIM"]
    df = pd.DataFrame({f"{v} F1_non0": [ms("F1_non0", 0.5 + 0.01 * k + 0.001 * r) for r in range(4)]
                       for k, v in enumerate(variants)}, index=CONDITIONS)
    for v in variants:
        df[f"{v} reported F1_non0"] = [80.0] * 4
    return df


def test_styled_parts_keeps_pairs_together_and_bold_from_the_whole_table():
    parts = styled_parts(wide_frame(), 3, caption="Table 3.")
    assert [len(p.data.columns) for p in parts] == [2, 2, 2, 2]
    for p in parts:
        assert [c[1] for c in p.data.columns][1] == "paper"
    # the best variant (the last) is bold in every row; no other part has a bold cell
    assert all(not bold_cells(p) for p in parts[:3])
    assert {row for row, _ in bold_cells(parts[3])} == set(CONDITIONS)
    assert parts[0].caption == "Table 3." and parts[1].caption == "(continued)"
    ids = [re.search(r'<table id="([^"]+)"', p.to_html()).group(1) for p in parts]
    assert len(set(ids)) == len(ids)
    assert [len(p.data.columns) for p in styled_parts(wide_frame(), 8)] == [8]


def test_transpose_moves_bold_and_shading_with_the_cells():
    st = styled(wide_frame(), transpose=True)
    assert list(st.data.columns) == CONDITIONS
    assert {col for _, col in bold_cells(st)} == set(CONDITIONS)
    assert {row for row, _ in bold_cells(st)} == {("F1_non0 (%) ↑", "UMDF w/o MCIM")}
    assert re.search(r"td\.row1 \{\s*background-color: rgba", st.to_html())


# ---------------------------------------------------------------------------------------------
# deterministic HTML, stable text/plain
# ---------------------------------------------------------------------------------------------

def test_html_is_byte_identical_across_calls_and_ids_differ_between_tables():
    a1, a2 = styled(condition_frame(), caption="T1").to_html(), styled(condition_frame(), caption="T1").to_html()
    assert a1 == a2
    b = styled(auilc_frame()).to_html()
    id_a, id_b = (re.search(r'<table id="([^"]+)"', h).group(1) for h in (a1, b))
    assert id_a != id_b and id_a.startswith("T_msa-")
    assert "<style" in a1  # self-contained: the CSS travels with the table
    assert styled(auilc_frame(), uuid="fixed").to_html().count('id="T_fixed"') == 1


def _sanitize(text: str) -> str:
    """Apply the nbval sanitizers of tests/nbval_sanitize.cfg, as nbval does."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(Path(__file__).with_name("nbval_sanitize.cfg"))
    for section in cfg.sections():
        text = re.sub(cfg[section]["regex"], cfg[section]["replace"], text)
    return text


def test_show_text_plain_has_no_address_and_does_not_depend_on_the_numbers(monkeypatch):
    shown = []
    import IPython
    import IPython.display

    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    assert show(styled(condition_frame(), caption="Table 1.")) is None
    data, _ = DisplayFormatter().format(shown[0])
    plain, html = data["text/plain"], data["text/html"]
    assert " at 0x" not in plain and "Styler" not in plain
    assert plain.startswith("Table: Table 1.\n[4 rows x 6 columns]")
    assert "{l} | 1.200 ± 0.010 | 0.700 |" in plain
    assert html == styled(condition_frame(), caption="Table 1.").to_html()
    # other numbers (other widths) -> the same sanitized text: no padding that follows the digits
    other = condition_frame().replace({"1.200 ± 0.010": "11.200 ± 10.010"})
    assert _sanitize(table_text(styled(other, caption="Table 1."))) == _sanitize(plain)
    # a data frame is styled first; several tables go out as one output
    show(auilc_frame(), reference_rows=["ridge probe"])
    show(*styled_parts(wide_frame(), 4))
    assert "ridge probe" in repr(shown[1]) and repr(shown[2]).count("[4 rows x 4 columns]") == 2


def test_show_prints_the_text_outside_ipython(capsys):
    show(auilc_frame())
    assert capsys.readouterr().out.startswith("[3 rows x 4 columns]\n | MAE ↓")


def test_table_text_of_someone_elses_styler_uses_its_formats():
    st = pd.DataFrame({"valid MAE": [0.81234]}).style.format({"valid MAE": "{:.3f}"}).hide(axis="index")
    assert table_text(st) == "valid MAE\n0.812"


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------

def test_series_styles_are_distinct_and_colour_blind_safe():
    pairs = [(series_style(i)["color"], series_style(i)["linestyle"]) for i in range(28)]
    assert len(set(pairs)) == 28
    assert len({series_style(i)["color"] for i in range(8)}) >= 7
    assert {series_style(i)["color"] for i in range(28)} <= set(style.PALETTE.values())
    assert series_style(0)["marker"] in style.MARKERS


def test_use_book_style_sets_readable_fonts_and_the_series_cycle():
    with mpl.rc_context():
        use_book_style()
        assert mpl.rcParams["font.size"] >= 9 and mpl.rcParams["xtick.labelsize"] >= 9
        assert mpl.rcParams["legend.fontsize"] >= 9
        assert mpl.rcParams["figure.figsize"][0] <= 7.5 and mpl.rcParams["savefig.dpi"] == 200
        cycle = list(mpl.rcParams["axes.prop_cycle"])
        assert [(c["color"], c["linestyle"]) for c in cycle[:8]] == \
            [(series_style(i)["color"], series_style(i)["linestyle"]) for i in range(8)]
        fig, ax = plt.subplots()
        line, = ax.plot([0, 1], [0, 1])
        ax.fill_between([0, 1], [0, 0], [1, 1])  # the fill cycle copes with line styles in the cycle
        assert mpl.colors.same_color(line.get_color(), series_style(0)["color"])
        plt.close(fig)


@pytest.mark.parametrize("n, rows, cols", [(1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 2, 2), (6, 2, 3), (7, 3, 3)])
def test_figure_grid_fits_the_column(n, rows, cols):
    fig, axes = figure_grid(n)
    try:
        assert len(axes) == n and len(fig.axes) == n
        spec = axes[0].get_subplotspec().get_gridspec()
        assert (spec.nrows, spec.ncols) == (rows, cols)
        assert fig.get_size_inches()[0] <= 7.5
    finally:
        plt.close(fig)


def test_shared_legend_below_and_chance_line_out_of_it():
    fig, axes = figure_grid(4)
    try:
        for ax in axes:
            for i in range(3):
                ax.plot([0, 1], [i, i + 1], label=f"model {i}", **{k: v for k, v in series_style(i).items()})
            ax.legend()
            line = chance_line(ax, 50.0)
        legend = shared_legend(fig)
        assert [t.get_text() for t in legend.get_texts()] == ["model 0", "model 1", "model 2"]
        assert all(ax.get_legend() is None for ax in axes)
        assert line.get_ydata()[0] == 50.0 and line.get_linestyle() == "--" and line.get_color() == "0.45"
        assert any(t.get_text() == "chance" for t in axes[-1].texts)
        fig.canvas.draw()
        assert legend.get_window_extent().y1 <= min(ax.get_window_extent().y0 for ax in axes)  # below the panels
    finally:
        plt.close(fig)
    fig, ax = plt.subplots()
    assert shared_legend(fig) is None
    plt.close(fig)


def test_prose_tables_wrap_and_results_tables_do_not():
    df = pd.DataFrame({"verdict": ["no detectable difference"]}, index=["UMDF vs TFN"])
    assert "width: 100%" in styled(df, best=None, prose=True).to_html()
    assert "width: 100%" not in styled(df, best=None).to_html()


def test_glue_figure_closes_the_figure_so_the_page_shows_it_once(capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from msa_lib.style import glue_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    glue_figure("t-fig", fig)
    assert fig.number not in plt.get_fignums()
