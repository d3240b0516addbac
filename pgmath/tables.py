"""Tables printed by the command line and the benchmarks, complete in a terminal and in a log.

Every table pgmath prints (``pgmath verify``, ``pgmath check``, ``python -m pgmath.proofs``,
``benchmarks/*.py``) goes through :func:`render_table`, in one of four formats:

* ``rich`` — a boxed, coloured table (needs the optional ``rich`` package: ``pip install
  'pgmath[cli]'``), used by default when standard output is a terminal;
* ``plain`` — aligned columns of plain text, every cell in full, never cut to the terminal's
  width: the default when the output is a file, a pipe or a CI log, or when rich is missing;
* ``markdown`` — a GitHub table (for docs and issue comments);
* ``json`` — ``{"title", "columns", "rows", "caption"}``, for scripts.

Cells are plain strings; rich markup is not interpreted (a verdict is coloured by
:func:`render_table` itself when ``color_column`` names its column).

Checked by: ``tests/test_packaging.py`` (every format carries every cell in full when piped;
``pgmath verify`` and ``benchmarks/gae.py`` piped into a file).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from typing import IO

__all__ = ["FORMATS", "add_format_argument", "default_format", "print_table", "render_table"]

#: The formats of :func:`render_table`; ``auto`` picks rich in a terminal, plain elsewhere.
FORMATS: tuple[str, ...] = ("auto", "rich", "plain", "markdown", "json")


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def default_format(stream: IO[str] | None = None) -> str:
    """``"rich"`` when ``stream`` (default stdout) is a terminal and rich is installed, else ``"plain"``."""
    stream = sys.stdout if stream is None else stream
    if _is_terminal(stream) and importlib.util.find_spec("rich") is not None:
        return "rich"
    return "plain"


def add_format_argument(parser) -> None:
    """Add ``--format {auto,rich,plain,markdown,json}`` to an ``argparse`` parser."""
    parser.add_argument(
        "--format", choices=FORMATS, default="auto",
        help="table format: rich in a terminal, plain (complete, aligned text) when piped "
             "(default: auto), markdown, or json",
    )


def _plain(title: str, columns: Sequence[str], rows: list[list[str]], caption: str) -> str:
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()

    out = [title] if title else []
    out += [line(columns), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    if caption:
        out.append(caption)
    return "\n".join(out)


def _markdown(title: str, columns: Sequence[str], rows: list[list[str]], caption: str) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    out = [f"**{esc(title)}**", ""] if title else []
    out.append("| " + " | ".join(esc(c) for c in columns) + " |")
    out.append("|" + "---|" * len(columns))
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    if caption:
        out += ["", esc(caption)]
    return "\n".join(out)


def _rich(title: str, columns: Sequence[str], rows: list[list[str]], caption: str,
          color_column: str | None, justify: Sequence[str] | None):
    from rich.table import Table
    from rich.text import Text

    colors = {"PASS": "green", "FAIL": "bold red", "ERROR": "bold red"}
    table = Table(title=title or None, caption=caption or None)
    for i, col in enumerate(columns):
        table.add_column(col, overflow="fold", justify=justify[i] if justify else "left")
    for r in rows:
        cells = [Text(c, style=colors.get(c, "") if columns[i] == color_column else "")
                 for i, c in enumerate(r)]
        table.add_row(*cells)
    return table


def render_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    title: str = "",
    caption: str = "",
    fmt: str = "plain",
) -> str:
    """The table as text in ``fmt`` (``plain``, ``markdown`` or ``json``), every cell in full.

    Args:
      columns: the column headers.
      rows: one sequence of cells per row, as many as ``columns`` (``str()`` of each is printed).
      title, caption: printed above / below the table (kept in the JSON).
      fmt: ``"plain"``, ``"markdown"`` or ``"json"`` (``rich`` renders through :func:`print_table`).
    """
    cells = [[str(c) for c in r] for r in rows]
    for i, r in enumerate(cells):
        if len(r) != len(columns):
            raise ValueError(f"rows[{i}] has {len(r)} cells but there are {len(columns)} columns")
    if fmt == "plain":
        return _plain(title, columns, cells, caption)
    if fmt == "markdown":
        return _markdown(title, columns, cells, caption)
    if fmt == "json":
        return json.dumps({"title": title, "columns": list(columns), "rows": cells,
                           "caption": caption}, indent=2)
    raise ValueError(f"fmt must be one of 'plain', 'markdown', 'json', got {fmt!r}")


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    title: str = "",
    caption: str = "",
    fmt: str = "auto",
    file: IO[str] | None = None,
    color_column: str | None = None,
    justify: Sequence[str] | None = None,
) -> None:
    """Print the table to ``file`` (default stdout) in ``fmt`` (``auto``: see :func:`default_format`).

    ``color_column`` names a column whose PASS / FAIL cells are coloured in the rich format;
    ``justify`` gives each column's alignment there ("left", "right").
    """
    file = sys.stdout if file is None else file
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if fmt == "auto":
        fmt = default_format(file)
    if fmt == "rich":
        if importlib.util.find_spec("rich") is None:
            fmt = "plain"  # the optional pretty printer is missing: print the same table plainly
        else:
            from rich.console import Console

            # not a terminal (``--format rich`` into a file): wide enough never to cut a cell
            console = Console(file=file, width=None if _is_terminal(file) else 10_000)
            console.print(_rich(title, columns, [[str(c) for c in r] for r in rows], caption,
                                color_column, justify))
            return
    print(render_table(columns, rows, title=title, caption=caption, fmt=fmt), file=file)
