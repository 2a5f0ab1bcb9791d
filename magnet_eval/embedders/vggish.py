"""VGGish (Hershey et al., 2017) with the PyTorch weights torchvggish publishes, as frechet-audio-distance uses it.

Why the network is written here: frechet-audio-distance does not vendor torchvggish; it calls
`torch.hub.load('harritaylor/torchvggish', 'vggish')`, which clones a GitHub repository and is
impossible offline. The architecture is small (six 3x3 convolutions, four max-pools, three
dense layers), so it is re-declared here with torchvggish's parameter names
(`features.{0,3,6,8,11,13}`, `embeddings.{0,2,4}`) and loads its state dict strictly.

Weights: `vggish-10086976.pth` (and, only with `postprocess=True`, the PCA parameters
`vggish_pca_params-970ea276.pth`), looked up in the torch hub cache
(`$TORCH_HOME/hub/checkpoints/`, where torch.hub puts them) or given as a path.

As frechet-audio-distance (use_pca=False, use_activation=False): no PCA/quantisation and the
final ReLU of the embedding stack dropped (TF VGGish has none), 128-d.

Input (VGGish's own front end, re-implemented in numpy): 16 kHz mono; 25 ms periodic-Hann
frames with a 10 ms hop, no padding; |rfft| with 512 bins; 64 HTK-mel bands 125-7500 Hz (the DC
bin weighted 0); log(mel + 0.01). Resampling uses the toolkit's resampler (torchvggish uses
resampy), which the metrics README names.

Clip handling: non-overlapping 96-frame (0.96 s) examples; an incomplete last example is
dropped; a clip shorter than one example (0.975 s) is zero-padded to one. One frame per example.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from ..files import file_sha1, load_torch
from ..paths import find_weights, torch_hub_dir
from .base import Embedder, bytes_sha1, load_strict, make_weights_id, weight_file

SAMPLE_RATE = 16000
WEIGHTS_FILE = "vggish-10086976.pth"
PCA_FILE = "vggish_pca_params-970ea276.pth"
WEIGHTS_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/" + WEIGHTS_FILE
PCA_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/" + PCA_FILE

WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512
N_BANDS = 64
MEL_LOW, MEL_HIGH = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96
PCA_RANGE = (-2.0, 2.0)


def build_network():
    """The VGGish torch module with torchvggish's parameter names (random weights)."""
    import torch

    nn = torch.nn
    layers: list = []
    cin = 1
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v

    class VGGish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*layers)
            # torchvggish ends with a ReLU here; frechet-audio-distance drops it (use_activation=False)
            self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096),
                                            nn.ReLU(True), nn.Linear(4096, 128))

        def forward(self, x):  # [N, 1, 96, 64]
            x = self.features(x)  # [N, 512, 6, 4]
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TF's NHWC flatten order
            return self.embeddings(x)

    return VGGish()


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """VGGish's [257, 64] mel weights (HTK mel, triangles in mel space, DC bin zeroed)."""
    n_bins = FFT // 2 + 1
    bins_mel = _hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, n_bins))
    edges = np.linspace(_hz_to_mel(MEL_LOW), _hz_to_mel(MEL_HIGH), N_BANDS + 2)
    w = np.empty((n_bins, N_BANDS))
    for i in range(N_BANDS):
        lo, c, hi = edges[i:i + 3]
        w[:, i] = np.maximum(0.0, np.minimum((bins_mel - lo) / (c - lo), (hi - bins_mel) / (hi - c)))
    w[0, :] = 0.0
    return w


def examples(wav: np.ndarray) -> np.ndarray:
    """[n, 96, 64] log-mel examples of 16 kHz audio (see module docstring)."""
    need = WINDOW + (EXAMPLE_FRAMES - 1) * HOP
    x = np.asarray(wav, dtype=np.float64)
    if x.shape[0] < need:
        x = np.pad(x, (0, need - x.shape[0]))
    n_frames = 1 + (x.shape[0] - WINDOW) // HOP
    idx = np.arange(WINDOW)[None, :] + HOP * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)  # periodic Hann
    mag = np.abs(np.fft.rfft(x[idx] * window, FFT))
    logmel = np.log(mag @ mel_matrix() + LOG_OFFSET)
    n_ex = n_frames // EXAMPLE_FRAMES
    return logmel[: n_ex * EXAMPLE_FRAMES].reshape(n_ex, EXAMPLE_FRAMES, N_BANDS).astype(np.float32)


class VGGishEmbedder(Embedder):
    """128-d VGGish embeddings per 0.96 s, as frechet-audio-distance computes them (no PCA, no final ReLU)."""

    name = "vggish"
    sample_rate = SAMPLE_RATE
    dim = 128
    clip_handling = ("16 kHz; non-overlapping 0.96 s examples, incomplete last example dropped, clips under "
                     "0.975 s zero-padded to one example; one frame per example")

    def __init__(self, device: str | None = None, postprocess: bool = False, batch_size: int = 32) -> None:
        super().__init__(device)
        self.postprocess = bool(postprocess)
        self.batch_size = int(batch_size)
        self.pca: tuple | None = None

    @staticmethod
    def default_path() -> Path:
        return torch_hub_dir() / "checkpoints" / WEIGHTS_FILE

    def _load(self, weights: Path | None) -> None:
        path = weight_file(f"VGGish weights {WEIGHTS_FILE}", weights, [self.default_path()], WEIGHTS_URL)
        sd = load_torch(path)
        net = build_network()
        load_strict(net, sd, f"{path} is not a torchvggish state dict")
        digests = [file_sha1(path)]
        if self.postprocess:
            pca_path = find_weights(f"VGGish PCA parameters {PCA_FILE}", [path.parent / PCA_FILE],
                                    put_here=path.parent / PCA_FILE, source=PCA_URL)
            pca = load_torch(pca_path)  # numpy arrays: read through the numeric-numpy allow-list
            try:
                vecs = np.asarray(pca["pca_eigen_vectors"], dtype=np.float32)
                means = np.asarray(pca["pca_means"], dtype=np.float32).reshape(-1, 1)
            except (KeyError, TypeError) as exc:
                raise CheckpointError(f"{pca_path}: expected pca_eigen_vectors and pca_means") from exc
            self.pca = (vecs, means)
            digests.append(file_sha1(pca_path))
        self.model = net.to(self.device).eval()
        self.weights_path = path
        digest = digests[0] if len(digests) == 1 else bytes_sha1("".join(digests).encode())
        self.weights_id = make_weights_id(digest, "pca" if self.postprocess else "")

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        import torch

        ex = examples(wav)
        out = []
        with torch.inference_mode():
            for s in range(0, ex.shape[0], self.batch_size):
                x = torch.from_numpy(ex[s:s + self.batch_size]).unsqueeze(1).to(self.device)
                out.append(self.model(x).float().cpu())
        emb = torch.cat(out).numpy()
        if self.pca is not None:
            vecs, means = self.pca
            emb = (vecs @ (emb.T - means)).T
            lo, hi = PCA_RANGE
            emb = np.round((np.clip(emb, lo, hi) - lo) * (255.0 / (hi - lo)))
        return emb.astype(np.float32)
