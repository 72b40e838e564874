"""Console output shared by the commands: one Rich console, error reporting, exit codes
(0 = done or valid, 1 = refused or invalid)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    err_console.print(f"[red]Error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(1)


@contextmanager
def refusals() -> Iterator[None]:
    """Turn the core's and the API's refusals into a message and exit status 1."""
    from interca.client import ApiError
    from interca.errors import IntercaError

    try:
        yield
    except IntercaError as exc:
        fail(exc.message)
    except ApiError as exc:
        fail(f"{exc.message} ({exc.code}, HTTP {exc.status})" if exc.status else exc.message)
