"""musicnn with the REAL weights of the musicnn 0.1.0 wheel: TF bundle reader, conversion, front end, tag sanity.

The wheel is taken from the toolkit cache (`python -m magnet_eval.weights fetch-wheels`); the
tests skip with that instruction when it is absent. Conversion runs into a temporary cache.
The tag sanity check renders two clips with FluidSynth (General MIDI sound font): a drum-heavy
rock loop must not be tagged "classical"/"violin", a sustained string ensemble must be.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from magnet_eval.errors import MissingWeightsError  # noqa: E402
from helpers import cache_with_wheel, loaded_embedder, real_wheel  # noqa: E402

WHEEL = "musicnn-0.1.0-*.whl"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A temporary toolkit cache holding (a link to) the real musicnn wheel."""
    return cache_with_wheel(tmp_path_factory.mktemp("cache"), real_wheel(WHEEL))


@pytest.fixture(scope="module")
def musicnn(cache):
    with loaded_embedder("musicnn", cache) as embedder:
        yield embedder


# ----------------------------------------------------------------------------- TF bundle reader


def test_bundle_reader_accounts_for_every_byte():
    from magnet_eval.embedders.tf_bundle import read_bundle, read_index

    with zipfile.ZipFile(real_wheel(WHEEL)) as zf:
        index = zf.read("musicnn/MTT_musicnn/.index")
        data = zf.read("musicnn/MTT_musicnn/.data-00000-of-00001")
    entries = read_index(index)
    # the entries tile the data file exactly (model variables + Adam slots + counters)
    spans = sorted((e.offset, e.offset + e.size) for e in entries.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(spans[:-1], spans[1:], strict=True))
    from magnet_eval.embedders.musicnn import read_tf_checkpoint

    tensors = read_tf_checkpoint(index, data)
    assert len(tensors) == 64
    assert sum(v.size for v in tensors.values()) == 792079
    assert tensors["conv2d/kernel"].shape == (7, 38, 1, 204)
    assert tensors["dense/kernel"].shape == (1506, 200)
    assert tensors["dense_1/kernel"].shape == (200, 50)
    for name, value in tensors.items():
        assert np.isfinite(value).all(), name
        if name.endswith("moving_variance"):
            assert (value > 0).all(), name
    full = read_bundle(index, [data])
    assert len(full) > len(tensors) and any("/Adam" in k for k in full)


def test_bundle_reader_rejects_garbage():
    from magnet_eval.embedders.tf_bundle import read_index
    from magnet_eval.errors import CheckpointError

    with pytest.raises(CheckpointError, match="SSTable"):
        read_index(b"\x00" * 100)


# ----------------------------------------------------------------------------- conversion and loading


def test_conversion_is_cached_once(musicnn, cache, monkeypatch):
    from magnet_eval.embedders import get_embedder

    converted = sorted((cache / "weights" / "musicnn").glob("MTT_musicnn-*.pt"))
    assert len(converted) == 1
    stamp = converted[0].stat().st_mtime_ns
    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(cache))
    again = get_embedder("musicnn").load()
    assert converted[0].stat().st_mtime_ns == stamp  # reused, not converted again
    assert again.weights_id == musicnn.weights_id
    assert musicnn.weights_id.startswith("sha1:") and musicnn.weights_id.endswith("MTT_musicnn/penultimate")
    # a converted file or an extracted checkpoint folder also load
    assert get_embedder("musicnn").load(converted[0]).weights_id == musicnn.weights_id


def test_missing_wheel_names_command_and_cache(tmp_path, monkeypatch):
    from magnet_eval.embedders import get_embedder

    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(tmp_path))
    with pytest.raises(MissingWeightsError) as err:
        get_embedder("musicnn").load()
    msg = str(err.value)
    assert "musicnn" in msg and "fetch-wheels" in msg and str(tmp_path / "wheels") in msg


# ----------------------------------------------------------------------------- front end


