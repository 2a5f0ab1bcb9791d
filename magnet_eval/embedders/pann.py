"""PANNs Cnn14 at 16 kHz (Kong et al., 2020), built and loaded as frechet-audio-distance does.

The model code is frechet-audio-distance's own (`frechet_audio_distance.models.pann.Cnn14_16k`,
window 512, hop 160, 64 mel bands 50-8000 Hz, 527 classes); the checkpoint is the zenodo file
`Cnn14_16k_mAP=0.438.pth` (a dict whose 'model' entry is the state dict). frechet-audio-distance
saves it URL-encoded as `Cnn14_16k_mAP%3D0.438.pth` directly in the torch hub folder
(`torch.hub.get_dir()`); both spellings are looked for there, in `hub/checkpoints/` and in
`~/panns_data/` (panns_inference's folder), or a path is given.

Clip handling (as frechet-audio-distance): the whole clip goes through the network at once and
the 2048-d clip embedding (after fc1 + ReLU) is returned: one frame per clip. Clips shorter
than 1 s are zero-padded to 1 s (the six pooling stages need enough frames).

Forward passes (`_passes`): clips of the same length run together, which is about 1.4x faster
per clip on CPU than one at a time. A clip's value must not depend on which clips share its
pass, so: on CPU a pass always holds at least two clips (a lone clip is paired with silence):
PyTorch's CPU convolution computes each clip of a batch of 2 or more identically, whatever the
batch size and the clip's place in it, while a batch of one takes another kernel (values ~1e-8
apart; `tests/test_embedders.py` checks this on the machine that runs the tests). On GPU every
pass has exactly `pass_clips(length)` clips, silence-padded, so its shape depends on the clip's
length alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ModelLoadError
from ..files import file_sha1, load_torch
from ..paths import torch_hub_dir
from .base import Embedder, load_strict, make_weights_id, skip_random_init, weight_file

SAMPLE_RATE = 16000
WEIGHTS_FILE = "Cnn14_16k_mAP=0.438.pth"
WEIGHTS_FILE_FAD = "Cnn14_16k_mAP%3D0.438.pth"
WEIGHTS_URL = "https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth"
MIN_SECONDS = 1.0
#: audio per forward pass: Cnn14's activations grow with it (~50 MB per second of audio in a pass)
PASS_SECONDS = 80.0
MAX_PASS_CLIPS = 8


def pass_clips(n_samples: int) -> int:
    """Clips per forward pass for clips of `n_samples` samples: 2 to 8, fewer for long clips."""
    return max(2, min(MAX_PASS_CLIPS, int(PASS_SECONDS * SAMPLE_RATE) // max(int(n_samples), 1)))


def _pann_models_module():
    """frechet-audio-distance's `models/pann.py`, imported without running the package's __init__.

    `import frechet_audio_distance` imports laion_clap (and its tokenizers) first, several seconds
    that Cnn14 does not need; the same source files are loaded under a private package name.
    """
    import importlib
    import importlib.util
    import sys

    loaded = sys.modules.get("frechet_audio_distance.models.pann")
    if loaded is not None:
        return loaded
    name = "_magnet_eval_fad_models"
    if name + ".pann" in sys.modules:
        return sys.modules[name + ".pann"]
    spec = importlib.util.find_spec("frechet_audio_distance")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the PANNs embedder needs the frechet-audio-distance package (its model code): "
                             "ModuleNotFoundError: no module named 'frechet_audio_distance'")
    models_dir = Path(list(spec.submodule_search_locations)[0]) / "models"
    pkg_spec = importlib.util.spec_from_file_location(name, models_dir / "__init__.py",
                                                      submodule_search_locations=[str(models_dir)])
    pkg = importlib.util.module_from_spec(pkg_spec)
    sys.modules[name] = pkg
    pkg_spec.loader.exec_module(pkg)
    return importlib.import_module(name + ".pann")


def build_network():
    """frechet-audio-distance's Cnn14_16k with its 16 kHz front end (weights left for a strict load)."""
    Cnn14_16k = _pann_models_module().Cnn14_16k
    with skip_random_init():  # the checkpoint is loaded strictly afterwards
        return Cnn14_16k(sample_rate=16000, window_size=512, hop_size=160, mel_bins=64, fmin=50, fmax=8000,
                         classes_num=527)


def candidate_paths() -> list[Path]:
    hub = torch_hub_dir()
    return [hub / WEIGHTS_FILE_FAD, hub / WEIGHTS_FILE, hub / "checkpoints" / WEIGHTS_FILE,
            hub / "checkpoints" / WEIGHTS_FILE_FAD, Path.home() / "panns_data" / WEIGHTS_FILE]


class PANNEmbedder(Embedder):
    """2048-d PANNs Cnn14 (16 kHz) clip embeddings, as frechet-audio-distance's model_name='pann'."""

    name = "pann"
    sample_rate = SAMPLE_RATE
    dim = 2048
    clip_handling = "16 kHz; the whole clip in one pass, one 2048-d embedding per clip; clips under 1 s zero-padded"
    batched = True
    # "2": every forward pass holds at least two clips (see the module docstring); values moved by ~1e-8
    # from version 1, whose cache entries are not reused
    version = "2"
    #: passes of exactly `pass_clips(length)` clips (None: on any device but the CPU)
    fixed_passes: bool | None = None

    def _load(self, weights: Path | None) -> None:
        path = weight_file(f"PANNs Cnn14 16 kHz weights {WEIGHTS_FILE}", weights, candidate_paths(), WEIGHTS_URL)
        ckpt = load_torch(path)  # training-time files may also hold sampler state (numeric numpy arrays)
        sd = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(sd, dict):
            raise CheckpointError(f"{path}: expected a dict with a 'model' state dict")
        net = build_network()
        load_strict(net, sd, f"{path} does not fit Cnn14_16k")
        self.model = net.to(self.device).eval()
        self.weights_path = path
        self.weights_id = make_weights_id(file_sha1(path))

    def _passes(self, wavs: list[np.ndarray], output: str) -> list[np.ndarray]:
        """`output` ('embedding' or 'clipwise_output') [1, k] per clip, through the batch-invariant passes."""
        import torch

        need = int(MIN_SECONDS * SAMPLE_RATE)
        wavs = [np.pad(w, (0, need - w.shape[0])) if w.shape[0] < need else w for w in wavs]
        by_length: dict[int, list[int]] = {}
        for i, w in enumerate(wavs):
            by_length.setdefault(int(w.shape[0]), []).append(i)
        fixed = self.fixed_passes if self.fixed_passes is not None else not str(self.device).startswith("cpu")
        out: list[np.ndarray] = [np.empty(0)] * len(wavs)
        for length, idx in by_length.items():
            size = pass_clips(length)
            for s in range(0, len(idx), size):
                chunk = idx[s:s + size]
                filler = (size if fixed else 2) - len(chunk)
                x = np.stack([wavs[i] for i in chunk] + [np.zeros(length, np.float32)] * max(filler, 0))
                with torch.inference_mode():
                    got = self.model(torch.from_numpy(x).float().to(self.device), None)[output].float().cpu().numpy()
                for j, i in enumerate(chunk):
                    out[i] = got[j:j + 1]
        return out

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        return self._passes([wav], "embedding")[0]

    def _embed_batch(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        return self._passes(wavs, "embedding")

    def clip_probs(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """AudioSet posteriors [1, 527] (sigmoid clipwise output of Cnn14)."""
        self._require_loaded()
        return self._passes([self.prepare(audio, sr)], "clipwise_output")[0]
