"""MIR descriptors: vocabularies and derived values, and extraction on audio with known truth
(numpy tones, click tracks, noise bursts, a FluidSynth-rendered C-major progression)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from magnet_eval.errors import AudioError
from magnet_eval.mir.descriptors import (
    DESCRIPTORS,
    NONE,
    VECTOR_SIZE,
    ClipDescriptors,
    alteration_ratio,
    canonical_key,
    canonical_triad,
    extract_descriptors,
    meter_from_accents,
)

SR = 22050
C_MAJOR_PCS = {0, 2, 4, 5, 7, 9, 11}
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


# ----------------------------------------------------------------------------- synthetic audio


def tone(midi: float, seconds: float, sr: int = SR, amp: float = 0.2) -> np.ndarray:
    """A decaying harmonic tone (4 partials) at MIDI pitch `midi`."""
    t = np.arange(int(seconds * sr)) / sr
    f = 440.0 * 2 ** ((midi - 69) / 12)
    partials = sum((0.6 ** k) * np.sin(2 * np.pi * f * (k + 1) * t) for k in range(4) if f * (k + 1) < sr / 2)
    env = np.minimum(1.0, t / 0.01) * np.exp(-t / (1.5 * seconds))
    return (amp * partials * env).astype(np.float32)


def sequence(events: list[tuple[float, float, tuple[float, ...]]], seconds: float, sr: int = SR) -> np.ndarray:
    """Mix of (start s, duration s, MIDI pitches) events."""
    x = np.zeros(int(seconds * sr), np.float32)
    for start, dur, pitches in events:
        s = int(start * sr)
        for p in pitches:
            y = tone(p, dur, sr)[: len(x) - s]
            x[s:s + len(y)] += y
    return x


def c_major_piece(transpose: float = 0.0, sr: int = SR) -> np.ndarray:
    """8 s: I-IV-V-I block chords (with bass) at one chord per 2 s, and a diatonic melody in eighths."""
    chords = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)]
    melody = [72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72, 74, 76, 74, 72, 72]
    events = [(2.0 * i, 1.95, tuple(p + transpose for p in (c[0] - 12,) + c)) for i, c in enumerate(chords)]
    events += [(0.5 * j, 0.45, (m + transpose,)) for j, m in enumerate(melody)]
    return sequence(events, 8.0, sr)


def click_track(beats_per_bar: int, bpm: float = 120.0, seconds: float = 8.0, sr: int = SR) -> np.ndarray:
    """A metronome: the first beat of each bar higher (1.5 kHz) and louder than the others (1 kHz)."""
    x = np.zeros(int(seconds * sr), np.float32)
    n = int(0.03 * sr)
    t = np.arange(n) / sr
    for k in range(int(seconds * bpm / 60)):
        s = int(k * 60 / bpm * sr)
        accent = k % beats_per_bar == 0
        burst = (0.9 if accent else 0.4) * np.sin(2 * np.pi * (1500 if accent else 1000) * t) * np.exp(-t / 0.008)
        burst = burst[: len(x) - s]
        x[s:s + len(burst)] += burst.astype(np.float32)
    return x


def noise_bursts(times: np.ndarray, seconds: float = 6.0, sr: int = SR, seed: int = 0) -> np.ndarray:
    """Broadband 30 ms noise hits (they sound in every percussive band) at `times`."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * sr), np.float32)
    n = int(0.03 * sr)
    t = np.arange(n) / sr
    for t0 in times:
        s = int(t0 * sr)
        hit = (0.5 * rng.standard_normal(n) * np.exp(-t / 0.006)).astype(np.float32)[: len(x) - s]
        x[s:s + len(hit)] += hit
    return x


def need_fluidsynth() -> None:
    if shutil.which("fluidsynth") is None or not SOUNDFONT.is_file():
        pytest.skip("fluidsynth and the FluidR3_GM soundfont are needed to render the MIDI test clip")


def write_c_major_midi(path: Path, bars: int = 4, bpm: int = 120) -> Path:
    """Piano block chords C-F-G-C (one per 4/4 bar), a soft bass on the beats, written with mido."""
    import mido

    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    track.append(mido.Message("program_change", program=0, channel=0, time=0))
    track.append(mido.Message("program_change", program=32, channel=1, time=0))
    events = []
    chords = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)]
    for b in range(bars):
        chord = chords[b % 4]
        start = b * 4 * 480
        for p in chord:
            events += [(start, mido.Message("note_on", note=p, velocity=90, channel=0)),
                       (start + 4 * 480 - 20, mido.Message("note_off", note=p, velocity=0, channel=0))]
        for k in range(4):
            events += [(start + k * 480, mido.Message("note_on", note=chord[0] - 24, velocity=60, channel=1)),
                       (start + k * 480 + 400, mido.Message("note_off", note=chord[0] - 24, velocity=0, channel=1))]
    events.sort(key=lambda e: (e[0], e[1].type == "note_on"))
    last = 0
    for tick, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    mid.save(str(path))
    return path


