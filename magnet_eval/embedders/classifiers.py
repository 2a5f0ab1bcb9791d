"""Audio classifiers for the KL metric: label distributions per segment of a clip.

`get_classifier(name)` returns an object with `name`, `sample_rate`, `labels`, `weights_id`,
`segment_seconds` (the model's input length: the KL code cuts clips into such segments without
padding and drops those of 0.15 s or less), `multilabel`, `load(weights=None) -> self` and
`probs(audio, sr) -> [segments, C]`.

- 'passt' / 'passt-20s' / 'passt-30s': PaSST (Koutini et al.) AudioSet taggers through the
  model code of `hear21passt` (pip package; audiocraft's KL uses hear21passt 0.0.19), weights in
  the layout PaSST releases them: `passt-s-f128-p16-s10-ap.476-swa.pt` (10 s),
  `passt-s-f128-20sec-p16-s10-ap.474-swa.pt` (20 s), `passt-s-f128-30sec-p16-s10-ap.473-swa.pt`
  (30 s), looked up in the torch hub cache (`$TORCH_HOME/hub/checkpoints/`, where hear21passt's
  download puts them) or given as a path. Output: softmax over the 527 AudioSet logits (the
  average of the class and distillation heads, as PaSST's eval forward), 32 kHz mono input,
  hear21passt's mel front end in eval mode (no augmentation). audiocraft uses the 10 s model for
  general audio and the 20 s model for music (`pretrained_length: 20` in its musicgen solver config,
  10 in audiogen's): `passt_for_domain('music' | 'audio')` picks the variant, and KL results record
  it (`details()`: variant, pretrained length, weights file).
- 'musicnn' / 'musicnn-msd': the 50 tag posteriors of musicnn (independent sigmoids, one row
  per 3 s patch; `multilabel` so the KL code renormalises the clip average).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from ..errors import MagnetEvalError, ModelLoadError
from ..files import file_sha1, load_torch
from ..paths import torch_hub_dir
from .base import load_strict, make_weights_id, weight_file

PASST_SR = 32000
PASST_RELEASE = "https://github.com/kkoutini/PaSST/releases/download/"
# name -> (hear21passt arch, input time frames, segment seconds, weight file, release tag)
PASST_MODELS = {
    "passt": ("passt_s_swa_p16_128_ap476", 998, 10.0, "passt-s-f128-p16-s10-ap.476-swa.pt", "v0.0.1-audioset"),
    "passt-20s": ("passt_20sec", 2000, 20.0, "passt-s-f128-20sec-p16-s10-ap.474-swa.pt", "v0.0.5"),
    "passt-30s": ("passt_30sec", 3000, 30.0, "passt-s-f128-30sec-p16-s10-ap.473-swa.pt", "v0.0.5"),
}
# audiocraft's KL classifier by domain: PaSST pretrained on 20 s clips for music (MusicGen/MAGNeT solvers,
# `pretrained_length: 20`), on 10 s clips for general audio (AudioGen / Audio-MAGNeT, `pretrained_length: 10`)
PASST_BY_DOMAIN = {"music": "passt-20s", "audio": "passt"}


def passt_for_domain(domain: str) -> str:
    """The PaSST variant audiocraft's KL uses for a domain: 'music' -> passt-20s, 'audio' -> passt (10 s)."""
    key = str(domain).strip().lower()
    if key not in PASST_BY_DOMAIN:
        raise MagnetEvalError(f"unknown domain {domain!r} for the KL classifier; choose one of "
                              f"{', '.join(sorted(PASST_BY_DOMAIN))}")
    return PASST_BY_DOMAIN[key]


