"""The Typer CLI: thin commands that parse options, call one service and hand the result to one renderer."""