def test_log_mel_matches_librosa_pipeline():
    """Our STFT/mel equals musicnn's librosa pipeline (reflect padding as librosa had when it was trained)."""
    librosa = pytest.importorskip("librosa")
    from magnet_eval.embedders.musicnn import log_mel

    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=wav, sr=16000, hop_length=256, n_fft=512, n_mels=96, pad_mode="reflect").T
    ref = np.log10(10000 * ref.astype(np.float16) + 1)
    ours = log_mel(wav)
    assert ours.shape == ref.shape == (126, 96)
    assert np.abs(ours - ref).max() < 2e-2  # float16 rounding of nearly equal values can flip one ulp
    assert np.abs(ours - ref).mean() < 1e-4


def test_patches_and_embedding_shapes(musicnn):
    from magnet_eval.embedders.musicnn import patches

    spec = np.arange(400 * 96, dtype=np.float32).reshape(400, 96)
    p = patches(spec)
    assert p.shape == (2, 187, 96) and np.array_equal(p[1, 0], spec[187])
    short = patches(spec[:50])
    assert short.shape == (1, 187, 96) and np.array_equal(short[0, 50], spec[0])  # repeat-padded

    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(16000 * 10)).astype(np.float32)
    e = musicnn.embed(x, 16000)
    assert e.shape == (3, 200) and e.dtype == np.float32  # 626 frames -> 3 patches, tail dropped
    assert np.array_equal(e, musicnn.embed(x, 16000))
    assert musicnn.embed(x[:16000], 16000).shape == (1, 200)
    assert musicnn.embed(np.stack([x, x]), 16000).shape == (3, 200)


def test_layers_and_msd_variant(cache, monkeypatch):
    from magnet_eval.embedders import get_embedder

    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(cache))
    x = (0.1 * np.random.default_rng(2).standard_normal(16000 * 4)).astype(np.float32)
    mx = get_embedder("musicnn", layer="max_pool").load()
    assert mx.embed(x, 16000).shape == (1, 753) and mx.weights_id.endswith("/max_pool")
    msd = get_embedder("musicnn-msd").load()
    assert msd.tag_names[0] == "rock" and msd.tag_probs(x, 16000).shape == (1, 50)
    assert msd.weights_id.split("/")[0] != mx.weights_id.split("/")[0]


# ----------------------------------------------------------------------------- tag sanity on rendered audio


def _render(tmp: Path, name: str, tracks, bpm: float) -> Path:
    mido = pytest.importorskip("mido")
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        pytest.skip("fluidsynth and the FluidR3_GM sound font are needed to render test music")
    mid = mido.MidiFile(ticks_per_beat=480)
    for channel, program, notes in tracks:
        tr = mido.MidiTrack()
        mid.tracks.append(tr)
        tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
        if channel != 9:
            tr.append(mido.Message("program_change", channel=channel, program=program, time=0))
        events = sorted([(int(s * 480), 1, p, v) for s, d, p, v in notes] +
                        [(int((s + d) * 480), 0, p, 0) for s, d, p, v in notes], key=lambda e: (e[0], e[1]))
        now = 0
        for tick, on, pitch, vel in events:
            tr.append(mido.Message("note_on" if on else "note_off", channel=channel, note=pitch, velocity=vel,
                                   time=tick - now))
            now = tick
    midi, wav = tmp / f"{name}.mid", tmp / f"{name}.wav"
    mid.save(str(midi))
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.8", "-r", "16000", "-F", str(wav), str(SOUNDFONT), str(midi)],
                   check=True, capture_output=True, timeout=120)
    return wav


