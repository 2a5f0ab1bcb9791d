"""Render MIDI with the `fluidsynth` program and the FluidR3 General MIDI soundfont.

FluidSynth runs offline (`-F`, no audio driver, no shell) with every setting that shapes the
sound fixed on the command line: chorus off, reverb on with fixed parameters, float output (no
dither), one CPU core. Rendering the same file twice gives the same samples, which is what
makes the corpus byte-for-byte reproducible.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..errors import MagnetEvalError

SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM2-2.sf2",
)
INSTALL_HINT = "run `make setup` or `apt-get install fluidsynth fluid-soundfont-gm`"
FLUIDSYNTH_RATES = (22050, 96000)  # the sample rates FluidSynth itself accepts

FLUIDSYNTH_SETTINGS = (
    "synth.chorus.active=0",
    "synth.reverb.active=1",
    "synth.reverb.room-size=0.45",
    "synth.reverb.damp=0.4",
    "synth.reverb.width=0.5",
    "synth.reverb.level=0.6",
    "synth.cpu-cores=1",
    "synth.polyphony=256",
    "synth.dynamic-sample-loading=1",
)


class RenderError(MagnetEvalError):
    """FluidSynth or the soundfont is missing, or a render failed."""


def find_fluidsynth() -> str:
    """Path of the fluidsynth program, or RenderError with how to install it."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise RenderError(f"the `fluidsynth` program is not installed: {INSTALL_HINT}")
    return exe


def find_soundfont() -> Path:
    """The FluidR3_GM soundfont ($MAGNET_EVAL_SOUNDFONT overrides), or RenderError naming where it belongs."""
    override = os.environ.get("MAGNET_EVAL_SOUNDFONT")
    if override:
        if Path(override).is_file():
            return Path(override)
        raise RenderError(f"MAGNET_EVAL_SOUNDFONT={override} does not exist")
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise RenderError(f"the General MIDI soundfont {SOUNDFONT_CANDIDATES[0]} is not installed: {INSTALL_HINT}")


def render_rate(sample_rate: int) -> int:
    """The rate FluidSynth renders at: the target rate when FluidSynth accepts it, else 44.1 kHz (then resampled)."""
    return sample_rate if FLUIDSYNTH_RATES[0] <= sample_rate <= FLUIDSYNTH_RATES[1] else 44100


def render_midi_file(midi: str | Path, wav: str | Path, sample_rate: int, gain: float = 0.5) -> Path:
    """Render `midi` to a float stereo wav at `sample_rate` (which must be one FluidSynth accepts)."""
    cmd = [find_fluidsynth(), "-n", "-i", "-q", "-g", f"{gain:g}", "-r", str(int(sample_rate)), "-O", "float", "-T", "wav"]
    for setting in FLUIDSYNTH_SETTINGS:
        cmd += ["-o", setting]
    cmd += ["-F", str(wav), str(find_soundfont()), str(midi)]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not Path(wav).is_file():
        tail = (proc.stderr or proc.stdout).strip()[-400:]
        raise RenderError(f"fluidsynth failed on {midi} (exit {proc.returncode}): {tail}")
    return Path(wav)


def render_mono(midi: str | Path, workdir: str | Path, sample_rate: int, n_samples: int, fade_s: float = 0.02) -> np.ndarray:
    """Render `midi` to mono float32 at `sample_rate`, exactly `n_samples` long, with a short fade-out.

    The downmix and any resampling go through `magnet_eval.audio`; the fade keeps the cut at the
    clip's end from clicking (it is linear, so a mix of faded stems is the faded mix).
    """
    from ..audio import fit_length, load_audio

    rate = render_rate(sample_rate)
    wav = Path(workdir) / (Path(midi).stem + ".render.wav")
    render_midi_file(midi, wav, rate)
    try:
        import soundfile as sf

        if sf.info(str(wav)).frames == 0:  # nothing sounded before the end of the file
            audio = np.zeros(n_samples, dtype=np.float32)
        else:
            audio, _ = load_audio(wav, sr=sample_rate, mono=True)
    finally:
        wav.unlink(missing_ok=True)
    audio = fit_length(audio.astype(np.float32), n_samples)
    n_fade = min(int(fade_s * sample_rate), n_samples)
    if n_fade > 0:
        audio[-n_fade:] *= np.linspace(1.0, 0.0, n_fade, dtype=np.float32)
    return audio
