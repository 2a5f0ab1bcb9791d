"""(being built)"""

import typer


def main() -> None:
    raise typer.Exit(code=1)
