"""MIRDD: zero for identical populations, hand-computed KL (direction, smoothing, per-clip mass),
growth with drift, bootstrap and per-clip contributions, and the sanity ordering on rendered music
(held-out real < pitch-shifted + noised real < white noise), also through `evaluate`."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from magnet_eval.errors import MagnetEvalError
from magnet_eval.mir.descriptors import DESCRIPTOR_NAMES, DESCRIPTORS, KEYS, ClipDescriptors
from magnet_eval.evaluation import mirdd_results
from magnet_eval.metrics.mirdd import MIRDD, SMOOTHING

K_KEY = len(KEYS) + 1  # 24 keys + none


def clip(key="C major", notes=(60, 64, 67), meter=4, chords=("C", "F", "G", "C"), density=4, structure=("A",)):
    return ClipDescriptors.from_values(key=key, note_pitches=notes, beats_per_bar=meter, chord_triads=chords,
                                       percussive_density=density, structure=structure)


def transposed(c: ClipDescriptors, semitones: int) -> ClipDescriptors:
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    tonic, mode = c.label("key").split()
    key = f"{names[(names.index(tonic) + semitones) % 12]} {mode}"
    notes = [int(p) + semitones for p, n in c.histogram("note_pitches").items() for _ in range(int(n))]
    chords = []
    for lab, n in c.histogram("chord_triads").items():
        root, minor = (lab[:-1], "m") if lab.endswith("m") else (lab, "")
        chords += [names[(names.index(root) + semitones) % 12] + minor] * int(n)
    return ClipDescriptors.from_values(key=key, note_pitches=notes, beats_per_bar=int(c.label("beats_per_bar")),
                                       chord_triads=chords, percussive_density=int(c.value("percussive_density")))


def population(n=8, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        root = 60 + int(rng.integers(0, 5))
        out.append(clip(key=["C major", "G major", "A minor", "F major"][i % 4],
                        notes=[root, root + 4, root + 7, root + 12][: 2 + i % 3], meter=[4, 4, 3][i % 3],
                        chords=[["C", "F", "G"], ["Am", "F", "C", "G"], ["G", "D"]][i % 3], density=int(rng.integers(2, 8))))
    return out


def reference_kl(ref_counts, n_ref, gen_counts, n_gen, k, alpha):
    """The documented formula written out longhand."""
    total = 0.0
    for i in range(k):
        p = (ref_counts.get(i, 0.0) + alpha) / (n_ref + k * alpha)
        q = (gen_counts.get(i, 0.0) + alpha) / (n_gen + k * alpha)
        total += p * math.log(p / q)
    return total


def by_metric(results):
    return {r.metric: r for r in results}


# ----------------------------------------------------------------------------- the metric on descriptor values


def test_identical_populations_give_zero():
    pop = population()
    m = MIRDD(pop)
    m.update(pop, ids=[f"g{i}" for i in range(len(pop))])
    res = by_metric(m.compute())
    assert set(res) == {"mirdd"} | {f"mirdd/{n}" for n in DESCRIPTOR_NAMES}
    for r in res.values():
        assert r.value == pytest.approx(0.0, abs=1e-12)
    assert res["mirdd"].n_generated == 8 and res["mirdd"].n_reference == 8


def test_key_kl_matches_hand_computation_and_direction():
    ref = [clip(key="C major"), clip(key="C major"), clip(key="G major")]
    gen = [clip(key="C major"), clip(key="D major")]
    m = MIRDD(ref, n_bootstrap=0)
    m.update(gen, ids=["a", "b"])
    got = by_metric(m.compute())["mirdd/key"].value
    ci, gi, di = KEYS.index("C major"), KEYS.index("G major"), KEYS.index("D major")
    expected = reference_kl({ci: 2, gi: 1}, 3, {ci: 1, di: 1}, 2, K_KEY, SMOOTHING)
    assert got == pytest.approx(expected, rel=1e-12)
    # hand value: p(C)=2.01/3.25, q(C)=1.01/2.25; p(G)=1.01/3.25, q(G)=0.01/2.25; ...
    assert got == pytest.approx(1.4780, abs=5e-4)

    # the direction is KL(reference || generated): dropping a reference mode costs more than adding one
    drop = MIRDD([clip(key="C major"), clip(key="D major")], n_bootstrap=0)
    drop.update([clip(key="C major"), clip(key="C major")], ids=["a", "b"])
    add = MIRDD([clip(key="C major"), clip(key="C major")], n_bootstrap=0)
    add.update([clip(key="C major"), clip(key="D major")], ids=["a", "b"])
    v_drop = by_metric(drop.compute())["mirdd/key"].value
    v_add = by_metric(add.compute())["mirdd/key"].value
    assert v_drop == pytest.approx(reference_kl({ci: 1, di: 1}, 2, {ci: 2}, 2, K_KEY, SMOOTHING))
    assert v_add == pytest.approx(reference_kl({ci: 2}, 2, {ci: 1, di: 1}, 2, K_KEY, SMOOTHING))
    assert v_drop > 2 * v_add


def test_smoothing_is_the_documented_additive_constant():
    ref = [clip(key="C major")] * 2
    gen = [clip(key="E minor")] * 2
    for alpha in (SMOOTHING, 0.5, 1.0):
        m = MIRDD(ref, smoothing=alpha, n_bootstrap=0)
        m.update(gen, ids=["a", "b"])
        got = by_metric(m.compute())["mirdd/key"].value
        assert got == pytest.approx(reference_kl({KEYS.index("C major"): 2}, 2, {KEYS.index("E minor"): 2}, 2,
                                                 K_KEY, alpha), rel=1e-12)
    with pytest.raises(MagnetEvalError):
        MIRDD(ref, smoothing=0.0)


def test_combined_value_is_the_mean_over_descriptors():
    ref, gen = population(seed=1), [transposed(c, 3) for c in population(seed=2)]
    m = MIRDD(ref, n_bootstrap=0)
    m.update(gen, ids=[str(i) for i in range(len(gen))])
    res = m.compute()
    per = [r.value for r in res[1:]]
    assert len(per) == 11 and res[0].value == pytest.approx(np.mean(per))
    assert res[0].details["descriptors"] == {n: pytest.approx(v) for n, v in zip(DESCRIPTOR_NAMES, per)}
    assert res[0].details["direction"] == "KL(reference || generated)"


def test_each_clip_weighs_one_in_multisets():
    # a clip with 100 notes and one with a single note: each is half of the population
    ref = [clip(notes=[60] * 100), clip(notes=[67])]
    gen = [clip(notes=[60]), clip(notes=[67] * 100)]
    m = MIRDD(ref, n_bootstrap=0)
    m.update(gen, ids=["a", "b"])
    res = by_metric(m.compute())
    assert res["mirdd/note_pitches"].value == pytest.approx(0.0, abs=1e-12)
    assert res["mirdd/note_pitch_classes"].value == pytest.approx(0.0, abs=1e-12)
    assert res["mirdd/pitch_range"].value == pytest.approx(0.0, abs=1e-12)


def test_mirdd_grows_as_the_generated_population_drifts():
    ref = population(8, seed=4)
    values = []
    for k in range(0, 9, 2):  # replace k clips by transposed copies
        gen = [transposed(c, 5) if i < k else c for i, c in enumerate(ref)]
        m = MIRDD(ref, n_bootstrap=0)
        m.update(gen, ids=[str(i) for i in range(8)])
        values.append(m.compute()[0].value)
    assert values[0] == pytest.approx(0.0, abs=1e-12)
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_bootstrap_interval_and_contributions():
    ref = population(12, seed=5)
    gen = population(11, seed=6) + [clip(key="F# minor", notes=[30, 100], meter=7, chords=["F#m", "C"], density=30)]
    ids = [f"g{i}" for i in range(12)]
    a = MIRDD(ref, n_bootstrap=100, seed=1)
    a.update(gen, ids=ids)
    ra = a.compute()
    b = MIRDD(ref, n_bootstrap=100, seed=1)
    b.update(dict(zip(ids, gen)))
    rb = b.compute()
    assert (ra[0].ci_low, ra[0].ci_high) == (rb[0].ci_low, rb[0].ci_high)  # seeded
    assert ra[0].ci_low < ra[0].value < ra[0].ci_high
    for r in ra[1:]:
        assert r.ci_low <= r.ci_high
    contrib = ra[0].per_sample["mirdd_contribution"]
    assert set(contrib) == set(ids)
    assert max(contrib, key=contrib.get) == "g11"  # the outlier pulls the population away most
    assert ra[0].per_sample["mir/beats_per_bar"]["g11"] == 7.0
    none = MIRDD(ref, n_bootstrap=0)
    none.update(gen, ids=ids)
    assert math.isnan(none.compute()[0].ci_low)


def test_errors():
    m = MIRDD()
    with pytest.raises(MagnetEvalError, match="reference"):
        m.compute()
    m.update_reference([clip()], ids=["r"])
    with pytest.raises(MagnetEvalError, match="generated"):
        m.compute()
    m.update([clip()], ids=["a"])
    with pytest.raises(MagnetEvalError, match="twice"):
        m.update([clip()], ids=["a"])
    with pytest.raises(MagnetEvalError):
        m.update([clip(), clip()], ids=["b"])
    with pytest.raises(KeyError):
        MIRDD(descriptors=["tempo"])


# ----------------------------------------------------------------------------- rendered music


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """16 rendered 6 s clips of the project corpus (8 reference, 8 held out) and two degraded copies
    of the held-out half: quarter-tone detuned + noise at 0 dB SNR, and white noise."""
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth is needed to render the test corpus")
    import librosa

    from magnet_eval.audio import load_audio, save_audio
    from magnet_eval.embedding_cache import EmbeddingCache
    from magnet_eval.manifest import Manifest, ManifestEntry
    from magnet_eval.synth.corpus import build_corpus
    from magnet_eval.synth.render import find_soundfont

    try:
        find_soundfont()
    except MagnetEvalError as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("mirdd")
    corpus = build_corpus(root / "corpus", n=16, duration=6.0, seed=7, workers=2, sample_rate=22050)
    ref = Manifest(corpus.entries[:8], source=str(root / "corpus" / "manifest.jsonl"))
    held = Manifest(corpus.entries[8:], source="held-out")
    rng = np.random.default_rng(0)

    def degraded(name, fn):
        entries = []
        for e in held:
            x, sr = load_audio(e.audio_path)
            path = save_audio(root / name / f"{e.id}.wav", fn(x, sr), sr)
            entries.append(ManifestEntry(e.id, e.caption, str(path)))
        return Manifest(entries, source=name)

    def detune_and_noise(x, sr):  # a quarter-tone detune and white noise as loud as the music
        y = librosa.effects.pitch_shift(x, sr=sr, n_steps=0.5)
        n = rng.standard_normal(len(y)).astype(np.float32)
        n *= np.sqrt(np.mean(y ** 2) / np.mean(n ** 2))
        return 0.7 * (y + n)

    shifted = degraded("shifted", detune_and_noise)
    noise = degraded("noise", lambda x, sr: (0.1 * rng.standard_normal(len(x))).astype(np.float32))
    return {"ref": ref, "held": held, "shifted": shifted, "noise": noise, "cache": EmbeddingCache(root / "cache"),
            "corpus": corpus, "root": root}


def test_sanity_ordering_on_rendered_music(rendered):
    values = {}
    for name in ("held", "shifted", "noise"):
        res = mirdd_results(rendered[name], rendered["ref"], cache=rendered["cache"], n_bootstrap=50)
        values[name] = res[0].value
        assert res[0].details["stem_plus_context"] is False
    assert values["held"] < values["shifted"] < values["noise"], values
    assert values["shifted"] > 1.1 * values["held"] and values["noise"] > 1.1 * values["shifted"], values


def test_evaluate_rows_and_cached_descriptors(rendered):
    from magnet_eval.evaluation import PER_SAMPLE_COLUMNS, RESULT_COLUMNS, evaluate

    direct = mirdd_results(rendered["held"], rendered["ref"], cache=rendered["cache"], n_bootstrap=20)
    hits = rendered["cache"].hits
    results, per_sample = evaluate(rendered["held"], rendered["ref"], metrics=["mirdd"], system="sys",
                                   cache=rendered["cache"], n_bootstrap=20)
    assert rendered["cache"].hits >= hits + 16  # nothing re-extracted
    assert list(results.columns) == RESULT_COLUMNS and list(per_sample.columns) == PER_SAMPLE_COLUMNS
    assert list(results.metric) == ["mirdd"] + [f"mirdd/{n}" for n in DESCRIPTOR_NAMES]
    assert (results.status == "ok").all() and (results.embedder == "essentia").all()
    assert (results.n_generated == 8).all() and (results.n_reference == 8).all()
    got = results.set_index("metric")
    assert got.loc["mirdd", "value"] == pytest.approx(direct[0].value)
    details = json.loads(got.loc["mirdd", "details"])
    assert details["stem_plus_context"] is False and details["extractor"].startswith("essentia-")
    contrib = set(per_sample.loc[per_sample.metric == "mirdd_contribution", "id"])
    assert contrib == set(rendered["held"].ids())


def test_one_pool_for_several_manifests_fills_what_mirdd_reads(rendered):
    """describe_manifest_clips (the tiny preset's one pool for every system): manifests sharing clip ids,
    every clip cached, and MIRDD afterwards re-extracts nothing and gives the same value."""
    from magnet_eval.embedding_cache import EmbeddingCache
    from magnet_eval.mir.extract import describe_manifest_clips

    cache = EmbeddingCache(rendered["root"] / "cache-one-pool")
    assert describe_manifest_clips([rendered["ref"], rendered["held"], rendered["noise"]], cache=cache, workers=2) == 24
    before = cache.misses
    got = mirdd_results(rendered["noise"], rendered["ref"], cache=cache, n_bootstrap=20)
    assert cache.misses == before
    want = mirdd_results(rendered["noise"], rendered["ref"], cache=rendered["cache"], n_bootstrap=20)
    assert got[0].value == want[0].value


def test_stem_plus_context_is_selected_by_the_context_stem(rendered):
    from magnet_eval.audio import load_audio, save_audio
    from magnet_eval.manifest import Manifest, ManifestEntry
    from magnet_eval.mir.extract import describe_file

    entries = []
    with_lead = [e for e in rendered["corpus"] if "lead" in e.stems and len(e.stems) > 1]
    for e in with_lead[:2]:
        others = [p for part, p in e.stems.items() if part != "lead"]
        ctx = sum(load_audio(p)[0] for p in others)
        ctx_path = save_audio(rendered["root"] / "ctx" / f"{e.id}.wav", ctx, 22050)
        entries.append(ManifestEntry(e.id, e.caption, e.stems["lead"], stems={"context": str(ctx_path)}))
    stems = Manifest(entries, source="stems")
    opts = dict(cache=rendered["cache"], n_bootstrap=0, workers=1)
    auto = mirdd_results(stems, rendered["ref"], **opts)
    plain = mirdd_results(stems, rendered["ref"], context=None, **opts)
    assert auto[0].details["stem_plus_context"] is True and plain[0].details["stem_plus_context"] is False
    assert auto[0].value != pytest.approx(plain[0].value)
    # what was measured is the stem + context mix
    direct = {e.id: describe_file(e.audio_path, e.stems["context"]) for e in entries}
    from magnet_eval.mir.extract import describe_files

    ref_desc = MIRDD(n_bootstrap=0)
    ref_desc.update_reference(describe_files([(e.id, e.audio_path) for e in rendered["ref"]], cache=rendered["cache"]))
    ref_desc.update(direct)
    assert ref_desc.compute()[0].value == pytest.approx(auto[0].value)
    with pytest.raises(MagnetEvalError, match="context"):
        mirdd_results(stems, rendered["ref"], context="accompaniment", **opts)


def test_descriptor_vocabularies_are_fixed():
    # bins do not depend on the data: the same vocabulary for every population
    assert [d.size for d in DESCRIPTORS] == [25, 129, 13, 41, 7, 25, 11, 129, 13, 25, 9]
