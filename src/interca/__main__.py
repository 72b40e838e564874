"""`python -m interca` runs the `interca` command."""

from interca.cli.main import app

app(prog_name="interca")
