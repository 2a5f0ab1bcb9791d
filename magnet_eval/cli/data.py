"""`magnet-eval data`: manifests from caption files, manifest checks, and the offline rendered corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..manifest import ReadResult, read_any, read_audiocaps, read_musiccaps
from ..progress import info, track, warn
from .data_synth import synth

app = typer.Typer(no_args_is_help=True)
app.command(name="synth")(synth)


def _write(result: ReadResult, out: Path, audio_dir: Optional[Path], drop_missing: bool) -> None:
    manifest = result.manifest
    if audio_dir is not None and result.missing:
        shown = ", ".join(result.missing[:10]) + (" ..." if len(result.missing) > 10 else "")
        warn(f"{len(result.missing)} of {len(manifest)} clips have no audio in {audio_dir}: {shown}")
        missing_file = out.with_suffix(".missing.txt")
        missing_file.parent.mkdir(parents=True, exist_ok=True)
        missing_file.write_text("\n".join(result.missing) + "\n")
        info(f"list of clips without audio: {missing_file}")
        if drop_missing:
            manifest = manifest.with_audio()
    manifest.write(out)
    info(f"wrote {out}: {len(manifest)} entries from {result.n_rows} rows")


def _check_io(csv: Path, out: Path, audio_dir: Optional[Path]) -> None:
    """Options shared by the caption readers, checked before the CSV is parsed or the folder indexed."""
    from ..errors import ManifestError
    from ..validate import readable_file, writable_output

    readable_file(csv, "caption file (--csv)", ManifestError)
    writable_output(out, "--out")
    if audio_dir is not None and not audio_dir.is_dir():
        raise ManifestError(f"--audio-dir {audio_dir}: is not a folder")


@app.command()
def musiccaps(
    csv: Path = typer.Option(..., "--csv", help="musiccaps-public.csv (extra columns are kept)."),
    out: Path = typer.Option(..., "--out", help="Manifest to write (.jsonl)."),
    audio_dir: Optional[Path] = typer.Option(None, "--audio-dir", help="Folder of clips named by ytid (with or without segment bounds)."),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Leave rows without audio out of the manifest (they are always listed)."),
) -> None:
    """Convert MusicCaps captions (+ a local audio folder) to a manifest; reports rows with no audio."""
    _check_io(csv, out, audio_dir)
    _write(read_musiccaps(csv, audio_dir), out, audio_dir, drop_missing)


@app.command()
def audiocaps(
    csv: Path = typer.Option(..., "--csv", help="AudioCaps CSV (audiocap_id, youtube_id, start_time, caption)."),
    out: Path = typer.Option(..., "--out", help="Manifest to write (.jsonl)."),
    audio_dir: Optional[Path] = typer.Option(None, "--audio-dir", help="Folder of clips named by youtube_id (or Y-prefixed, or audiocap_id)."),
    caption: str = typer.Option("first", "--caption", help="Which of a clip's captions is the prompt: first | random."),
    seed: int = typer.Option(0, "--seed", help="Seed of the 'random' caption choice."),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Leave clips without audio out of the manifest."),
) -> None:
    """Convert AudioCaps captions (one entry per clip) + a local audio folder to a manifest."""
    _check_io(csv, out, audio_dir)
    from ..validate import one_of

    one_of("--caption", caption, ("first", "random"))
    _write(read_audiocaps(csv, audio_dir, caption_choice=caption, seed=seed), out, audio_dir, drop_missing)


@app.command()
def check(
    manifest: Path = typer.Argument(..., help="A manifest (.jsonl) or a folder of audio."),
    decode: bool = typer.Option(True, "--decode/--no-decode", help="Also decode every file (catches corrupt audio, NaNs)."),
) -> None:
    """Check that a manifest matches its files: every file exists and decodes to finite audio."""
    from ..audio import load_audio
    from ..errors import AudioError, ManifestError

    m = read_any(manifest)
    m.validate()
    bad = []
    if decode:
        for e in track(m, "decoding"):
            try:
                load_audio(e.audio_path, mono=False)
            except AudioError as exc:
                bad.append(str(exc))
    if bad:
        raise ManifestError(f"{len(bad)} files do not decode:\n  " + "\n  ".join(bad[:20]))
    info(f"{manifest}: {len(m)} entries, all files present{' and decodable' if decode else ''}")
