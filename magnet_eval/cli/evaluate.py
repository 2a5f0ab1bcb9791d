"""Measure generated audio against a reference: FAD (+FAD-inf), KAD, KL, CLAP score, MIRDD, chroma.

Writes RESULTS.parquet and RESULTS.csv (one row per metric, with bootstrap confidence interval columns) and RESULTS.per_sample.parquet (one row per clip and per-sample metric), and prints the table.

Embeddings are cached per file (content hash + embedder + weights), so a re-run or a killed run recomputes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..embedding_cache import EMBED_BATCH


def print_results(results) -> None:
    """The results table on stdout (rich)."""
    from rich.console import Console
    from rich.table import Table

    def fmt(v) -> str:
        try:
            f = float(v)
        except (TypeError, ValueError):
            return str(v)
        return "-" if f != f else f"{f:.4g}"

    table = Table(title="magnet-eval results")
    for col in ("system", "metric", "value", "ci_low", "ci_high", "n_generated", "n_reference", "embedder", "status"):
        table.add_column(col, justify="right" if col in ("value", "ci_low", "ci_high", "n_generated", "n_reference") else "left")
    for _, row in results.iterrows():
        status = str(row["status"])
        table.add_row(str(row["system"]), str(row["metric"]), fmt(row["value"]), fmt(row["ci_low"]), fmt(row["ci_high"]),
                      str(row["n_generated"]), str(row["n_reference"]), str(row["embedder"]),
                      status if len(status) < 60 else status[:57] + "...")
    Console(width=160).print(table)


def print_outliers(per_sample, top: int = 5) -> None:
    """The clips that pull the generated set furthest from the reference (largest FAD leave-one-out change)."""
    from ..progress import info

    for metric in ("fad_contribution", "kad_contribution"):
        rows = per_sample[per_sample.metric == metric]
        if len(rows) < 2:
            continue
        worst = rows.sort_values("value", ascending=False).head(top)
        listing = ", ".join(f"{r.id} ({r.value:+.3g})" for r in worst.itertuples())
        info(f"largest {metric} (outlier clips): {listing}")


def main(
    generated: Path = typer.Option(..., "--generated", "-g", help="Folder written by `generate` (or any folder of wavs), or a .jsonl manifest."),
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="Reference audio manifest (.jsonl / folder) or statistics (.npz from `stats build`)."),
    metrics: str = typer.Option("fad,kad", "--metrics", "-m", help="Comma list: fad (also fad_inf), kad, kl, kl_musicnn, clap, mirdd, chroma_cosine."),
    embedder: str = typer.Option("musicnn", "--embedder", "-e", help="FAD/KAD embedder: vggish, pann, clap, encodec, musicnn, aisfx."),
    system: Optional[str] = typer.Option(None, "--system", "-s", help="System name in the tables (default: the generated folder's name)."),
    out: Path = typer.Option(Path("results.parquet"), "--out", "-o", help="Results parquet; .csv and .per_sample.parquet are written beside it."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Weights file of the embedder (default: its usual cache location)."),
    kl_classifier: Optional[str] = typer.Option(None, "--kl-classifier", help="passt or musicnn (default: PaSST when its weights are present, else musicnn)."),
    clap_model: str = typer.Option("clap", "--clap-model", help="Embedder used for the CLAP score."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples of the generated clips for the confidence intervals (0: none)."),
    ci: float = typer.Option(0.95, "--ci", help="Confidence level of the intervals."),
    seed: int = typer.Option(0, "--seed"),
    no_normalize: bool = typer.Option(False, "--no-normalize", help="Skip the loudness normalisation (-14 LUFS) of both sides."),
    skip_missing_weights: bool = typer.Option(False, "--skip-missing-weights", help="A metric whose weights are missing gives a 'weights not available' row instead of an error."),
    keep_going: bool = typer.Option(False, "--keep-going", help="A failing metric gives a row with its error as status instead of stopping."),
    strict_pairing: bool = typer.Option(False, "--strict-pairing", help="Paired metrics fail when reference ids have no generated clip."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Embedding cache folder (default: ~/.cache/magnet-eval/embeddings)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    ledger: Optional[Path] = typer.Option(None, "--ledger", help="Results ledger (SQLite; default ~/.cache/magnet-eval/ledger.sqlite)."),
    no_ledger: bool = typer.Option(False, "--no-ledger", help="Do not append this run to the results ledger."),
    batch_size: int = typer.Option(EMBED_BATCH, "--batch-size", "-b", help="Clips per embedder call (musicnn and pann batch; the values do not depend on it)."),
) -> None:
    """Measure generated audio against a reference: FAD (+FAD-inf), KAD, KL, CLAP score, MIRDD, chroma.

    Under `torchrun --nproc_per_node N --no-python magnet-eval evaluate ...` each process embeds every N-th
    clip; rank 0 writes the one results file and ledger row.
    """
    from ..embedding_cache import EmbeddingCache
    from ..pipeline import evaluate_to_files
    from ..progress import info
    from ..errors import ManifestError
    from ..sharding import is_main, sharded_run
    from ..validate import existing_path, non_negative_int, positive_int, probability, readable_file, writable_output

    # every option is checked before any audio is embedded (hours on a large set)
    non_negative_int("--bootstrap", bootstrap)
    positive_int("--batch-size", batch_size)
    probability("--ci", ci, low_open=True, high_open=True)
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    if not names:
        from ..errors import InvalidOptionError

        raise InvalidOptionError(f"--metrics is empty ({metrics!r}): give e.g. fad,kad")
    existing_path(generated, "--generated")
    if reference is not None:
        existing_path(reference, "--reference")
    if weights is not None and (weights.exists() or not skip_missing_weights):
        from ..errors import MissingWeightsError

        # a missing file is "weights not available" (a row with --skip-missing-weights), anything else an error
        readable_file(weights, "weights file (--weights)", MissingWeightsError if not weights.exists() else ManifestError)
    for path in (out, out.with_suffix(".csv"), out.with_name(out.stem + ".per_sample.parquet")):
        writable_output(path, "--out")  # the three files save_results writes
    if not no_ledger:
        from ..ledger import Ledger

        Ledger(ledger).check_appendable()  # a corrupt or read-only ledger stops the run now, not after it
    name = system or (generated.stem if generated.suffix == ".jsonl" and generated.stem != "manifest" else
                      (generated.parent.name if generated.suffix == ".jsonl" else generated.name))
    with sharded_run():
        results, per_sample, paths = evaluate_to_files(
            generated, name, [{"reference": reference, "metrics": names, "embedder": embedder}], out,
            ledger=False if no_ledger else ledger,
            weights=weights, kl_classifier=kl_classifier, clap_model=clap_model,
            cache=EmbeddingCache(cache_dir, enabled=not no_cache),
            normalize=not no_normalize, n_bootstrap=bootstrap, ci=ci, seed=seed,
            on_missing_weights="row" if skip_missing_weights else "raise",
            on_error="row" if keep_going else "raise", strict_pairing=strict_pairing, batch_size=batch_size,
        )
        if not is_main():
            return
    print_results(results)
    print_outliers(per_sample)
    info(f"wrote {paths['results']}, {paths['csv']} and {paths['per_sample']}")
