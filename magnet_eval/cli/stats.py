"""`magnet-eval stats`: build and inspect cached reference statistics (.npz)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..embedding_cache import EMBED_BATCH

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Build and inspect cached reference statistics."""


@app.command("build")
def build(
    embedder: str = typer.Option(..., "--embedder", "-e", help="vggish, pann, clap, encodec, musicnn or aisfx."),
    audio: Path = typer.Option(..., "--audio", "-a", help="Reference audio: a .jsonl manifest or a folder of audio files."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npz (e.g. reference_stats/musiccaps_musicnn.npz)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Weights file of the embedder (default: its usual cache location)."),
    max_frames: int = typer.Option(10000, "--max-frames", help="Embedding frames kept in the file for KAD (fixed-seed subsample)."),
    seed: int = typer.Option(0, "--seed"),
    no_normalize: bool = typer.Option(False, "--no-normalize", help="Skip loudness normalisation (evaluate must then use --no-normalize too)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Embedding cache folder."),
    batch_size: int = typer.Option(EMBED_BATCH, "--batch-size", "-b", help="Clips per embedder call (musicnn and pann batch; the values do not depend on it)."),
) -> None:
    """Embed a reference set and save mean, covariance, count, frames and provenance.

    Under `torchrun --nproc_per_node N --no-python magnet-eval stats build ...` each process embeds every
    N-th clip and rank 0 writes the file.
    """
    from ..embedding_cache import EmbeddingCache
    from ..evaluation import load_embedder
    from ..manifest import read_any
    from ..progress import info
    from ..reference_stats import build_reference_stats
    from ..validate import existing_path, positive_int, readable_file, writable_output

    existing_path(audio, "--audio")
    writable_output(out, "--out")
    positive_int("--max-frames", max_frames)
    if weights is not None:
        readable_file(weights, "weights file (--weights)")
    positive_int("--batch-size", batch_size)
    manifest = read_any(audio)
    from ..sharding import is_main, sharded_run

    with sharded_run():
        emb = load_embedder(embedder, weights) if weights else load_embedder(embedder)
        stats = build_reference_stats(manifest, emb, cache=EmbeddingCache(cache_dir), normalize=not no_normalize,
                                      max_frames=max_frames, seed=seed, batch_size=batch_size)
        if is_main():
            path = stats.save(out)
            info(f"wrote {path}: {stats.n_clips} clips, {stats.count} frames, dim {stats.mean.shape[0]}")


@app.command("show")
def show(file: Path = typer.Argument(..., help="A statistics .npz file.")) -> None:
    """Print a statistics file's provenance and summary."""
    from rich.console import Console
    from rich.table import Table

    from ..reference_stats import ReferenceStats
    from ..validate import readable_file

    readable_file(file, "statistics file (.npz)")
    stats = ReferenceStats.load(file)
    table = Table(title=str(file), show_header=False)
    table.add_column("key")
    table.add_column("value")
    for k, v in stats.summary().items():
        table.add_row(str(k), str(v))
    Console(width=160).print(table)