class PasstClassifier:
    """PaSST AudioSet probabilities (softmax over 527 logits) per segment of up to `segment_seconds`."""

    sample_rate = PASST_SR
    multilabel = False

    def __init__(self, variant: str = "passt", device: str | None = None) -> None:
        from .audioset_labels import AUDIOSET_LABELS

        if variant not in PASST_MODELS:
            raise MagnetEvalError(f"unknown PaSST variant {variant!r}; choose one of {sorted(PASST_MODELS)}")
        self.name = variant
        self.arch, self.input_tdim, self.segment_seconds, self.weights_file, tag = PASST_MODELS[variant]
        self.source = PASST_RELEASE + f"{tag}/{self.weights_file}"
        self.labels: tuple[str, ...] = AUDIOSET_LABELS
        self.device = device
        self.model = None
        self.mel = None
        self.weights_id = ""
        self.weights_path: Path | None = None

    def default_path(self) -> Path:
        return torch_hub_dir() / "checkpoints" / self.weights_file

    def details(self) -> dict[str, object]:
        """What a KL result records about the classifier: the variant, its training length, its weights file."""
        return {"passt_variant": self.name, "passt_pretrained_length_s": self.segment_seconds,
                "passt_weights_file": self.weights_file}

    def build(self):
        """(mel front end, PaSST network) from hear21passt's code, random weights."""
        try:
            from hear21passt.models.passt import get_model
            from hear21passt.models.preprocess import AugmentMelSTFT
        except ImportError as exc:
            raise ModelLoadError(
                f"PaSST needs the model code of the hear21passt package ({type(exc).__name__}: {exc}); install it with "
                "`pip install hear21passt` (it brings timm)") from exc
        import sys

        from .base import skip_random_init

        helpers = (sys.modules.get("hear21passt.models.passt"),
                   sys.modules.get("hear21passt.models.helpers.vit_helpers"))
        # hear21passt prints banners while building; weights are loaded strictly afterwards
        with contextlib.redirect_stdout(io.StringIO()), skip_random_init(*helpers):
            net = get_model(arch=self.arch, pretrained=False, n_classes=527, in_channels=1, fstride=10, tstride=10,
                            input_fdim=128, input_tdim=self.input_tdim)
        mel = AugmentMelSTFT(n_mels=128, sr=PASST_SR, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192,
                             htk=False, fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000)
        return mel, net

    def load(self, weights: str | Path | None = None) -> "PasstClassifier":
        from .base import default_device

        self.device = default_device(self.device)
        path = weight_file(f"PaSST weights {self.weights_file}", Path(weights).expanduser() if weights else None,
                           [self.default_path()], self.source)
        mel, net = self.build()
        sd = load_torch(path)
        from hear21passt.models.passt import checkpoint_filter_fn

        sd = checkpoint_filter_fn(sd, net)  # unwraps {'model': ...} and old patch-embedding layouts
        load_strict(net, sd, f"{path} does not fit hear21passt's {self.arch}")
        self.mel = mel.to(self.device).eval()
        self.model = net.to(self.device).eval()
        self.weights_path = path
        self.weights_id = make_weights_id(file_sha1(path), self.arch)
        return self

    def logits(self, wav32k: np.ndarray) -> np.ndarray:
        """[1, 527] logits of one segment (at most `segment_seconds`) of 32 kHz mono audio."""
        import warnings

        import torch

        if self.model is None:
            raise MagnetEvalError("PaSST: call .load() before .probs()")
        x = torch.from_numpy(np.ascontiguousarray(wav32k, dtype=np.float32))[None].to(self.device)
        # hear21passt prints shapes on its first forward and warns about inputs shorter than 10 s (fine:
        # the time positional encoding is cut to the input)
        with torch.inference_mode(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message="Input image size")
            spec = self.mel(x).unsqueeze(1)
            out, _ = self.model(spec)
        return out.float().cpu().numpy()

    def probs(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Softmax over AudioSet logits [segments, 527]; consecutive segments, no padding, <= 0.15 s dropped."""
        from .base import prepare_mono

        wav = prepare_mono(audio, sr, PASST_SR, "input to PaSST")
        seg = int(self.segment_seconds * PASST_SR)
        rows = []
        for s in range(0, wav.shape[0], seg):
            piece = wav[s:s + seg]
            if piece.shape[0] <= 0.15 * PASST_SR:
                continue
            logits = self.logits(piece).astype(np.float64)
            e = np.exp(logits - logits.max(axis=-1, keepdims=True))
            rows.append(e / e.sum(axis=-1, keepdims=True))
        if not rows:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.concatenate(rows).astype(np.float32)


class MusicnnClassifier:
    """musicnn's tag posteriors [patches, 50] as a KL classifier (offline)."""

    sample_rate = 16000
    multilabel = True
    segment_seconds = None  # the tagger cuts its own 3 s patches

    def __init__(self, model: str = "MTT_musicnn", device: str | None = None) -> None:
        from .musicnn import MusicnnEmbedder

        self.embedder = MusicnnEmbedder(model=model, device=device)
        self.name = "musicnn" if model == "MTT_musicnn" else "musicnn-msd"
        self.labels: tuple[str, ...] = self.embedder.tag_names
        self.weights_id = ""

    def load(self, weights: str | Path | None = None) -> "MusicnnClassifier":
        self.embedder.load(weights)
        self.weights_id = make_weights_id(self.embedder.weights_id.split("/")[0].replace("sha1:", ""),
                                          self.embedder.model_name, "tags")
        return self

    def probs(self, audio: np.ndarray, sr: int) -> np.ndarray:
        return self.embedder.tag_probs(audio, sr)


CLASSIFIERS = {"passt": "PaSST 10 s (AudioSet, 527)", "passt-20s": "PaSST 20 s (AudioSet, 527)",
               "passt-30s": "PaSST 30 s (AudioSet, 527)", "musicnn": "musicnn MTT tags (50)",
               "musicnn-msd": "musicnn MSD tags (50)"}


def list_classifiers() -> list[str]:
    return list(CLASSIFIERS)


def get_classifier(name: str, **options):
    """An unloaded classifier by name (call `.load(weights=None)`)."""
    if name in PASST_MODELS:
        return PasstClassifier(name, **options)
    if name == "musicnn":
        return MusicnnClassifier("MTT_musicnn", **options)
    if name == "musicnn-msd":
        return MusicnnClassifier("MSD_musicnn", **options)
    raise MagnetEvalError(f"unknown classifier {name!r}; available: {', '.join(list_classifiers())}")
