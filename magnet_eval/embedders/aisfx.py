"""aiSFX (Ma et al., ISMIR 2021): the sound-effects embedding network shipped in the aisfx 0.1.2 wheel.

The wheel pins an old stack, so it is not installed: `aisfx/models/checkpoint.pth` is read from
the cached wheel (`python -m magnet_eval.weights fetch-wheels`). It is a pickled tuple
(state_dict, heads) with heads = {library name: (head index, number of classes)}. The network
(re-implemented here with the same parameter names, so the state dict loads strictly):
four conv blocks (two 3x3 conv + batch norm + ReLU each, 64/128/256/512 channels, 2x2 max
pooling after the first three), mean over frequency, max over time -> a 512-d embedding; nine
classification heads (512 -> 256 -> 128 -> classes) trained across sound-effect libraries.

Input features as the package's default (the essentia path of its ISMIR paper), computed with
essentia's own algorithms: 44.1 kHz mono, frames of 2048 with hop 1024 (essentia FrameCutter
defaults: first frame centred on sample 0), Hann window, magnitude spectrum, 96 HTK-mel bands
0-22050 Hz (warping weighting, unit-sum normalisation, power), log10(10000 x + 1), divided by
9.457798957824707 (the package's 'original' min-max normalisation, min 0).

Clip handling (the package's `blocking`): blocks of 100 spectrogram frames (~2.3 s) with a hop
of 50 (emb_hop_size 0.5), an incomplete last block dropped; a clip shorter than one block gives
one zero-padded block. One 512-d embedding per block.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, MissingWeightsError
from ..files import load_torch
from .base import Embedder, bytes_sha1, load_strict, make_weights_id

SAMPLE_RATE = 44100
FRAME = 2048
HOP = 1024
N_MELS = 96
SPEC_MAX = 9.457798957824707
BLOCK = 100
BLOCK_HOP = 50
WHEEL_MEMBER = "aisfx/models/checkpoint.pth"


def build_network(heads: dict[str, tuple[int, int]] | None = None, base_channels: int = 64):
    """EmbeddingNet + classification heads with aisfx's parameter names (`embedding_net.*`, `fc.i.*`)."""
    import torch

    nn = torch.nn
    F = torch.nn.functional

    class ConvBlock(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.bn2 = nn.BatchNorm2d(cout)

        def forward(self, x, pool: bool):
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
            return F.max_pool2d(x, 2) if pool else x

    class EmbeddingNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = base_channels
            self.conv_block1 = ConvBlock(1, c)
            self.conv_block2 = ConvBlock(c, 2 * c)
            self.conv_block3 = ConvBlock(2 * c, 4 * c)
            self.conv_block4 = ConvBlock(4 * c, 8 * c)

        def forward(self, spec):  # [B, time, mels] -> [B, 8c]
            x = spec.unsqueeze(1)
            x = self.conv_block1(x, True)
            x = self.conv_block2(x, True)
            x = self.conv_block3(x, True)
            x = self.conv_block4(x, False)  # aisfx pools 1x1 here: a no-op
            return x.mean(dim=3).max(dim=2).values

    class AisfxNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding_net = EmbeddingNet()
            d = 8 * base_channels
            ordered = sorted((heads or {}).items(), key=lambda kv: kv[1][0])
            self.head_names = [name for name, _ in ordered]
            self.fc = nn.ModuleList([nn.Sequential(nn.Linear(d, d // 2), nn.ReLU(), nn.Linear(d // 2, d // 4),
                                                   nn.ReLU(), nn.Linear(d // 4, n)) for _, (_, n) in ordered])

        def forward(self, spec):
            return self.embedding_net(spec)

    return AisfxNet()


def _checkpoint_bytes(weights: Path | None) -> tuple[bytes, str]:
    if weights is None:
        from ..weights import read_from_wheel, wheel_path

        try:
            where = wheel_path("aisfx")
        except MissingWeightsError as exc:
            raise MissingWeightsError(f"aisfx weights ({WHEEL_MEMBER} inside the aisfx 0.1.2 wheel) "
                                      f"are not available.\n{exc}") from exc
        return read_from_wheel("aisfx", WHEEL_MEMBER), f"{where}:{WHEEL_MEMBER}"
    if not weights.exists():
        raise MissingWeightsError(f"aisfx weights {weights} do not exist (expected the aisfx wheel or its "
                                  f"{WHEEL_MEMBER})")
    if weights.suffix == ".whl":
        with zipfile.ZipFile(weights) as zf:
            try:
                return zf.read(WHEEL_MEMBER), f"{weights}:{WHEEL_MEMBER}"
            except KeyError as exc:
                raise MissingWeightsError(f"{WHEEL_MEMBER} is not inside {weights}") from exc
    return weights.read_bytes(), str(weights)


def load_checkpoint(blob: bytes, where: str) -> tuple[dict, dict]:
    """(state_dict, heads) from the bytes of aisfx's checkpoint.pth (a pickled tuple)."""
    obj = load_torch(blob, where)  # a tuple (state_dict, heads); the heads hold numpy integer scalars
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and isinstance(obj[1], dict)):
        raise CheckpointError(f"{where}: expected a tuple (state_dict, heads), got {type(obj).__name__}")
    return dict(obj[0]), {str(k): (int(v[0]), int(v[1])) for k, v in obj[1].items()}


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """aisfx's normalised log-mel [frames, 96] of 44.1 kHz mono audio, with essentia's algorithms."""
    import essentia.standard as es

    window = es.Windowing(type="hann", normalized=False, zeroPadding=0)
    spectrum = es.Spectrum(size=FRAME)
    mels = es.MelBands(inputSize=FRAME // 2 + 1, numberBands=N_MELS, sampleRate=SAMPLE_RATE,
                       lowFrequencyBound=0.0, highFrequencyBound=SAMPLE_RATE / 2, warpingFormula="htkMel",
                       weighting="warping", normalize="unit_sum", type="power", log=False)
    rows = [mels(spectrum(window(frame)))
            for frame in es.FrameGenerator(np.ascontiguousarray(wav, dtype=np.float32), frameSize=FRAME, hopSize=HOP)]
    spec = np.asarray(rows, dtype=np.float32).reshape(-1, N_MELS)
    return (np.log10(spec * 10000.0 + 1.0) / SPEC_MAX).astype(np.float32)


def blocks(spec: np.ndarray, size: int = BLOCK, hop: int = BLOCK_HOP) -> np.ndarray:
    """[n, size, mels]: aisfx's blocking with drop_partial_block=True (see module docstring)."""
    n_frames = spec.shape[0]
    n = int(np.ceil((n_frames - size) / hop + 1))
    if (n_frames - size) % hop != 0:
        n -= 1
    n = max(n, 1)
    padded = np.vstack([spec, np.zeros((size, spec.shape[1]), dtype=spec.dtype)])
    return np.stack([padded[i * hop:i * hop + size] for i in range(n)])


class AisfxEmbedder(Embedder):
    """512-d aiSFX embeddings per ~2.3 s block (hop ~1.16 s): the offline default for sound effects."""

    name = "aisfx"
    sample_rate = SAMPLE_RATE
    dim = 512
    clip_handling = ("44.1 kHz essentia log-mel; blocks of 100 frames (~2.3 s) with hop 50 (~1.16 s), incomplete "
                     "last block dropped, clips under one block zero-padded to one block; one frame per block")
    min_seconds = 0.03

    def __init__(self, device: str | None = None, batch_size: int = 32) -> None:
        super().__init__(device)
        self.batch_size = int(batch_size)
        self.heads: dict[str, tuple[int, int]] = {}

    def _load(self, weights: Path | None) -> None:
        blob, where = _checkpoint_bytes(weights)
        sd, heads = load_checkpoint(blob, where)
        net = build_network(heads)
        load_strict(net, sd, f"aisfx weights from {where} do not fit the architecture")
        self.model = net.to(self.device).eval()
        self.heads = heads
        self.weights_path = Path(where.split(":aisfx/")[0])
        self.weights_id = make_weights_id(bytes_sha1(blob))

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        import torch

        batch = blocks(mel_spectrogram(wav))
        out = []
        with torch.inference_mode():
            for s in range(0, batch.shape[0], self.batch_size):
                x = torch.from_numpy(batch[s:s + self.batch_size]).to(self.device)
                out.append(self.model(x).float().cpu())
        return torch.cat(out).numpy()

    def head_probs(self, audio: np.ndarray, sr: int, head: str) -> np.ndarray:
        """Softmax over one library head's classes [blocks, classes] (the heads carry no class names)."""
        import torch

        self._require_loaded()
        if head not in self.heads:
            raise CheckpointError(f"unknown aisfx head {head!r}; heads: {sorted(self.heads)}")
        emb = torch.from_numpy(self.embed(audio, sr)).to(self.device)
        with torch.inference_mode():
            logits = self.model.fc[self.model.head_names.index(head)](emb)
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()
