"""`magnet-eval data synth`: the offline text-to-music corpus (composed, FluidSynth-rendered, captioned, with stems)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..progress import info
from ..synth.genres import GENRES


def synth(
    out: Path = typer.Option(..., "--out", help="Output folder: audio/, stems/, midi/, records/, manifest.jsonl."),
    n: int = typer.Option(200, "--n", help="Number of clips (clip i is the same whatever N: grow a corpus by re-running)."),
    duration: float = typer.Option(10.0, "--duration", help="Seconds per clip (exact length after trim/pad)."),
    seed: int = typer.Option(0, "--seed", help="Corpus seed: the same seed gives the same bytes."),
    workers: int = typer.Option(2, "--workers", help="Parallel processes (one FluidSynth render at a time each)."),
    sample_rate: int = typer.Option(32000, "--sample-rate", help="Output sample rate (mono wav)."),
    genres: Optional[str] = typer.Option(None, "--genres", help=f"Comma-separated subset of: {', '.join(GENRES)} (default: all)."),
    force: bool = typer.Option(False, "--force", help="Re-render clips that are already finished."),
) -> None:
    """Compose and render multi-track pieces (drums, bass, chords, lead) with MusicCaps-like captions and stems; resumable."""
    from ..errors import InvalidOptionError
    from ..synth.corpus import build_corpus, summarize
    from ..validate import positive_float, positive_int, writable_output

    positive_int("--n", n)
    positive_float("--duration", duration, maximum=3600.0, why_max="one hour: clips are rendered in memory")
    positive_int("--workers", workers)
    positive_int("--sample-rate", sample_rate)
    writable_output(out, "--out", kind="dir")
    chosen = [g.strip() for g in genres.split(",") if g.strip()] if genres else None
    unknown = [g for g in chosen or [] if g not in GENRES]
    if genres is not None and not chosen or unknown:
        raise InvalidOptionError(f"--genres {genres!r}: unknown {', '.join(unknown) or '(empty)'}; "
                                 f"choose among {', '.join(GENRES)}")
    manifest = build_corpus(out, n=n, duration=duration, seed=seed, workers=workers, sample_rate=sample_rate,
                            genres=chosen, force=force)
    s = summarize(manifest)
    info(f"wrote {out / 'manifest.jsonl'}: {s['clips']} clips; splits {s['splits']}")
    info(f"genres {s['genres']}")
    info(f"stems {s['stems']}")
