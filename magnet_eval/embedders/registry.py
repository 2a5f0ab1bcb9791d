"""The embedder registry (fadtk-like): names -> classes, imported only when asked for.

`get_embedder(name, **options)` returns an unloaded Embedder (call `.load(weights=None)`);
`list_embedders()` lists the names; `EMBEDDERS` holds one `EmbedderInfo` per name. Only the
embedder asked for is imported and loaded (fadtk #45: never pull every model).

Names: vggish, pann, clap (music_audioset HTSAT-base), clap-630k (630k-audioset HTSAT-tiny),
encodec (EnCodec 24 kHz latents), codec:<spec> (latents of a toolkit codec), musicnn
(MTT_musicnn, offline default for music), musicnn-msd (MSD_musicnn), aisfx (offline default
for sound effects).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import MagnetEvalError
from .base import Embedder


def _wheel_probe(name: str) -> Callable[[], Path | None]:
    def probe() -> Path | None:
        from ..errors import MissingWeightsError
        from ..weights import wheel_path

        try:
            return wheel_path(name)
        except MissingWeightsError:
            return None
    return probe


def _first_existing(paths: Callable[[], list[Path]]) -> Callable[[], Path | None]:
    def probe() -> Path | None:
        return next((p for p in paths() if p.exists()), None)
    return probe


def _vggish_paths() -> list[Path]:
    from .vggish import VGGishEmbedder

    return [VGGishEmbedder.default_path()]


def _pann_paths() -> list[Path]:
    from .pann import candidate_paths

    return candidate_paths()


def _clap_paths(checkpoint: str) -> Callable[[], list[Path]]:
    def paths() -> list[Path]:
        from .clap import checkpoint_candidates

        return checkpoint_candidates(checkpoint)
    return paths


def _encodec_paths() -> list[Path]:
    from .encodec import EncodecEmbedder

    return [EncodecEmbedder.default_path()]


@dataclass(frozen=True)
class EmbedderInfo:
    """What a name stands for: the class ("module:Class" in this package), its options and its weights."""

    name: str
    target: str
    options: dict = field(default_factory=dict)
    sample_rate: int = 16000
    dim: int = 0
    weights: str = ""
    description: str = ""
    probe: Callable[[], Path | None] | None = None

    def cls(self) -> type[Embedder]:
        module, attr = self.target.split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), attr)

    def find_weights(self) -> Path | None:
        """The weight file this embedder would load by default, or None (cheap: nothing is loaded)."""
        return self.probe() if self.probe else None


EMBEDDERS: dict[str, EmbedderInfo] = {
    info.name: info for info in [
        EmbedderInfo("vggish", "vggish:VGGishEmbedder", {}, 16000, 128,
                     "vggish-10086976.pth in $TORCH_HOME/hub/checkpoints/",
                     "VGGish (torchvggish weights), 0.96 s frames, no PCA, final ReLU dropped",
                     _first_existing(_vggish_paths)),
        EmbedderInfo("pann", "pann:PANNEmbedder", {}, 16000, 2048,
                     "Cnn14_16k_mAP=0.438.pth (or %3D) in $TORCH_HOME/hub/",
                     "PANNs Cnn14 16 kHz clip embedding (frechet-audio-distance's model code)",
                     _first_existing(_pann_paths)),
        EmbedderInfo("clap", "clap:CLAPEmbedder", {"checkpoint": "music_audioset_epoch_15_esc_90.14.pt"}, 48000, 512,
                     "music_audioset_epoch_15_esc_90.14.pt in the HF cache (lukewys/laion_clap)",
                     "LAION-CLAP HTSAT-base music checkpoint, deterministic 10 s windows",
                     _first_existing(_clap_paths("music_audioset_epoch_15_esc_90.14.pt"))),
        EmbedderInfo("clap-630k", "clap:CLAPEmbedder", {"checkpoint": "630k-audioset-best.pt", "name": "clap-630k"},
                     48000, 512, "630k-audioset-best.pt in the HF cache (lukewys/laion_clap)",
                     "LAION-CLAP HTSAT-tiny 630k+AudioSet checkpoint, deterministic 10 s windows",
                     _first_existing(_clap_paths("630k-audioset-best.pt"))),
        EmbedderInfo("encodec", "encodec:EncodecEmbedder", {}, 24000, 128,
                     "encodec_24khz-d7cc33bc.th in $TORCH_HOME/hub/checkpoints/",
                     "EnCodec 24 kHz continuous encoder latents, 75 Hz",
                     _first_existing(_encodec_paths)),
        EmbedderInfo("codec", "encodec:CodecLatentEmbedder", {}, 32000, 0,
                     "a toolkit codec: codec:<preset or checkpoint>",
                     "continuous latents of magnet_eval.models.codec.load_codec(spec)"),
        EmbedderInfo("musicnn", "musicnn:MusicnnEmbedder", {"model": "MTT_musicnn"}, 16000, 200,
                     "the musicnn 0.1.0 wheel in cache_dir()/wheels (converted once to cache_dir()/weights/musicnn)",
                     "musicnn MTT_musicnn penultimate layer per 3 s patch (offline default, music)",
                     _wheel_probe("musicnn")),
        EmbedderInfo("musicnn-msd", "musicnn:MusicnnEmbedder", {"model": "MSD_musicnn"}, 16000, 200,
                     "the musicnn 0.1.0 wheel in cache_dir()/wheels",
                     "musicnn MSD_musicnn penultimate layer per 3 s patch",
                     _wheel_probe("musicnn")),
        EmbedderInfo("aisfx", "aisfx:AisfxEmbedder", {}, 44100, 512,
                     "the aisfx 0.1.2 wheel in cache_dir()/wheels",
                     "aiSFX sound-effects embedding per 2.3 s block (offline default, AudioCaps-style audio)",
                     _wheel_probe("aisfx")),
    ]
}

#: Minimum clip duration per embedder (seconds): one analysis window of its front end, the least audio
#: from which it computes one frame of real signal (anything shorter is scored as padding). A 1-sample
#: clip therefore never enters FAD/KAD. VGGish: 400-sample STFT window at 16 kHz; PANN Cnn14: 512 at
#: 16 kHz; CLAP HTSAT: 1024 at 48 kHz; EnCodec 24 kHz: one 320-sample latent frame; musicnn: n_fft 512
#: at 16 kHz; aisfx: 2048-sample essentia frames at 44.1 kHz. Longer clips that are still shorter than
#: one example (0.96 s, 3 s, 2.3 s, 10 s) are padded as `clip_handling` says.
MIN_SECONDS: dict[str, float] = {
    "vggish": 400 / 16000, "pann": 512 / 16000, "clap": 1024 / 48000, "clap-630k": 1024 / 48000,
    "encodec": 320 / 24000, "musicnn": 512 / 16000, "musicnn-msd": 512 / 16000, "aisfx": 2048 / 44100,
}

ALIASES = {"clap-music": "clap", "clap_630k": "clap-630k", "musicnn-mtt": "musicnn", "panns": "pann"}


def list_embedders() -> list[str]:
    """The registered embedder names (`codec` takes a spec: `codec:<preset or checkpoint>`)."""
    return list(EMBEDDERS)


def get_info(name: str) -> EmbedderInfo:
    key = ALIASES.get(name, name)
    if key not in EMBEDDERS:
        raise MagnetEvalError(f"unknown embedder {name!r}; available: {', '.join(list_embedders())} "
                              "(and codec:<preset or checkpoint>)")
    return EMBEDDERS[key]


def get_embedder(name: str, **options) -> Embedder:
    """An unloaded Embedder by name; keyword options override the registry's (e.g. layer='max_pool')."""
    if not isinstance(name, str) or not name:
        raise MagnetEvalError(f"embedder name must be a non-empty string, got {name!r}")
    if name.startswith("codec:"):
        info = EMBEDDERS["codec"]
        return info.cls()(spec=name.split(":", 1)[1], **options)
    info = get_info(name)
    emb = info.cls()(**{**info.options, **options})
    emb.min_seconds = max(float(getattr(emb, "min_seconds", 0.0) or 0.0), MIN_SECONDS.get(info.name, 0.0))
    return emb