# ----------------------------------------------------------------------------- values and vocabularies


def test_from_values_derives_counts_and_round_trips():
    d = ClipDescriptors.from_values(key="A minor", note_pitches=[57, 60, 64, 69, 69, 76], percussive_density=7,
                                    beats_per_bar=3, chord_triads=["Am", "Am", "C", "N", "Dm", "E"],
                                    structure=["A", "B", "A"])
    assert d.label("key") == "A minor"
    assert d.label("pitch_range") == "19"  # 76 - 57
    assert d.label("n_pitch_classes") == "3"  # A, C, E
    assert d.label("beats_per_bar") == "3"
    assert d.label("chord_variety") == "4"  # Am C Dm E; N is not a chord
    # Am -> C (switch) -> Dm (switch) -> E (switch): 3 of 3 changes switch quality
    assert d.label("chord_alteration_ratio") == "0.9-1.0"
    assert d.histogram("note_pitches") == {"57": 1.0, "60": 1.0, "64": 1.0, "69": 2.0, "76": 1.0}
    assert d.histogram("note_pitch_classes") == {"C": 1.0, "E": 2.0, "A": 3.0}
    assert d.histogram("chord_triads") == {"C": 1.0, "E": 1.0, "Dm": 1.0, "Am": 2.0, "N": 1.0}
    assert d.histogram("structure") == {"A": 2.0, "B": 1.0}
    v = d.to_vector()
    assert v.shape == (VECTOR_SIZE,) and v.dtype == np.float32
    back = ClipDescriptors.from_vector(v)
    for desc in DESCRIPTORS:
        np.testing.assert_array_equal(back.counts[desc.name], d.counts[desc.name])
    assert back.extras["n_notes"] == 6 and math.isnan(back.extras["bpm"])
    assert back.value("pitch_range") == 19.0 and back.value("chord_alteration_ratio") == 1.0


def test_empty_events_go_to_the_none_bins():
    d = ClipDescriptors.from_values(key=None, note_pitches=[], chord_triads=[], beats_per_bar=None)
    assert d.label("key") == NONE
    assert d.label("pitch_range") == NONE and math.isnan(d.value("pitch_range"))
    assert d.label("n_pitch_classes") == "0"
    assert d.histogram("note_pitches") == {NONE: 1.0}
    assert d.histogram("chord_triads") == {"N": 1.0}
    assert d.label("chord_alteration_ratio") == NONE
    for desc in DESCRIPTORS:  # every descriptor carries a clip mass of exactly 1
        assert d.mass(desc.name).sum() == pytest.approx(1.0)


def test_alteration_ratio_and_spelling():
    assert alteration_ratio(["C", "C", "Cm", "Cm", "C", "F"]) == (pytest.approx(2 / 3), 3)
    assert alteration_ratio(["G", "G", "G"]) == (None, 0)
    assert alteration_ratio(["Am", "Dm", "Em"]) == (0.0, 2)
    assert canonical_triad("A#m") == "Bbm" and canonical_triad("Db") == "C#" and canonical_triad("") == "N"
    assert canonical_key("G#", "Minor") == "Ab minor"
    with pytest.raises(ValueError):
        canonical_triad("H")
    with pytest.raises(ValueError):
        ClipDescriptors.from_values(key="C major", note_pitches=[130])


def test_meter_from_accents():
    assert meter_from_accents(np.tile([1.0, 0, 0, 0], 5))[0] == 4
    assert meter_from_accents(np.tile([1.0, 0, 0], 6))[0] == 3
    assert meter_from_accents(np.roll(np.tile([1.0, 0, 0, 0, 0, 0, 0], 3), 2))[0] == 7
    assert meter_from_accents(np.tile([1.0, 0, 0, 0], 1))[0] is None  # too few beats
    assert meter_from_accents(np.ones(16))[0] is None  # no accent at all
    assert meter_from_accents(np.random.default_rng(3).standard_normal(24))[0] is None  # no pattern


# ----------------------------------------------------------------------------- extraction


