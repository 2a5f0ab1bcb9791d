"""Codec latents as FAD embeddings: EnCodec 24 kHz (the `encodec` package) or the toolkit's own codecs.

- `encodec` (EncodecEmbedder): facebook's EnCodec 24 kHz, built with
  `EncodecModel.encodec_model_24khz(pretrained=False)` and loaded from `encodec_24khz-d7cc33bc.th`
  in the torch hub cache (`$TORCH_HOME/hub/checkpoints/`, where `encodec` downloads it) or a path.
  Embedding = the encoder's continuous output before quantisation (as frechet-audio-distance's
  'encodec'), 128-d at 75 frames per second.
- `codec` (CodecLatentEmbedder): the continuous latents of a codec of this toolkit (the 32 kHz
  MusicGen/MAGNeT codec or a trained tiny one), through
  `magnet_eval.models.codec.load_codec(spec).latents(wav)`; `spec` is whatever `load_codec`
  accepts (a preset name or a checkpoint path).

Clip handling: the whole clip is encoded in one pass (the 24 kHz model is causal and unchunked);
one frame per latent step (24 kHz EnCodec: 320 samples = 13.3 ms).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import MagnetEvalError, ModelLoadError
from ..files import file_sha1, load_torch
from ..paths import torch_hub_dir
from .base import Embedder, load_strict, make_weights_id, weight_file

WEIGHTS_FILE = "encodec_24khz-d7cc33bc.th"
WEIGHTS_URL = "https://dl.fbaipublicfiles.com/encodec/v0/" + WEIGHTS_FILE


class EncodecEmbedder(Embedder):
    """128-d continuous EnCodec 24 kHz encoder latents, 75 frames per second."""

    name = "encodec"
    sample_rate = 24000
    dim = 128
    clip_handling = "24 kHz; whole clip encoded at once; one 128-d frame per 320 samples (75 Hz)"

    @staticmethod
    def default_path() -> Path:
        return torch_hub_dir() / "checkpoints" / WEIGHTS_FILE

    def _load(self, weights: Path | None) -> None:
        from encodec import EncodecModel

        path = weight_file(f"EnCodec 24 kHz weights {WEIGHTS_FILE}", weights, [self.default_path()], WEIGHTS_URL)
        sd = load_torch(path)
        model = EncodecModel.encodec_model_24khz(pretrained=False)
        load_strict(model, sd, f"{path} is not an EnCodec 24 kHz state dict")
        self.model = model.to(self.device).eval()
        self.weights_path = path
        self.weights_id = make_weights_id(file_sha1(path))

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            z = self.model.encoder(torch.from_numpy(wav).float()[None, None].to(self.device))  # [1, 128, T]
        return z[0].T.float().cpu().numpy()


def _state_digest(module) -> str:
    """sha1 over a module's state dict (names, shapes, bytes): an id for weights that are not one file."""
    h = hashlib.sha1()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        t = v.detach().cpu().contiguous()
        if str(t.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            t = t.float()
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


class CodecLatentEmbedder(Embedder):
    """Continuous latents of a toolkit codec (`magnet_eval.models.codec.load_codec(spec)`)."""

    clip_handling = "codec rate; whole clip encoded at once; one frame per latent step"

    def __init__(self, spec: str = "", device: str | None = None) -> None:
        super().__init__(device)
        self.spec = spec
        self.name = f"codec:{spec}" if spec else "codec"
        self.sample_rate = 32000
        self.dim = 0

    def _load(self, weights: Path | None) -> None:
        spec = str(weights) if weights else self.spec
        if not spec:
            raise MagnetEvalError("the codec embedder needs a codec: get_embedder('codec:<preset or checkpoint>')")
        try:
            from ..models.codec import load_codec  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ModelLoadError(
                f"codec latents need magnet_eval.models.codec.load_codec, which is not available in this "
                f"installation ({exc})") from exc
        codec = load_codec(spec, device=self.device)
        if hasattr(codec, "eval"):
            codec = codec.eval()
        self.model = codec
        self.sample_rate = int(codec.sample_rate)
        p = Path(spec).expanduser()
        self.weights_path = p if p.exists() else None
        digest = getattr(codec, "weights_id", None)
        if callable(digest):
            digest = digest()
        if not digest:
            digest = file_sha1(p) if p.is_file() else _state_digest(codec)
        self.weights_id = make_weights_id(str(digest).replace("sha1:", ""), spec if not p.exists() else "")
        probe = self._embed(np.zeros(self.sample_rate, dtype=np.float32))
        self.dim = int(probe.shape[1])

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            z = self.model.latents(torch.from_numpy(wav).float()[None, None].to(self.device))
        z = z.detach().float().cpu().numpy() if hasattr(z, "detach") else np.asarray(z, dtype=np.float32)
        z = np.squeeze(z, axis=0) if z.ndim == 3 else z  # [D, T]
        if z.ndim != 2:
            raise MagnetEvalError(f"codec latents: expected [1, D, T] or [D, T], got shape {z.shape}")
        return z.T
