"""The `magnet-eval` command line: one Typer app, one module per command group."""

from __future__ import annotations

import sys

import typer

from ..errors import MagnetEvalError
from ..progress import fail
from . import bench, compare, data, evaluate, generate, report, reproduce, stats, train
from . import train_stemgen, train_vampnet, vamp

train.app.command(name="stemgen", help=train_stemgen.command.__doc__)(train_stemgen.command)  # StemGen, issue 11
train.app.command(name="vampnet", help=train_vampnet.command.__doc__)(train_vampnet.command)  # VampNet, issue 10

app = typer.Typer(
    name="magnet-eval",
    help="Train, load, generate from and measure MAGNeT-style masked audio generators and their baselines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.add_typer(data.app, name="data", help="Build manifests from caption files and render the offline corpus.")
app.add_typer(train.app, name="train", help="Train a codec, MAGNeT or MusicGen.")
app.add_typer(stats.app, name="stats", help="Build and inspect cached reference statistics.")
app.add_typer(bench.app, name="bench", help="Performance benchmarks (latency vs batch size).")
app.command(name="generate", help=generate.__doc__)(generate.main)
app.command(name="evaluate", help=evaluate.__doc__)(evaluate.main)
app.command(name="report", help=report.__doc__)(report.main)
app.command(name="compare", help=compare.__doc__)(compare.main)
app.command(name="reproduce", help=reproduce.__doc__)(reproduce.main)
app.command(name="vamp", help=vamp.__doc__)(vamp.main)
from . import stem  # noqa: E402  (StemGen, issue 11)
app.command(name="stem", help=stem.__doc__)(stem.main)


def main() -> None:
    """Console entry point: user errors print a message, not a traceback, and exit 2.

    An OSError that names a file (permission denied, disk full, a folder where a file was
    expected) is the user's environment, not a bug: it is reported the same way.
    """
    try:
        app()
    except MagnetEvalError as exc:
        fail(str(exc))
        sys.exit(2)
    except OSError as exc:
        if not getattr(exc, "filename", None):
            raise
        fail(f"{exc.filename}: {exc.strerror or exc}")
        sys.exit(2)
