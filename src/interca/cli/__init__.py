"""The `interca` command line (Typer)."""
