"""StemGen's 11 music-information-retrieval descriptors of a clip, extracted with essentia.

StemGen (Parker et al. 2023, Sec. 3.1) computes MIRDD over 11 descriptors that its authors
extracted with in-house transcription, beat, chord and structure models, which are not public.
Each is replaced here by a public extractor (essentia 2.1b6, plus librosa's HPSS), fixed as
follows; the same list is in docs/metrics.md ("MIRDD"):

 1. key signature ............ essentia KeyExtractor (HPCP + "bgate" key profiles) on the full mix;
                               one of 24 keys, "none" for silence (< -60 dBFS RMS).
 2. note pitch range ......... max - min MIDI pitch of the transcribed notes (semitones);
                               "none" when no note was found.
 3. unique pitch classes ..... number of distinct pitch classes among the notes (0..12).
 4. percussive density ....... onsets of the percussive part (librosa HPSS, median-filter
                               kernel 17) in 3 bands (30-150, 150-2000, 2000-16000 Hz: kick /
                               snare-toms / hats-cymbals): a rise of the 35 ms band energy of
                               >= 6 dB (>= 3 robust deviations of the band's rises, capped at 12 dB,
                               so stationary noise does not count); the maximum number of band
                               onsets in any 0.6 s window (cap 40). StemGen counted transcribed drum
                               hits; a hit sounding in several bands counts once per band, which
                               stands in for its "vertical" density.
 5. beats per bar ............ essentia RhythmExtractor2013 (multifeature) beats; per beat an
                               accent = z(harmonic change: cosine distance between the HPCP of the
                               beat and of the previous beat, chords changing on bar lines) +
                               0.5 z(BeatsLoudness in dB); the meter m in 2..7 whose best beat
                               phase stands out most (two-sample t >= 2), else "none" (fewer
                               than 8 beats, or no accent pattern). StemGen used a beat/downbeat model.
 6. chord-label variety ...... number of distinct triads among the frame chords.
 7. chord alteration ratio ... fraction of chord changes that switch quality (major <-> minor)
                               in the chord sequence (repeats collapsed), 10 bins of 0.1 over
                               [0, 1]; "none" when the clip has no chord change.
 8. note pitches ............. multiset of MIDI pitches of the notes: essentia MultiPitchMelodia
                               (peakFrameThreshold 0.5) on the equal-loudness-filtered harmonic part,
                               frame pitches rounded to semitones, notes = runs >= 0.1 s
                               (gaps <= 3 frames bridged). StemGen used a transcription model.
 9. note pitch classes ....... the same notes modulo 12.
10. chord triads ............. essentia HPCP (12 bins, 40-2000 Hz, no harmonic weighting) +
                               ChordsDetection (1 s window), one label per 46 ms hop among the
                               24 major/minor triads, "N" for frames 40 dB below the loudest.
11. structure labels ......... self-similarity segmentation (essentia's SBic, a full-covariance
                               BIC, hardly ever splits a 10 s clip on these features): Foote
                               novelty on clip-standardised MFCC + HPCP blocks of 0.46 s, kernel
                               half width 1.9 s, boundaries at novelty >= 1.0; segments labelled
                               A, B, C... in order of first appearance, a segment taking an earlier
                               label when its mean vector has cosine >= 0.5 with that label's
                               centroid (StemGen used a structure model with functional labels).

Per clip each descriptor is a vector of counts over a fixed vocabulary (`DESCRIPTORS`): one-hot
for categorical values and integer counts, a histogram for the multisets (notes, frames,
segments), with a "none" bin taking a clip that has no such event. That vector form is what
`ClipDescriptors` stores, caches and hands to MIRDD.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import AudioError

DESCRIPTOR_VERSION = "1"  # bump whenever an extractor or its settings change (part of the cache key)
SAMPLE_RATE = 44100  # essentia's defaults are tuned for 44.1 kHz

PITCH_CLASSES: tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_ENHARMONIC = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb", "Cb": "B", "B#": "C", "Fb": "E", "E#": "F"}
NONE = "none"
NO_CHORD = "N"
KEYS: tuple[str, ...] = tuple(f"{p} major" for p in PITCH_CLASSES) + tuple(f"{p} minor" for p in PITCH_CLASSES)
TRIADS: tuple[str, ...] = PITCH_CLASSES + tuple(f"{p}m" for p in PITCH_CLASSES)
METERS: tuple[int, ...] = (2, 3, 4, 5, 6, 7)
MAX_PERCUSSIVE_DENSITY = 40
RATIO_BINS = 10
STRUCTURE_LABELS: tuple[str, ...] = tuple("ABCDEFGH")
STRUCTURE_OTHER = "other"

# extraction settings (documented in the module docstring and docs/metrics.md)
HPSS_KERNEL = 17  # median-filter length (bins / frames) of the harmonic-percussive separation
SILENCE_DB = -60.0
PERC_BANDS_HZ = ((30.0, 150.0), (150.0, 2000.0), (2000.0, 16000.0))
PERC_RISE_DB = 6.0
PERC_NOISE_SIGMAS = 3.0
PERC_MAX_RISE_DB = 12.0  # dense hits widen the spread too: the adaptive threshold stops here
PERC_FLOOR_DB = 40.0  # onsets quieter than (loudest band frame - 40 dB) are ignored
PERC_WINDOW_S = 0.6
MIN_NOTE_S = 0.1
NOTE_GAP_FRAMES = 3
MIN_BEATS = 8
BEAT_LEAD_S = 0.05
MIN_METER_T = 2.0  # t statistic of the accented phase against the other beats
CHORD_FLOOR_DB = 40.0
STRUCTURE_BLOCK_FRAMES = 10  # 10 x 46 ms feature frames per block
STRUCTURE_KERNEL_BLOCKS = 4  # novelty kernel half width (~1.9 s)
STRUCTURE_MIN_NOVELTY = 1.0
STRUCTURE_JOIN_COSINE = 0.5


@dataclass(frozen=True)
class Descriptor:
    """One MIR descriptor: its kind and fixed bins (the vocabulary shared by every population)."""

    name: str
    kind: str  # "categorical" | "count" | "multiset"
    bins: tuple[str, ...]
    what: str

    @property
    def size(self) -> int:
        return len(self.bins)


def _numbers(lo: int, hi: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(lo, hi + 1))


RATIO_LABELS: tuple[str, ...] = tuple(f"{i / RATIO_BINS:.1f}-{(i + 1) / RATIO_BINS:.1f}" for i in range(RATIO_BINS))

DESCRIPTORS: tuple[Descriptor, ...] = (
    Descriptor("key", "categorical", KEYS + (NONE,), "key signature (24 keys)"),
    Descriptor("pitch_range", "count", _numbers(0, 127) + (NONE,), "length of the note pitch range in semitones"),
    Descriptor("n_pitch_classes", "count", _numbers(0, 12), "number of unique pitch classes"),
    Descriptor("percussive_density", "count", _numbers(0, MAX_PERCUSSIVE_DENSITY - 1) + (f"{MAX_PERCUSSIVE_DENSITY}+",),
               "maximum number of percussive onsets in a 0.6 s window"),
    Descriptor("beats_per_bar", "categorical", tuple(str(m) for m in METERS) + (NONE,), "beats per bar"),
    Descriptor("chord_variety", "count", _numbers(0, len(TRIADS)), "number of distinct chord labels"),
    Descriptor("chord_alteration_ratio", "count", RATIO_LABELS + (NONE,),
               "fraction of chord changes switching major <-> minor"),
    Descriptor("note_pitches", "multiset", _numbers(0, 127) + (NONE,), "MIDI pitches of the notes"),
    Descriptor("note_pitch_classes", "multiset", PITCH_CLASSES + (NONE,), "pitch classes of the notes"),
    Descriptor("chord_triads", "multiset", TRIADS + (NO_CHORD,), "triad label per chord frame"),
    Descriptor("structure", "multiset", STRUCTURE_LABELS + (STRUCTURE_OTHER,), "structure label per segment"),
)
DESCRIPTOR_NAMES: tuple[str, ...] = tuple(d.name for d in DESCRIPTORS)
_BY_NAME: dict[str, Descriptor] = {d.name: d for d in DESCRIPTORS}
EXTRAS: tuple[str, ...] = ("duration", "bpm", "key_strength", "n_notes", "n_beats", "n_chord_changes",
                           "chord_alteration_ratio", "n_segments", "n_percussive_onsets")
VECTOR_SIZE = sum(d.size for d in DESCRIPTORS) + len(EXTRAS)


def descriptor(name: str) -> Descriptor:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown MIR descriptor {name!r}; known: {', '.join(DESCRIPTOR_NAMES)}") from None


def canonical_pitch_class(name: str) -> str:
    """'A#' -> 'Bb', 'Db' -> 'C#': the spelling of PITCH_CLASSES (essentia's chord spelling)."""
    name = name.strip()
    name = _ENHARMONIC.get(name, name)
    if name not in PITCH_CLASSES:
        raise ValueError(f"unknown pitch class {name!r}")
    return name


def canonical_key(tonic: str, scale: str) -> str:
    return f"{canonical_pitch_class(tonic)} {scale.strip().lower()}"


def canonical_triad(label: str) -> str:
    """An essentia chord label ('A#m', 'Bb', 'N') in the TRIADS spelling."""
    label = label.strip()
    if label in ("", NO_CHORD):
        return NO_CHORD
    minor = label.endswith("m")
    root = canonical_pitch_class(label[:-1] if minor else label)
    return f"{root}m" if minor else root


# ----------------------------------------------------------------------------- per-clip values


@dataclass
class ClipDescriptors:
    """The 11 descriptors of one clip as count vectors over their fixed bins, plus raw extras.

    Build with `from_values` (readable values) or `from_vector` (the cached form).
    """

    counts: dict[str, np.ndarray]
    extras: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for d in DESCRIPTORS:
            if d.name not in self.counts:
                raise ValueError(f"descriptor {d.name!r} missing")
            v = np.asarray(self.counts[d.name], dtype=np.float64)
            if v.shape != (d.size,) or not np.isfinite(v).all() or (v < 0).any() or v.sum() <= 0:
                raise ValueError(f"descriptor {d.name!r}: expected {d.size} non-negative counts with a positive sum")
            self.counts[d.name] = v

    # -- construction
    @classmethod
    def from_values(
        cls,
        *,
        key: str | None,
        note_pitches: Iterable[int] = (),
        percussive_density: int = 0,
        beats_per_bar: int | None = None,
        chord_triads: Iterable[str] = (),
        structure: Iterable[str] = ("A",),
        extras: Mapping[str, float] | None = None,
    ) -> "ClipDescriptors":
        """From readable values; the derived descriptors (pitch range, pitch classes, chord
        variety, alteration ratio) are computed here, so extraction and tests share one definition."""
        pitches = [int(p) for p in note_pitches]
        if any(p < 0 or p > 127 for p in pitches):
            raise ValueError("note pitches must be MIDI numbers 0..127")
        triads = [canonical_triad(c) for c in chord_triads]
        labels = [str(s) for s in structure] or ["A"]
        counts: dict[str, np.ndarray] = {}

        def one_hot(name: str, label: str) -> None:
            d = _BY_NAME[name]
            v = np.zeros(d.size)
            v[d.bins.index(label)] = 1.0
            counts[name] = v

        def histogram(name: str, labels_: Sequence[str], empty: str) -> None:
            d = _BY_NAME[name]
            v = np.zeros(d.size)
            for lab in labels_:
                v[d.bins.index(lab)] += 1.0
            if not labels_:
                v[d.bins.index(empty)] = 1.0
            counts[name] = v

        one_hot("key", NONE if key is None else key)
        one_hot("pitch_range", str(max(pitches) - min(pitches)) if pitches else NONE)
        pcs = sorted({p % 12 for p in pitches})
        one_hot("n_pitch_classes", str(len(pcs)))
        one_hot("percussive_density", str(min(int(percussive_density), MAX_PERCUSSIVE_DENSITY - 1))
                if percussive_density < MAX_PERCUSSIVE_DENSITY else f"{MAX_PERCUSSIVE_DENSITY}+")
        one_hot("beats_per_bar", NONE if beats_per_bar is None else str(int(beats_per_bar)))
        chords = [c for c in triads if c != NO_CHORD]
        one_hot("chord_variety", str(len(set(chords))))
        ratio, n_changes = alteration_ratio(chords)
        one_hot("chord_alteration_ratio", NONE if ratio is None else RATIO_LABELS[min(int(ratio * RATIO_BINS), RATIO_BINS - 1)])
        histogram("note_pitches", [str(p) for p in pitches], NONE)
        histogram("note_pitch_classes", [PITCH_CLASSES[p % 12] for p in pitches], NONE)
        histogram("chord_triads", triads, NO_CHORD)
        histogram("structure", [s if s in STRUCTURE_LABELS else STRUCTURE_OTHER for s in labels], STRUCTURE_OTHER)
        ex = {k: math.nan for k in EXTRAS}
        ex.update({"n_notes": float(len(pitches)), "n_chord_changes": float(n_changes),
                   "chord_alteration_ratio": math.nan if ratio is None else float(ratio), "n_segments": float(len(labels))})
        ex.update({k: float(v) for k, v in (extras or {}).items() if k in ex})
        return cls(counts, ex)

    @classmethod
    def from_vector(cls, vec: np.ndarray) -> "ClipDescriptors":
        vec = np.asarray(vec, dtype=np.float64).reshape(-1)
        if vec.size != VECTOR_SIZE:
            raise ValueError(f"descriptor vector has {vec.size} values, expected {VECTOR_SIZE}")
        counts, i = {}, 0
        for d in DESCRIPTORS:
            counts[d.name] = vec[i:i + d.size].copy()
            i += d.size
        extras = {k: (math.nan if v < -1e29 else float(v)) for k, v in zip(EXTRAS, vec[i:])}
        return cls(counts, extras)

    def to_vector(self) -> np.ndarray:
        """Flat float32 vector (counts in DESCRIPTORS order, then EXTRAS; NaN stored as -1e30 so the
        cache's finiteness check holds)."""
        extras = [self.extras.get(k, math.nan) for k in EXTRAS]
        extras = [-1e30 if not math.isfinite(v) else v for v in extras]
        return np.concatenate([self.counts[d.name] for d in DESCRIPTORS] + [np.asarray(extras)]).astype(np.float32)

    # -- reading
    def mass(self, name: str) -> np.ndarray:
        """The clip's distribution over the bins of `name` (its counts divided by their sum)."""
        v = self.counts[name]
        return v / v.sum()

    def label(self, name: str) -> str:
        """The bin of a categorical/count descriptor ('C major', '12', 'none', ...)."""
        d = _BY_NAME[name]
        if d.kind == "multiset":
            raise ValueError(f"{name} is a multiset: use histogram()")
        return d.bins[int(np.argmax(self.counts[name]))]

    def value(self, name: str) -> float:
        """A count descriptor as a number (NaN for 'none'); beats_per_bar as an int; alteration ratio raw."""
        if name == "chord_alteration_ratio":
            return float(self.extras.get("chord_alteration_ratio", math.nan))
        lab = self.label(name)
        if lab == NONE:
            return math.nan
        return float(lab.rstrip("+")) if lab[0].isdigit() else math.nan

    def histogram(self, name: str) -> dict[str, float]:
        d = _BY_NAME[name]
        v = self.counts[name]
        return {d.bins[i]: float(v[i]) for i in np.flatnonzero(v)}

    def summary(self) -> dict:
        """Readable values (for logs, per-sample tables and tests)."""
        out: dict = {}
        for d in DESCRIPTORS:
            out[d.name] = self.histogram(d.name) if d.kind == "multiset" else self.label(d.name)
        out.update({k: v for k, v in self.extras.items() if math.isfinite(v)})
        return out


def alteration_ratio(chords: Sequence[str]) -> tuple[float | None, int]:
    """(share of chord changes that switch major <-> minor, number of changes) over a chord
    sequence with repeats collapsed; (None, 0) when there is no change."""
    seq = [c for i, c in enumerate(chords) if i == 0 or c != chords[i - 1]]
    changes = list(zip(seq, seq[1:]))
    if not changes:
        return None, 0
    switched = sum(1 for a, b in changes if a.endswith("m") != b.endswith("m"))
    return switched / len(changes), len(changes)


# ----------------------------------------------------------------------------- extraction


def _essentia():
    import essentia
    import essentia.standard as es

    essentia.log.infoActive = False
    essentia.log.warningActive = False
    return es


@functools.lru_cache(maxsize=1)
def _rhythm_extractor():
    """RhythmExtractor2013 (multifeature), built once per process: building it takes ~0.15 s, a tenth of a
    clip's descriptors. Reset before each clip, it gives the same beats as a fresh one (tested)."""
    return _essentia().RhythmExtractor2013(method="multifeature")


def essentia_version() -> str:
    import essentia

    return str(essentia.__version__)


def _db(x: np.ndarray | float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(x, 1e-20))


def median_filter_1d(values: np.ndarray, width: int, axis: int) -> np.ndarray:
    """`scipy.ndimage.median_filter` with a `width`-long window along `axis` (mode 'reflect'): the same
    values (a median selects, it does not round) in about a quarter of the time, through bottleneck's moving median."""
    import bottleneck

    half = width // 2
    pad = [(0, 0)] * values.ndim
    pad[axis] = (half, half)
    moved = bottleneck.move_median(np.pad(values, pad, mode="symmetric"), width, axis=axis)
    return np.take(moved, np.arange(width - 1, moved.shape[axis]), axis=axis)  # windows centred on each bin


def _hpss(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(harmonic signal, percussive magnitude [bins, frames], bin frequencies): librosa's HPSS (kernel 17,
    margin 1, power-2 soft masks) with its two median filters done by `median_filter_1d`."""
    import librosa

    stft = librosa.stft(x, n_fft=2048, hop_length=512)
    mag, phase = librosa.magphase(stft)
    harm = median_filter_1d(mag, HPSS_KERNEL, axis=-1)
    perc = median_filter_1d(mag, HPSS_KERNEL, axis=-2)
    mask_harm = librosa.util.softmask(harm, perc, power=2.0, split_zeros=True)
    mask_perc = librosa.util.softmask(perc, harm, power=2.0, split_zeros=True)
    h = librosa.istft((mag * mask_harm) * phase, hop_length=512, length=len(x)).astype(np.float32)
    return h, np.abs((mag * mask_perc) * phase), librosa.fft_frequencies(sr=sr, n_fft=2048)


def transcribe_notes(harmonic: np.ndarray, sr: int = SAMPLE_RATE) -> list[tuple[float, float, int]]:
    """(onset s, duration s, MIDI pitch) notes: MultiPitchMelodia frame pitches rounded to
    semitones, a note being a run of >= MIN_NOTE_S with gaps of <= NOTE_GAP_FRAMES bridged."""
    es = _essentia()
    hop = 128
    sig = es.EqualLoudness(sampleRate=sr)(harmonic.astype(np.float32))
    frames = es.MultiPitchMelodia(sampleRate=sr, hopSize=hop, peakFrameThreshold=0.5, maxFrequency=2100.0,
                                  minFrequency=40.0)(sig)
    notes: list[tuple[float, float, int]] = []
    active: dict[int, list[int]] = {}  # pitch -> [first frame, last frame seen]

    def close(p: int, first: int, last: int) -> None:
        dur = (last - first + 1) * hop / sr
        if dur >= MIN_NOTE_S:
            notes.append((first * hop / sr, dur, p))

    for i, fr in enumerate(list(frames) + [[]] * (NOTE_GAP_FRAMES + 1)):
        here = {int(round(69 + 12 * math.log2(f / 440.0))) for f in fr if f > 0}
        here = {p for p in here if 0 <= p <= 127}
        for p in here:
            if p in active:
                active[p][1] = i
            else:
                active[p] = [i, i]
        for p in [p for p, (a, b) in active.items() if i - b > NOTE_GAP_FRAMES]:
            a, b = active.pop(p)
            close(p, a, b)
    notes.sort()
    return notes


def percussive_density(perc_mag: np.ndarray, freqs: np.ndarray, hop_s: float) -> tuple[int, int]:
    """(max band onsets in any PERC_WINDOW_S window, total band onsets) of a percussive spectrogram."""
    power = perc_mag.astype(np.float64) ** 2
    n = power.shape[1]
    kernel = np.ones(3) / 3.0  # 35 ms of band power: steadies the few-bin low band on noise
    bands = np.stack([_db(np.convolve(power[(freqs >= lo) & (freqs < hi)].sum(axis=0), kernel)[2:n + 2])
                      for lo, hi in PERC_BANDS_HZ])  # bands[:, t] = mean power of frames t..t+2
    top = float(bands.max()) if bands.size else -200.0
    bands = np.maximum(bands, top - 80.0)
    times: list[float] = []
    for e in bands:
        rise = np.zeros(n)
        rise[3:] = e[3:] - e[:-3]  # the next 3 frames against the 3 before
        # a band whose level merely fluctuates (noise) needs a rise of 3 robust deviations (6..12 dB)
        spread = 1.4826 * float(np.median(np.abs(rise[3:] - np.median(rise[3:])))) if n > 3 else 0.0
        threshold = min(max(PERC_RISE_DB, PERC_NOISE_SIGMAS * spread), PERC_MAX_RISE_DB)
        for t in range(3, n):
            lo, hi = max(0, t - 4), min(n, t + 5)
            if rise[t] >= threshold and rise[t] == rise[lo:hi].max() and e[t] >= top - PERC_FLOOR_DB:
                times.append(t * hop_s)
    times.sort()
    best, j = 0, 0
    for i in range(len(times)):
        while times[i] - times[j] >= PERC_WINDOW_S:
            j += 1
        best = max(best, i - j + 1)
    return best, len(times)


def _zscore(v: np.ndarray) -> np.ndarray:
    sd = float(v.std())
    return (v - v.mean()) / sd if sd > 1e-9 else np.zeros_like(v)


def meter_from_accents(accent: np.ndarray) -> tuple[int | None, float]:
    """(m, score): the meter m in METERS whose best beat phase stands out most from the other beats,
    scored as a two-sample t statistic (so meters with fewer beats per phase are not favoured);
    None when fewer than MIN_BEATS beats or the best score is below MIN_METER_T."""
    accent = np.asarray(accent, dtype=np.float64)
    n = len(accent)
    if n < MIN_BEATS or accent.std() < 1e-9:
        return None, 0.0
    idx = np.arange(n)
    var = float(accent.var())
    best_m, best = None, -np.inf
    for m in METERS:
        if n < 2 * m:
            continue
        score = -np.inf
        for ph in range(m):
            on, off = accent[idx % m == ph], accent[idx % m != ph]
            score = max(score, (on.mean() - off.mean()) / math.sqrt(var * (1 / len(on) + 1 / len(off))))
        if score > best + 1e-9:
            best_m, best = m, score
    if best_m is None or best < MIN_METER_T:
        return None, float(best)
    return best_m, float(best)


def beats_per_bar(x: np.ndarray, hpcp: np.ndarray, sr: int = SAMPLE_RATE, hop: int = 2048
                  ) -> tuple[int | None, float, int]:
    """(meter or None, bpm, number of beats). Beats from RhythmExtractor2013 (multifeature); per
    beat an accent = z(harmonic change: cosine distance of the beat's mean HPCP to the previous
    beat's, since chords tend to change on bar lines) + 0.5 z(beat loudness in dB, BeatsLoudness);
    then `meter_from_accents`."""
    es = _essentia()
    rhythm = _rhythm_extractor()
    rhythm.reset()
    bpm, beats, _, _, _ = rhythm(x)
    beats = np.asarray(beats, dtype=np.float64)
    beats = beats[beats < len(x) / sr]
    if len(beats) < MIN_BEATS:
        return None, float(bpm), len(beats)
    loud, _ = es.BeatsLoudness(beats=beats.tolist(), sampleRate=sr)(x)
    loud = _db(np.asarray(loud, dtype=np.float64))
    centres = np.arange(len(hpcp)) * hop / sr + hop / sr  # frames start at 0 and span 2 hops
    edges = np.append(beats - BEAT_LEAD_S, len(x) / sr)  # detected beats trail the attacks slightly
    chroma = []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (centres >= a) & (centres < b)
        v = hpcp[sel].mean(0) if sel.any() else np.zeros(hpcp.shape[1] if hpcp.ndim == 2 else 12)
        chroma.append(v / (np.linalg.norm(v) + 1e-9))
    chroma = np.asarray(chroma)
    change = np.zeros(len(chroma))
    change[1:] = 1.0 - np.sum(chroma[1:] * chroma[:-1], axis=1)
    n = min(len(loud), len(change))
    meter, _ = meter_from_accents(_zscore(change[:n]) + 0.5 * _zscore(loud[:n]))
    return meter, float(bpm), len(beats)


def _frame_features(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 4096/2048 frame: HPCP [frames, 12] (A-based, essentia's order), MFCC [frames, 13], RMS dB."""
    es = _essentia()
    window = es.Windowing(type="blackmanharris62")
    spectrum = es.Spectrum()
    peaks = es.SpectralPeaks(orderBy="magnitude", magnitudeThreshold=1e-5, minFrequency=40, maxFrequency=2000,
                             maxPeaks=60, sampleRate=sr)
    hpcp = es.HPCP(size=12, referenceFrequency=440, harmonics=0, bandPreset=True, minFrequency=40, maxFrequency=2000,
                   weightType="cosine", nonLinear=False, windowSize=1.0, sampleRate=sr)
    mfcc = es.MFCC(inputSize=2049, sampleRate=sr, numberBands=40, numberCoefficients=13)
    H, M, R = [], [], []
    for frame in es.FrameGenerator(x, frameSize=4096, hopSize=2048, startFromZero=True):
        spec = spectrum(window(frame))
        f, m = peaks(spec)
        H.append(hpcp(f, m))
        M.append(mfcc(spec)[1])
        R.append(_db(float(np.mean(np.square(frame, dtype=np.float64)))))
    return np.asarray(H, dtype=np.float32), np.asarray(M, dtype=np.float64), np.asarray(R)


def chord_frames(hpcp: np.ndarray, rms_db: np.ndarray, sr: int = SAMPLE_RATE) -> list[str]:
    """One triad label per frame (ChordsDetection, 1 s window); 'N' for frames CHORD_FLOOR_DB below the loudest."""
    if len(hpcp) == 0:
        return []
    es = _essentia()
    chords, _ = es.ChordsDetection(hopSize=2048, windowSize=1.0, sampleRate=sr)(hpcp)
    top = float(rms_db.max())
    return [NO_CHORD if (r < top - CHORD_FLOOR_DB or r < SILENCE_DB) else canonical_triad(c)
            for c, r in zip(chords, rms_db)]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)


def structure_novelty(blocks: np.ndarray, half: int = STRUCTURE_KERNEL_BLOCKS) -> np.ndarray:
    """Foote novelty along a block self-similarity matrix (cosine): at each block boundary t, the
    mean similarity inside the two `half`-block squares before/after t minus that across them."""
    n = len(blocks)
    sim = _unit_rows(blocks) @ _unit_rows(blocks).T
    nov = np.zeros(n)
    for t in range(half, n - half + 1):
        before, after = slice(t - half, t), slice(t, t + half)
        nov[t] = 0.5 * (sim[before, before].mean() + sim[after, after].mean()) - sim[before, after].mean()
    return nov


def structure_labels(hpcp: np.ndarray, mfcc: np.ndarray) -> list[str]:
    """Segment labels from a self-similarity segmentation of clip-standardised MFCC (without c0) +
    HPCP frames averaged into ~0.46 s blocks: boundaries at novelty peaks >= STRUCTURE_MIN_NOVELTY
    (local maxima within the kernel's half width, so segments last >= ~1.9 s); a segment takes an
    earlier label when the cosine of its mean feature vector with that label's centroid is
    >= STRUCTURE_JOIN_COSINE, else the next letter."""
    feats = np.concatenate([mfcc[:, 1:], hpcp], axis=1).astype(np.float64)
    n_blocks = len(feats) // STRUCTURE_BLOCK_FRAMES
    if n_blocks < 2 * STRUCTURE_KERNEL_BLOCKS + 1:
        return ["A"]
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    blocks = feats[:n_blocks * STRUCTURE_BLOCK_FRAMES].reshape(n_blocks, STRUCTURE_BLOCK_FRAMES, -1).mean(1)
    nov = structure_novelty(blocks)
    half = STRUCTURE_KERNEL_BLOCKS
    bounds = [t for t in range(half, n_blocks - half + 1)
              if nov[t] >= STRUCTURE_MIN_NOVELTY and nov[t] == nov[max(0, t - half):t + half + 1].max()]
    edges = [0] + bounds + [n_blocks]
    centroids: list[np.ndarray] = []
    members: list[list[np.ndarray]] = []
    labels: list[str] = []
    for a, b in zip(edges, edges[1:]):
        mean = blocks[a:b].mean(0)
        cos = [float(_unit_rows(mean[None])[0] @ _unit_rows(c[None])[0]) for c in centroids]
        k = int(np.argmax(cos)) if cos else -1
        if k >= 0 and cos[k] >= STRUCTURE_JOIN_COSINE:
            members[k].append(mean)
            centroids[k] = np.mean(members[k], axis=0)
        else:
            centroids.append(mean)
            members.append([mean])
            k = len(centroids) - 1
        labels.append(STRUCTURE_LABELS[k] if k < len(STRUCTURE_LABELS) else STRUCTURE_OTHER)
    return labels


def extract_descriptors(wav: np.ndarray, sr: int) -> ClipDescriptors:
    """The 11 descriptors of one mono clip (resampled to 44.1 kHz with the toolkit's resampler)."""
    from ..audio import check_finite, resample, rms_db, to_mono

    x = to_mono(np.asarray(wav, dtype=np.float32))
    check_finite(x, "audio for MIR descriptors")
    if sr != SAMPLE_RATE:
        x = resample(x, sr, SAMPLE_RATE)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if len(x) < SAMPLE_RATE // 2:
        raise AudioError(f"audio for MIR descriptors is {len(x) / SAMPLE_RATE:.2f} s long; at least 0.5 s is needed")
    es = _essentia()
    extras: dict[str, float] = {"duration": len(x) / SAMPLE_RATE}
    silent = rms_db(x) < SILENCE_DB

    key = None
    if not silent:
        tonic, scale, strength = es.KeyExtractor(sampleRate=SAMPLE_RATE)(x)
        key = canonical_key(tonic, scale)
        extras["key_strength"] = float(strength)

    harmonic, perc, freqs = _hpss(x, SAMPLE_RATE)
    notes = [] if silent else transcribe_notes(harmonic, SAMPLE_RATE)
    density, n_onsets = percussive_density(perc, freqs, 512 / SAMPLE_RATE)
    extras["n_percussive_onsets"] = float(n_onsets)

    hpcp, mfcc, frame_db = _frame_features(x, SAMPLE_RATE)
    meter, bpm, n_beats = (None, 0.0, 0) if silent else beats_per_bar(x, hpcp, SAMPLE_RATE)
    extras.update({"bpm": bpm, "n_beats": float(n_beats)})
    chords = [NO_CHORD] * len(hpcp) if silent else chord_frames(hpcp, frame_db, SAMPLE_RATE)
    structure = ["A"] if silent else structure_labels(hpcp, mfcc)

    return ClipDescriptors.from_values(
        key=key, note_pitches=[p for _, _, p in notes], percussive_density=density, beats_per_bar=meter,
        chord_triads=chords, structure=structure, extras=extras,
    )
