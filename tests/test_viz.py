"""Figure helpers of ``vlic.viz`` that decide what a reader sees."""

from __future__ import annotations

import numpy as np

from vlic.viz import detail_crop


def test_detail_crop_is_a_square_centred_across_from_a_quarter_down():
    img = np.arange(200 * 300).reshape(200, 300)
    c = detail_crop(img)
    assert c.shape == (160, 160)
    assert c[0, 0] == img[10, 70]                   # y = 200 // 4 - 160 // 4 = 10, x = (300 - 160) // 2 = 70
    small = detail_crop(np.zeros((64, 96, 3), np.uint8))
    assert small.shape == (64, 64, 3)               # never larger than the image's short side
    assert detail_crop(img, size=40)[0, 0] == img[40, 130]


def test_interval_dots_draws_sorted_rows_with_clipped_bars_and_the_reference():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from vlic.viz import interval_dots

    data = pd.DataFrame({"codec": ["b", "a"], "elo": [1100.0, 900.0], "ci_low": [1000.0, 950.0],
                         "ci_high": [1200.0, 1000.0]})
    fig, ax = plt.subplots()
    interval_dots(data, value="elo", low="ci_low", high="ci_high", category="codec", reference=1000, color="red")
    ys = [t.get_text() for t in ax.get_yticklabels()]
    assert ys == ["a", "b"]                                          # sorted by value
    bars = ax.collections[0].get_segments()
    assert [tuple(s[:, 0]) for s in bars] == [(900.0, 1000.0), (1000.0, 1200.0)]   # a's low above its value: clipped to 0
    assert ax.lines[-1].get_xdata()[0] == 1000                       # the reference line
    plt.close(fig)


def _lines(n: int, colours=None, legend: bool = True):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    for k in range(n):
        ax.plot(np.arange(10), np.arange(10) * k, color=(colours or [f"C{i}" for i in range(10)])[k], label=f"s{k}")
    if legend:
        ax.legend()
    return fig, ax


def test_a_slide_figure_has_few_series_that_look_different_and_a_legend_off_the_data(tmp_path, monkeypatch, capsys):
    import pytest

    from vlic.viz import legend_outside, save, slide_problems

    fig, ax = _lines(3)
    assert any("legend covers the data" in p for p in slide_problems(fig))
    monkeypatch.setenv("VLIC_STRICT_FIGURES", "1")
    with pytest.raises(ValueError, match="not readable as a slide"):
        save(fig, tmp_path / "inside.png")
    monkeypatch.setenv("VLIC_STRICT_FIGURES", "0")                 # the study: says so in one line, saves anyway
    assert save(fig, tmp_path / "inside.png").exists()
    assert "note: figure 'inside.png' is not readable as a slide" in capsys.readouterr().out
    legend_outside(ax)
    assert slide_problems(fig) == []
    assert save(fig, tmp_path / "outside.png").exists()

    fig, ax = _lines(7, legend=False)
    assert slide_problems(fig) == ["'panel 1': 7 series (at most 6)"]
    fig, ax = _lines(2, colours=["C0", "C0"], legend=False)
    assert slide_problems(fig) == ["'panel 1': two series look the same (colour, line style and marker)"]
    ax.lines[1].set_linestyle("--")                      # same colour, another line style: tellable apart
    assert slide_problems(fig) == []


def test_seaborn_legend_headings_are_not_series():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from vlic.viz import legend_outside, slide_problems

    df = pd.DataFrame({"x": np.tile(np.arange(4), 6), "y": np.arange(24.0), "hue": np.repeat(list("abc"), 8),
                       "style": np.tile(np.repeat(["p", "q"], 4), 3)})
    fig, ax = plt.subplots()
    sns.lineplot(df, x="x", y="y", hue="hue", style="style", ax=ax)
    legend_outside(ax)
    assert slide_problems(fig) == []                     # 3 colours + 2 styles, the two headings not counted
