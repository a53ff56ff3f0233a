"""The interference figures draw the numbers as they are, and flagged pairs as flags, never as numbers."""

from __future__ import annotations

from gpupair_search.search.engine.interference import MOSTLY_STARTING, PairInterference, Sequential, Solo
from gpupair_search.search.views.interference_view import labels, sequential_bars, slowdown_heatmap


def pair(trial, fg, bg, fg_sps=50.0, flags=(), energy=(80.0, 100.0)):
    return PairInterference(
        f"g0{trial}",
        trial,
        8,
        4,
        fg,
        bg,
        fg_samples_per_second=fg_sps,
        bg_samples_per_second=20.0,
        fg_solo=Solo(fg, 8, 0, 100.0, 0.1, 90.0),
        bg_solo=Solo(bg, 4, 1, 40.0, 0.2, 90.0),
        sequential=Sequential(10.0, 15.0, *energy),
        flags=tuple(flags),
    )


def test_the_heatmap_has_one_cell_per_foreground_and_background_with_its_slowdown():
    fig = slowdown_heatmap(
        [
            pair(2, "solo:r/a", "solo:r/b"),
            pair(3, "solo:r/a", "solo:r/c", fg_sps=100.0),
            pair(4, "solo:r/b", "solo:r/c", flags=(MOSTLY_STARTING,)),
        ]
    )
    heat = fig.data[0]
    assert list(heat.y) == ["r/a", "r/b"] and list(heat.x) == ["r/b", "r/c"]
    assert heat.z[0][0] == 2.0 and heat.z[0][1] == 1.0
    assert heat.z[1][1] is None and heat.text[1][1] == MOSTLY_STARTING  # flagged: a label, no number
    assert heat.text[0][0].startswith("2.00×<br>bg 2.00×")
    assert "2 of 3 pairs with a figure" in fig.layout.title.subtitle.text


def test_labels_show_hyperparameters_only_where_two_jobs_share_a_model():
    assert labels(['solo:r/a{"lr": 1}', 'solo:r/a{"lr": 2}', "solo:r/b"]) == ['r/a{"lr": 1}', 'r/a{"lr": 2}', "r/b"]


def test_sequential_bars_pair_together_and_apart_and_leave_out_pairs_without_energy():
    time = sequential_bars([pair(2, "solo:r/a", "solo:r/b")], "time")
    assert list(time.data[0].y) == [10.0] and list(time.data[1].y) == [15.0] and time.data[0].text == ("0.67×",)
    energy = sequential_bars([pair(2, "solo:r/a", "solo:r/b", energy=(None, None))], "energy")
    assert len(energy.data[0].x) == 0 and "no pair has a figure yet" in energy.layout.title.subtitle.text
