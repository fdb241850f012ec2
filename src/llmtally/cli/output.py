"""How the CLI words and lays out what it prints: counts with their noun, money, tables.

Tables are built with :class:`Listing`, which knows what each column holds: numbers are
right-aligned, ids are never cut (an id printed by the CLI can be copied into the next command),
and when the terminal is too narrow for every column the least important ones are left out, with
a line that says which. A listing with no rows prints a sentence instead of an empty table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

# text: left-aligned, wraps between words; number: the same, right-aligned; id: left-aligned, on one line
# (an id, a model name, a timestamp: anything that must not be split), folded only if nothing else fits.
ColumnKind = Literal["text", "number", "id"]
# Cell padding of a rich table: one space on each side of every cell.
_PADDING = 2
# The narrowest an id is folded to when nothing else can give way.
_FOLDED_ID = 12


def amount(value: object, unit: str = "") -> str:
    """A limit or a spent amount: ``-`` for none, dollars as given, counts with thousands separators."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return f"${value.normalize():f}"
    return f"{value:,}{unit}" if isinstance(value, int) else str(value)


@dataclass(frozen=True)
class Column:
    """One column: its header, what it holds, and how early it is left out of a narrow terminal.

    ``drop`` 0 means always shown; among the others the highest number goes first.
    """

    header: str
    kind: ColumnKind = "text"
    drop: int = 0


@dataclass
class Listing:
    """Rows to print as a table, laid out to the terminal's width when printed."""

    title: str
    columns: Sequence[Column]
    empty: str
    rows: list[tuple[str, ...]] = field(default_factory=list)

    def add_row(self, *cells: str) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)

    def print(self, console: Console) -> None:
        if not self.rows:
            console.print(self.empty)
            return
        lines = [self._lines(i) for i in range(len(self.columns))]
        naturals = [_longest(column_lines) for column_lines in lines]
        floors = [
            naturals[i] if c.kind == "id" else _longest([w for line in lines[i] for w in line.split()])
            for i, c in enumerate(self.columns)
        ]
        shown = _columns_that_fit(self.columns, floors, console.width)
        widths = _widths(
            [naturals[i] for i in shown],
            [floors[i] for i in shown],
            [self.columns[i].kind == "id" for i in shown],
            console.width,
        )
        table = Table(title=self.title)
        for i, width in zip(shown, widths, strict=True):
            column = self.columns[i]
            table.add_column(
                column.header,
                justify="right" if column.kind == "number" else "left",
                overflow="fold",
                width=width,
            )
        for row in self.rows:
            table.add_row(*(row[i] for i in shown))
        console.print(table)
        left_out = [c.header for i, c in enumerate(self.columns) if i not in shown]
        if left_out:
            console.print(f"[dim]not shown at {console.width} columns: {', '.join(left_out)}[/]")

    def _lines(self, index: int) -> list[str]:
        cells = [self.columns[index].header, *(row[index] for row in self.rows)]
        return [line for cell in cells for line in Text.from_markup(cell).plain.splitlines()]


def _longest(pieces: Sequence[str]) -> int:
    """The width of the widest piece (a line, or a word), at least 1."""
    return max((cell_len(p) for p in pieces), default=1)


def _table_width(content_widths: Sequence[int]) -> int:
    """The cells with their padding, the two edges and a rule between columns."""
    return sum(w + _PADDING for w in content_widths) + 2 + len(content_widths) - 1


def _columns_that_fit(columns: Sequence[Column], floors: Sequence[int], width: int) -> list[int]:
    """The columns to show: all of them, or without the most droppable ones until the rest fit.

    A column left out on the way is taken back, the most important first, if it fits beside the rest.
    """
    shown = list(range(len(columns)))
    dropped: list[int] = []
    while _table_width([floors[i] for i in shown]) > width:
        droppable = [i for i in shown if columns[i].drop > 0]
        if not droppable:
            return shown
        worst = max(droppable, key=lambda i: (columns[i].drop, i))
        shown.remove(worst)
        dropped.append(worst)
    for i in sorted(dropped, key=lambda i: (columns[i].drop, i)):
        if _table_width([floors[k] for k in sorted([*shown, i])]) <= width:
            shown = sorted([*shown, i])
    return shown


def _widths(naturals: Sequence[int], floors: Sequence[int], ids: Sequence[bool], width: int) -> list[int]:
    """Each column's content width: unwrapped if that fits, else the widest columns that wrap go first.

    If even that is too wide, the longest ids are folded onto a second line (never cut).
    """
    widths = list(naturals)
    excess = _table_width(widths) - width
    for limits in (floors, [_FOLDED_ID if is_id else floor for floor, is_id in zip(floors, ids, strict=True)]):
        while excess > 0:
            candidates = [k for k in range(len(widths)) if widths[k] > limits[k]]
            if not candidates:
                break
            widest = max(candidates, key=lambda k: widths[k])
            widths[widest] -= 1
            excess -= 1
    return widths