def _rock(tmp: Path) -> Path:
    beats = 20  # 10 s at 120 bpm
    drums = []
    for i in range(beats * 2):
        t = i / 2
        drums.append((t, 0.25, 42, 90))  # closed hi-hat eighths
        if i % 4 == 0:
            drums.append((t, 0.25, 36, 120))  # kick
        if i % 4 == 2:
            drums.append((t, 0.25, 38, 120))  # snare
        if i % 8 == 0:
            drums.append((t, 0.5, 49, 100))  # crash
    guitar = [(b, 0.9, p, 110) for b in range(beats) for p in ([40, 47, 52] if (b // 4) % 2 == 0 else [45, 52, 57])]
    bass = [(i / 2, 0.45, 28 if (i // 8) % 2 == 0 else 33, 110) for i in range(beats * 2)]
    return _render(tmp, "rock", [(9, 0, drums), (0, 30, guitar), (1, 33, bass)], bpm=120)


def _strings(tmp: Path) -> Path:
    chords = [[48, 55, 60, 64], [45, 52, 57, 60], [41, 48, 53, 57], [43, 50, 55, 59]]
    ensemble = [(i * 2.5, 2.5, p, 70) for i, c in enumerate(chords) for p in c]
    violin = [(i * 1.25, 1.25, 72 + [0, 2, 4, 5, 7, 5, 4, 2][i], 80) for i in range(8)]
    return _render(tmp, "strings", [(0, 48, ensemble), (1, 40, violin)], bpm=60)


def test_tags_of_rendered_rock_and_strings(musicnn, tmp_path):
    from magnet_eval.audio import load_audio

    rock, sr = load_audio(_rock(tmp_path))
    strings, sr2 = load_audio(_strings(tmp_path))
    rock_top = [t for t, _ in musicnn.top_tags(rock, sr, k=5)]
    strings_top = [t for t, _ in musicnn.top_tags(strings, sr2, k=5)]
    assert not {"classical", "violin"} & set(rock_top[:3]), rock_top
    assert {"rock", "drums", "guitar", "beat", "loud", "fast", "metal"} & set(rock_top[:3]), rock_top
    assert {"classical", "strings", "violin", "cello"} & set(strings_top[:3]), strings_top
    p_rock = musicnn.tag_probs(rock, sr).mean(axis=0)
    p_str = musicnn.tag_probs(strings, sr2).mean(axis=0)
    idx = {t: i for i, t in enumerate(musicnn.tag_names)}
    assert p_str[idx["classical"]] > 2 * p_rock[idx["classical"]]
    assert p_rock[idx["rock"]] > 2 * p_str[idx["rock"]]


def test_tags_after_embedding_reuse_that_pass_bit_for_bit(musicnn):
    """KL's tag probabilities of a clip embedded just before (FAD) come from that pass, also in another
    instance (the KL classifier wraps its own): no second network pass, and the same floats as a pass of
    the clip alone; another clip still runs the network."""
    import copy

    rng = np.random.default_rng(3)
    clips = [(0.1 * rng.standard_normal(16000 * s)).astype(np.float32) for s in (4, 7)]
    musicnn._recent_logits.clear()
    alone = [musicnn.tag_probs(c, 16000) for c in clips]  # nothing remembered yet: network passes
    musicnn._recent_logits.clear()
    musicnn.embed_batch(clips, 16000)
    tagger = copy.copy(musicnn)
    calls = []
    tagger._forward_patches = lambda x: calls.append(x.shape) or musicnn._forward_patches(x)
    again = [tagger.tag_probs(c, 16000) for c in clips]
    other = tagger.tag_probs(clips[1][: 16000 * 5], 16000)
    assert len(calls) == 1 and other.shape[0] == calls[0][0]
    for a, b in zip(alone, again):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_musicnn_classifier_for_kl(cache, monkeypatch):
    from magnet_eval.embedders.classifiers import get_classifier

    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(cache))
    clf = get_classifier("musicnn").load()
    assert clf.multilabel and clf.segment_seconds is None and len(clf.labels) == 50
    x = (0.1 * np.random.default_rng(3).standard_normal(16000 * 7)).astype(np.float32)
    p = clf.probs(x, 16000)
    assert p.shape == (2, 50) and ((p > 0) & (p < 1)).all()
    assert clf.weights_id.endswith("/tags")
