"""Write a study's slowdown heatmap (foreground x background) as HTML, and as PNG where kaleido is installed.

    python bench/interference_heatmap.py --results results [--settings FILE | --study NAME] [--kind gpu]
        [-o docs/images/slowdown_heatmap]

Reads the study only (nothing is written to it). The README's picture comes from the H200 run of the 12 groups.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gpupair_search.launcher.errors import UserError
from gpupair_search.search.engine.interference import attrs_for_trial, pair_interference
from gpupair_search.search.engine.stored_study import open_results
from gpupair_search.search.views.interference_view import slowdown_heatmap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--settings", type=Path)
    parser.add_argument("--study")
    parser.add_argument("--storage")
    parser.add_argument("--kind", choices=("gpu", "cpu", "simulated"))
    parser.add_argument("--models", type=Path)
    parser.add_argument("--repos-root", type=Path)
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("slowdown_heatmap"),
        help="path without suffix: .html, .json (the figures) and, with kaleido, .png are written",
    )
    args = parser.parse_args(argv)
    try:
        fs = open_results(
            args.study,
            args.settings,
            args.storage,
            args.results,
            args.kind,
            args.models,
            args.repos_root,
            lenient=False,
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    items = pair_interference(fs.views())
    figure = slowdown_heatmap(items, fs.kind == "simulated")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(args.output.with_suffix(".html"), include_plotlyjs=True)
    args.output.with_suffix(".json").write_text(
        json.dumps(
            {
                "study": fs.settings.name,
                "pairs": [
                    {
                        "trial": p.trial,
                        "pair": p.pair_key,
                        "fg_batch": p.fg_batch,
                        "bg_batch": p.bg_batch,
                        **attrs_for_trial(p),
                    }
                    for p in items
                ],
            },
            indent=1,
        )
    )
    written = [args.output.with_suffix(".html"), args.output.with_suffix(".json")]
    try:
        figure.write_image(args.output.with_suffix(".png"), width=1400, height=900, scale=1)
        written.append(args.output.with_suffix(".png"))
    except (ValueError, ImportError, RuntimeError) as exc:  # no kaleido / no browser: the HTML has the same picture
        print(f"no PNG ({exc}); open the HTML and use its camera button", file=sys.stderr)
    print("\n".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
