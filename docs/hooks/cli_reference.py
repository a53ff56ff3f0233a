"""MkDocs hook: the CLI reference page is generated from the typer app at build time, so it cannot drift.

``docs/reference/cli.md`` holds a marker line; this hook replaces it with typer's own Markdown for every
command and option (``typer.cli.get_docs_for_click``, what ``typer ... utils docs`` writes), one heading level
below the page's title.
"""

from __future__ import annotations

MARKER = "<!-- cli-reference: generated at build time from the typer app -->"
PAGE = "reference/cli.md"


def cli_markdown() -> str:
    """Every command of ``gpupair-search``, with its usage, arguments and options, as typer renders them."""
    import typer
    import typer.cli

    from gpupair_search.search.cli.app import app

    command = typer.main.get_command(app)
    text = typer.cli.get_docs_for_click(
        obj=command, ctx=typer.Context(command), name="gpupair-search", title="gpupair-search"
    )
    lines, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        lines.append("#" + line if line.startswith("#") and not in_code else line)
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 (mkdocs' hook signature)
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} lost its marker line {MARKER!r}: the CLI reference would not be generated")
    return markdown.replace(MARKER, cli_markdown())
