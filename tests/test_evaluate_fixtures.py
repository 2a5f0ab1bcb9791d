"""Shared fabricated inputs for the metric tests: a spectral toy embedder/classifier and FluidSynth-rendered clips.

The toy models are deterministic numpy functions with the Embedder / classifier interface,
so orchestration, caching and metric maths are tested without pretrained weights; the tests
that need the real offline embedders (musicnn) use them when the embedder registry is present.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from magnet_eval.audio import save_audio
from magnet_eval.manifest import Manifest, ManifestEntry

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


class BandEmbedder:
    """Log band energies (24 log-spaced bands) of 128 ms frames at 16 kHz: a toy embedder."""

    name = "toybands"
    sample_rate = 16000
    dim = 24
    weights_id = "toybands-v1"

    def __init__(self):
        self.calls = 0
        edges = np.geomspace(40.0, 7900.0, self.dim + 1)
        freqs = np.fft.rfftfreq(2048, 1.0 / self.sample_rate)
        self._bands = [(freqs >= lo) & (freqs < hi) for lo, hi in zip(edges[:-1], edges[1:])]

    def load(self, weights=None):
        return self

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        assert sr == self.sample_rate
        self.calls += 1
        x = np.asarray(audio, dtype=np.float64)
        n = max(1, (len(x) - 2048) // 2048 + 1)
        x = np.pad(x, (0, max(0, 2048 - len(x))))
        frames = np.stack([x[i * 2048:(i + 1) * 2048] for i in range(n)]) * np.hanning(2048)
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        return np.log(np.stack([power[:, b].sum(axis=1) for b in self._bands], axis=1) + 1e-8).astype(np.float32)


class BandClassifier:
    """Softmax over the 24 toy band energies per 1 s segment: a toy single-label classifier."""

    name = "toyclf"
    sample_rate = 16000
    segment_seconds = 1.0
    weights_id = "toyclf-v1"

    def __init__(self):
        self.emb = BandEmbedder()
        self.labels = [f"band{i}" for i in range(self.emb.dim)]
        self.calls = 0

    def load(self):
        return self

    def probs(self, audio: np.ndarray, sr: int) -> np.ndarray:
        self.calls += 1
        logits = self.emb.embed(audio, sr).mean(axis=0, keepdims=True)
        z = (logits - logits.max()) / 2.0
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)


def write_midi(path: Path, seed: int, seconds: float = 4.0, transpose: int = 0) -> Path:
    """A short two-part MIDI (melody + chords) drawn from `seed`, in one of a few GM programs."""
    import mido

    rng = np.random.default_rng(seed)
    mid = mido.MidiFile(ticks_per_beat=480)
    bpm = 120
    beat_s = 60.0 / bpm
    n_beats = int(seconds / beat_s)
    programs = [0, 4, 24, 48, 73]
    root = int(rng.integers(55, 67)) + transpose
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    for ch, prog in enumerate([int(rng.choice(programs)), int(rng.choice(programs))]):
        tr = mido.MidiTrack()
        mid.tracks.append(tr)
        tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
        tr.append(mido.Message("program_change", channel=ch, program=prog, time=0))
        for _ in range(n_beats):
            if ch == 0:
                notes = [root + 12 + int(rng.choice(scale))]
            else:
                base = root - 12 + int(rng.choice([0, 5, 7]))
                notes = [base, base + 4, base + 7]
            for n in notes:
                tr.append(mido.Message("note_on", channel=ch, note=n, velocity=int(rng.integers(70, 110)), time=0))
            for i, n in enumerate(notes):
                tr.append(mido.Message("note_off", channel=ch, note=n, velocity=0, time=480 if i == 0 else 0))
    mid.save(str(path))
    return path


def render(midi: Path, wav: Path, sr: int = 22050) -> Path:
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.8", "-r", str(sr), "-F", str(wav), str(SOUNDFONT), str(midi)],
                   check=True, capture_output=True, timeout=60)
    return wav


def need_fluidsynth() -> None:
    if shutil.which("fluidsynth") is None or not SOUNDFONT.is_file():
        pytest.skip("fluidsynth and the FluidR3_GM soundfont are needed to render test clips")


def make_manifest(folder: Path, clips: dict[str, np.ndarray], sr: int, captions: dict[str, str] | None = None) -> Manifest:
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for cid, wav in clips.items():
        p = save_audio(folder / f"{cid}.wav", wav, sr)
        entries.append(ManifestEntry(id=cid, caption=(captions or {}).get(cid, f"clip {cid}"), audio_path=str(p),
                                     duration=len(wav) / sr))
    man = Manifest(entries, source=str(folder / "manifest.jsonl"))
    man.write(folder / "manifest.jsonl")
    return Manifest.read(folder / "manifest.jsonl")


def render_corpus(root: Path, n: int = 8, seconds: float = 4.0) -> dict[str, Manifest]:
    """Rendered 'real' and 'held-out real' sets, a pitch-shifted + noised copy of the held-out set, white noise.

    Held-out clips share the prompt ids of the real set (p0..), so paired metrics (KL) pair them.
    """
    import soundfile as sf

    from magnet_eval.audio import resample

    sr = 22050
    real, held, shifted, noise = {}, {}, {}, {}
    rng = np.random.default_rng(1234)
    for i in range(n):
        for seed, store in ((100 + i, real), (500 + i, held)):
            mid = write_midi(root / f"m{seed}.mid", seed, seconds)
            wav_path = render(mid, root / f"r{seed}.wav", sr)
            wav, _ = sf.read(str(wav_path), dtype="float32", always_2d=True)
            store[f"p{i}"] = wav.mean(axis=1)[: int(seconds * sr)]
        # pitch shift up by a fifth (resampling: also 1.5x faster), looped to length, plus noise at ~6 dB SNR
        up = resample(held[f"p{i}"], 3 * sr, 2 * sr)
        up = np.resize(up, held[f"p{i}"].shape[0])
        sig_rms = float(np.sqrt(np.mean(up ** 2))) or 1e-3
        shifted[f"p{i}"] = (up + rng.normal(0, sig_rms / 2.0, up.shape)).astype(np.float32)
        noise[f"p{i}"] = rng.uniform(-0.5, 0.5, int(seconds * sr)).astype(np.float32)
    return {name: make_manifest(root / name, clips, sr)
            for name, clips in (("real", real), ("heldout", held), ("shifted", shifted), ("noise", noise))}


def test_band_embedder_shapes_and_determinism():
    emb = BandEmbedder()
    x = np.random.default_rng(0).normal(size=16000).astype(np.float32)
    a, b = emb.embed(x, 16000), emb.embed(x, 16000)
    assert a.shape == (7, 24) and np.array_equal(a, b)
    # a low tone puts its energy in a low band, a high tone in a high band
    t = np.arange(16000) / 16000
    low = emb.embed(np.sin(2 * np.pi * 100 * t), 16000).mean(0)
    high = emb.embed(np.sin(2 * np.pi * 4000 * t), 16000).mean(0)
    assert low.argmax() < 6 < high.argmax()


def test_band_classifier_is_a_distribution():
    clf = BandClassifier()
    p = clf.probs(np.random.default_rng(1).normal(size=16000).astype(np.float32), 16000)
    assert p.shape == (1, 24) and np.isclose(p.sum(), 1.0) and (p > 0).all()
