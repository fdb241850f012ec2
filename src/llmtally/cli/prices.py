"""prices list|set|delete|reprice."""

from __future__ import annotations

import click

from llmtally import prices as price_api
from llmtally.cli.app import State, cli, console, pass_state
from llmtally.cli.output import Column, Listing
from llmtally.wording import plural


@cli.group()
def prices() -> None:
    """Custom model prices, which win over LiteLLM's price map."""


@prices.command("list")
@pass_state
def list_(state: State) -> None:
    """Show custom prices (USD per million tokens)."""
    with state.database() as db:
        rows = price_api.list_prices(db)
    table = Listing(
        "Custom prices, USD per million tokens",
        [
            Column("model", "id"),
            Column("input", "number"),
            Column("cached input", "number"),
            Column("cache write", "number"),
            Column("output", "number"),
            Column("updated (UTC)", drop=1),
        ],
        empty="no custom prices; LiteLLM's price map applies",
    )
    for p in rows:
        updated = p.updated_at.strftime("%Y-%m-%d %H:%M")
        table.add_row(
            p.model,
            str(p.input_per_million),
            str(p.cache_read_per_million),
            str(p.cache_creation_per_million),
            str(p.output_per_million),
            updated,
        )
    table.print(console)


@prices.command("set")
@click.argument("model")
@click.option("--input", "input_", required=True, metavar="USD", help="Price of a million prompt tokens.")
@click.option("--output", "output", required=True, metavar="USD", help="Price of a million completion tokens.")
@click.option(
    "--cached-input", metavar="USD", help="Price of a million cached input tokens (cache reads). Default: --input."
)
@click.option(
    "--cache-write", metavar="USD", help="Price of a million input tokens written to the cache. Default: --input."
)
@click.option("--reprice/--no-reprice", default=True, show_default=True, help="Recompute stored rows of this model.")
@pass_state
def set_(
    state: State, model: str, input_: str, output: str, cached_input: str | None, cache_write: str | None, reprice: bool
) -> None:
    """Set the price of MODEL (gpt-4o-mini, or with its provider: openai/acme-internal-llm)."""
    input_price = price_api.parse_price(input_, "--input")
    output_price = price_api.parse_price(output, "--output")
    cache_read = None if cached_input is None else price_api.parse_price(cached_input, "--cached-input")
    cache_creation = None if cache_write is None else price_api.parse_price(cache_write, "--cache-write")
    with state.database() as db:
        price_api.set_price(
            db,
            model,
            input_per_million=input_price,
            output_per_million=output_price,
            cache_read_per_million=cache_read,
            cache_creation_per_million=cache_creation,
        )
        read = input_price if cache_read is None else cache_read
        write = input_price if cache_creation is None else cache_creation
        cache_note = f", ${read} cached in / ${write} cache write"
        console.print(f"{model}: ${input_price} in / ${output_price} out{cache_note} per million tokens")
        if reprice:
            console.print(f"repriced {plural(price_api.reprice(db, model), 'stored row')}")


@prices.command("delete")
@click.argument("model")
@pass_state
def delete(state: State, model: str) -> None:
    """Remove the custom price of MODEL (then `llmtally prices reprice` recomputes stored rows)."""
    with state.database() as db:
        if not price_api.delete_price(db, model):
            raise click.ClickException(f"no custom price for {model!r} (see `llmtally prices list`)")
    console.print(f"removed the custom price of {model}")


@prices.command("reprice")
@click.option("--model", metavar="MODEL", help="Only this model, with or without its provider (default: all).")
@pass_state
def reprice(state: State, model: str | None) -> None:
    """Recompute stored costs from current prices; counters and rollups follow."""
    with state.database() as db:
        changed = price_api.reprice(db, model)
    console.print(f"repriced {plural(changed, 'stored row')}")
