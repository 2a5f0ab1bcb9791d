"""KL as audiocraft measures it: PaSST pretrained on 20 s clips for music, 10 s for general audio."""

from __future__ import annotations

import numpy as np
import pytest

from magnet_eval.audio import save_audio
from magnet_eval.embedders.classifiers import PasstClassifier, get_classifier, passt_for_domain
from magnet_eval.errors import MagnetEvalError
from magnet_eval.manifest import Manifest, ManifestEntry


def test_variant_and_weights_file_per_domain():
    music = get_classifier(passt_for_domain("music"))
    audio = get_classifier(passt_for_domain("audio"))
    assert music.name == "passt-20s" and music.segment_seconds == 20.0
    assert music.weights_file == "passt-s-f128-20sec-p16-s10-ap.474-swa.pt"
    assert audio.name == "passt" and audio.segment_seconds == 10.0
    assert audio.weights_file == "passt-s-f128-p16-s10-ap.476-swa.pt"
    assert music.details() == {"passt_variant": "passt-20s", "passt_pretrained_length_s": 20.0,
                               "passt_weights_file": "passt-s-f128-20sec-p16-s10-ap.474-swa.pt"}
    with pytest.raises(MagnetEvalError, match="unknown domain"):
        passt_for_domain("speech")


def test_paper_presets_use_the_domain_variant(tmp_path, monkeypatch):
    from magnet_eval.reproduce import PAPER, paper_requirements

    assert passt_for_domain(PAPER["paper-musiccaps"]["domain"]) == "passt-20s"
    assert passt_for_domain(PAPER["paper-audiocaps"]["domain"]) == "passt"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    music = "\n".join(paper_requirements("paper-musiccaps", None, None))
    audio = "\n".join(paper_requirements("paper-audiocaps", None, None))
    assert "passt-s-f128-20sec-p16-s10-ap.474-swa.pt" in music and "ap.476" not in music
    assert "passt-s-f128-p16-s10-ap.476-swa.pt" in audio and "20sec" not in audio


class OfflinePasst(PasstClassifier):
    """A PaSST variant whose network is replaced by a fixed function of the audio (no weights needed)."""

    def __init__(self, variant: str):
        super().__init__(variant)
        self.model = object()
        self.weights_id = "test"
        self.seen_lengths: list[int] = []

    def logits(self, wav32k):
        self.seen_lengths.append(len(wav32k))
        spectrum = np.abs(np.fft.rfft(wav32k, n=2048))[:527]
        return np.log(spectrum + 1e-3)[None]


def _clips(folder, freqs, seconds=1.0, sr=16000):
    folder.mkdir()
    entries = []
    t = np.arange(int(seconds * sr)) / sr
    for i, f in enumerate(freqs):
        path = save_audio(folder / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr)
        entries.append(ManifestEntry(id=f"c{i}", caption=f"tone {f}", audio_path=str(path), duration=seconds))
    return Manifest(entries)


def test_kl_results_record_the_variant(tmp_path):
    from magnet_eval.embedding_cache import EmbeddingCache
    from magnet_eval.evaluation import evaluate

    gen = _clips(tmp_path / "gen", [220, 330, 440])
    ref = _clips(tmp_path / "ref", [225, 500, 440])
    clf = OfflinePasst("passt-20s")
    res, _ = evaluate(gen, ref, ["kl"], kl_classifier=clf, cache=EmbeddingCache(tmp_path / "cache"), n_bootstrap=0)
    row = res.set_index("metric").loc["kl"]
    details = row["details"] if isinstance(row["details"], dict) else __import__("json").loads(row["details"])
    assert details["passt_variant"] == "passt-20s"
    assert details["passt_weights_file"] == "passt-s-f128-20sec-p16-s10-ap.474-swa.pt"
    assert details["passt_pretrained_length_s"] == 20.0
    assert np.isfinite(row["value"])
