"""`magnet-eval data synth`: the offline text-to-music corpus."""

from __future__ import annotations

from pathlib import Path

import typer

from ..progress import info


def synth(
    out: Path = typer.Option(..., "--out", help="Output folder (audio/, stems/, midi/, manifest.jsonl)."),
    n: int = typer.Option(200, "--n", help="Number of clips."),
    duration: float = typer.Option(10.0, "--duration", help="Seconds per clip."),
    seed: int = typer.Option(0, "--seed", help="Corpus seed: the same seed gives the same bytes."),
    workers: int = typer.Option(2, "--workers", help="Parallel FluidSynth processes."),
    sample_rate: int = typer.Option(32000, "--sample-rate", help="Output rate (mono)."),
) -> None:
    """Compose and render multi-track pieces (drums, bass, chords, lead) with captions and stems; resumable."""
    from collections import Counter

    from ..music.render import render_corpus

    manifest = render_corpus(out, n=n, duration=duration, seed=seed, workers=workers, sample_rate=sample_rate)
    splits = Counter(e.labels["split"] for e in manifest)
    genres = Counter(e.labels["genre"] for e in manifest)
    info(f"wrote {out}/manifest.jsonl: {len(manifest)} clips ({dict(splits)}); genres {dict(genres)}")