def test_c_major_tones_key_chords_and_pitch_classes():
    d = extract_descriptors(c_major_piece(), SR)
    assert d.label("key") == "C major"
    triads = d.histogram("chord_triads")
    chord_frames = sum(v for k, v in triads.items() if k != "N")
    assert sum(triads.get(c, 0) for c in ("C", "F", "G")) >= 0.8 * chord_frames
    assert {"C", "F", "G"} <= set(triads)
    pcs = d.histogram("note_pitch_classes")
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    in_scale = sum(v for k, v in pcs.items() if names.index(k) in C_MAJOR_PCS)
    assert in_scale >= 0.8 * sum(pcs.values())
    assert {"C", "E", "G"} <= set(pcs)
    assert d.value("pitch_range") >= 12
    assert d.label("beats_per_bar") == "4"  # chords change every 4 beats
    assert d.extras["bpm"] == pytest.approx(120, abs=3)


def test_transposition_moves_key_and_chords():
    d = extract_descriptors(c_major_piece(transpose=2), SR)
    assert d.label("key") == "D major"
    triads = d.histogram("chord_triads")
    assert max(triads, key=triads.get) == "D"


@pytest.mark.parametrize("beats", [3, 4])
def test_beats_per_bar_of_click_tracks(beats):
    d = extract_descriptors(click_track(beats), SR)
    assert d.label("beats_per_bar") == str(beats)
    assert d.extras["bpm"] == pytest.approx(120, abs=3)


def test_percussive_density_counts_hits_in_a_window():
    sparse = extract_descriptors(noise_bursts(np.arange(0.25, 6, 1.0)), SR)
    dense = extract_descriptors(noise_bursts(np.arange(0.25, 6, 0.1)), SR)
    noise = extract_descriptors((0.1 * np.random.default_rng(0).standard_normal(6 * SR)).astype(np.float32), SR)
    assert 1 <= sparse.value("percussive_density") <= 3  # one hit per window, in up to 3 bands
    assert dense.value("percussive_density") >= 12  # ~6 hits per 0.6 s window, several bands each
    assert noise.value("percussive_density") <= 2  # stationary noise has no onsets


def test_structure_labels_a_b_a():
    a = sequence([(1.0 * i, 0.95, (60, 64, 67)) for i in range(4)], 4.0)
    b = (0.05 * np.random.default_rng(1).standard_normal(4 * SR)).astype(np.float32)
    d = extract_descriptors(np.concatenate([a, b, a]), SR)
    assert d.histogram("structure") == {"A": 2.0, "B": 1.0}
    assert d.extras["n_segments"] == 3
    steady = extract_descriptors(c_major_piece()[: 6 * SR], SR)
    assert steady.extras["n_segments"] < 3


def test_silence_has_no_events():
    d = extract_descriptors(np.zeros(3 * SR, np.float32), SR)
    assert d.label("key") == NONE
    assert d.histogram("note_pitches") == {NONE: 1.0}
    assert d.value("percussive_density") == 0
    assert d.label("beats_per_bar") == NONE
    assert set(d.histogram("chord_triads")) == {"N"}


def test_bad_audio_is_refused():
    x = c_major_piece()[:SR].copy()
    x[100] = np.nan
    with pytest.raises(AudioError):
        extract_descriptors(x, SR)
    with pytest.raises(AudioError, match="0.5 s"):
        extract_descriptors(np.zeros(SR // 10, np.float32), SR)


def test_fluidsynth_c_major_progression(tmp_path):
    need_fluidsynth()
    import subprocess

    from magnet_eval.audio import load_audio

    midi = write_c_major_midi(tmp_path / "cmaj.mid")
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(SR), "-F", str(tmp_path / "cmaj.wav"),
                    str(SOUNDFONT), str(midi)], check=True, capture_output=True)
    x, sr = load_audio(tmp_path / "cmaj.wav", sr=SR)
    d = extract_descriptors(x[: 8 * SR], sr)
    assert d.label("key") == "C major"
    triads = d.histogram("chord_triads")
    assert max(triads, key=triads.get) == "C"
    assert {"C", "F", "G"} <= set(triads)
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    pcs = d.histogram("note_pitch_classes")
    assert sum(v for k, v in pcs.items() if names.index(k) in C_MAJOR_PCS) >= 0.7 * sum(pcs.values())


# ----------------------------------------------------------------------------- files, cache, stem + context


