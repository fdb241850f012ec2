"""How the CLI lays out a table: numbers right-aligned, ids whole, columns left out of a narrow terminal."""

from __future__ import annotations

import io

from rich.console import Console

from llmtally.cli.output import Column, Listing
from llmtally.wording import plural

LONG_ID = "azure-ad_5f0c2a1e-33b8-4d7e-9b4c-8e2d6a7f1c90"


def render(listing: Listing, width: int) -> str:
    out = io.StringIO()
    listing.print(Console(file=out, width=width, color_system=None))
    return out.getvalue()


def users(*rows: tuple[str, ...]) -> Listing:
    listing = Listing(
        "users",
        [
            Column("user id", "id"),
            Column("email", drop=2),
            Column("name", drop=1),
            Column("requests", "number"),
            Column("cost", "number"),
        ],
        empty="no users yet",
    )
    for row in rows:
        listing.add_row(*row)
    return listing


def test_a_wide_terminal_shows_every_column_with_numbers_right_aligned() -> None:
    listing = users((LONG_ID, "alan@example.com", "Alan Turing", "7", "$0.5"), ("u2", "", "", "1,234", "$12.25"))
    text = render(listing, 200)
    assert "email" in text and "Alan Turing" in text and "not shown" not in text
    rows = [line for line in text.splitlines() if "u2" in line or LONG_ID in line]
    # right-aligned: the last digits of both numbers end in the same column
    assert rows[0].index("7 │") == rows[1].index("1,234 │") + len("1,23")
    assert rows[0].index("$0.5 │") == rows[1].index("$12.25 │") + 2


def test_at_80_columns_ids_stay_whole_and_the_left_out_columns_are_named() -> None:
    text = render(users((LONG_ID, "alan@example.com", "Alan Turing", "7", "$0.5")), 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert f"│ {LONG_ID} " in text  # on one line, not cut
    assert "not shown at 80 columns: email" in text
    assert "│ Alan " in text and "│ Turing " in text  # the name, wrapped, fits once the e-mail is left out


def test_an_id_is_folded_only_when_nothing_else_can_give_way() -> None:
    text = render(users((LONG_ID, "a@example.com", "Alan", "7", "$0.5")), 50)
    assert max(len(line) for line in text.splitlines()) <= 50
    assert "…" not in text
    cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    assert LONG_ID in cells  # every character is there, over two lines


def test_no_rows_print_the_sentence() -> None:
    assert render(users(), 80) == "no users yet\n"


def test_plural() -> None:
    assert plural(1, "request") == "1 request"
    assert plural(0, "request") == "0 requests"
    assert plural(1200, "user") == "1,200 users"
    assert plural(2, "entry", "entries") == "2 entries"
