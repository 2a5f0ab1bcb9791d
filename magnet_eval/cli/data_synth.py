"""(being built) `magnet-eval data synth`."""

import typer


def synth() -> None:
    """Render the offline text-to-music corpus (being built)."""
    raise typer.Exit(code=1)