def test_describe_files_caches_and_recomputes_changed_files(tmp_path):
    from magnet_eval.audio import save_audio
    from magnet_eval.embedding_cache import EmbeddingCache
    from magnet_eval.mir.extract import describe_files

    a = save_audio(tmp_path / "a.wav", c_major_piece()[: 3 * SR], SR)
    b = save_audio(tmp_path / "b.wav", click_track(4, seconds=3.0), SR)
    cache = EmbeddingCache(tmp_path / "cache")
    first = describe_files([("a", str(a)), ("b", str(b))], cache=cache, workers=2)
    assert list(first) == ["a", "b"] and cache.misses == 2
    again = describe_files([("b", str(b)), ("a", str(a))], cache=cache, workers=2)
    assert cache.misses == 2 and cache.hits == 2 and list(again) == ["b", "a"]
    for k in ("a", "b"):
        np.testing.assert_array_equal(first[k].to_vector(), again[k].to_vector())
    # the in-process path gives the same values as the worker processes
    solo = describe_files([("a", str(a))], cache=EmbeddingCache(tmp_path / "other"), workers=1)
    np.testing.assert_array_equal(solo["a"].to_vector(), first["a"].to_vector())
    # a rewritten file is a new cache key
    save_audio(a, c_major_piece(transpose=5)[: 3 * SR], SR)
    changed = describe_files([("a", str(a))], cache=cache, workers=1)
    assert cache.misses == 3
    assert changed["a"].label("key") != first["a"].label("key")


def test_stem_plus_context_sum_and_clip_protection():
    from magnet_eval.mir.extract import stem_plus_context

    stem = np.full(100, 0.25, np.float32)
    np.testing.assert_allclose(stem_plus_context(stem, np.full(60, 0.5, np.float32)),
                               np.r_[np.full(60, 0.75), np.full(40, 0.25)])  # context padded to the stem
    np.testing.assert_allclose(stem_plus_context(stem, np.full(300, 0.5, np.float32)), 0.75)  # trimmed
    loud = stem_plus_context(np.full(10, 0.8, np.float32), np.full(10, 0.8, np.float32))
    assert float(np.abs(loud).max()) == pytest.approx(1.0)  # scaled, not clipped
    with pytest.raises(AudioError):
        stem_plus_context(stem, np.full(100, np.inf, np.float32))


def test_describe_files_with_context_uses_the_mix(tmp_path):
    from magnet_eval.audio import save_audio
    from magnet_eval.embedding_cache import EmbeddingCache
    from magnet_eval.mir.extract import describe_file, describe_files

    melody = save_audio(tmp_path / "melody.wav", c_major_piece()[: 4 * SR], SR)
    drums = save_audio(tmp_path / "drums.wav", noise_bursts(np.arange(0.05, 4, 0.1), seconds=4.0), SR)
    cache = EmbeddingCache(tmp_path / "cache")
    got = describe_files([("m", str(melody), str(drums)), ("alone", str(melody), None)], cache=cache, workers=1)
    direct = describe_file(melody, drums)
    np.testing.assert_array_equal(got["m"].to_vector(), direct.to_vector())
    assert got["m"].value("percussive_density") > got["alone"].value("percussive_density")


def test_the_reused_rhythm_extractor_gives_a_fresh_ones_beats():
    """One RhythmExtractor2013 per process (reset per clip): the same beats as a new one, whatever came before."""
    from magnet_eval.mir.descriptors import _essentia, _rhythm_extractor

    clips = [click_track(3), c_major_piece(), click_track(4)]
    fresh = [_essentia().RhythmExtractor2013(method="multifeature")(x) for x in clips]
    for x, want in zip(clips[::-1], fresh[::-1]):
        got = _rhythm_extractor()
        got.reset()
        for a, b in zip(got(x), want):
            assert np.array_equal(np.asarray(a), np.asarray(b))
    assert extract_descriptors(click_track(3), SR).to_vector().tolist() == \
        extract_descriptors(click_track(3), SR).to_vector().tolist()


@pytest.mark.parametrize("width", [3, 17])
def test_median_filter_1d_is_scipys(width):
    from scipy.ndimage import median_filter

    from magnet_eval.mir.descriptors import median_filter_1d

    x = np.abs(np.random.default_rng(width).normal(size=(40, 31))).astype(np.float32)
    x[5, :] = 0.0  # ties and a constant row
    for axis in (0, 1):
        size = [1, 1]
        size[axis] = width
        want = median_filter(x, size=tuple(size), mode="reflect")
        got = median_filter_1d(x, width, axis)
        assert got.dtype == want.dtype and np.array_equal(got, want)
