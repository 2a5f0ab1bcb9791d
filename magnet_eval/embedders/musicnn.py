"""musicnn (Pons & Serra, 2019) in PyTorch, with the real MTT/MSD weights read from the musicnn wheel.

The musicnn package ships TF1 checkpoints and needs TensorFlow + numpy<1.17, which cannot be
installed beside this stack. So the wheel is fetched (`python -m magnet_eval.weights
fetch-wheels`), its tensor bundle read with `tf_bundle` (pure numpy), converted once to a torch
state dict under `cache_dir()/weights/musicnn/`, and run by the PyTorch re-implementation below
(same layers, same order, same batch-norm epsilon 1e-3, TensorFlow's 'same' padding).

Input (as musicnn's extractor): 16 kHz mono, |STFT|^2 with n_fft 512, hop 256, periodic Hann,
centred frames with reflect padding (librosa's default when the models were trained), 96 Slaney
mel bands (librosa's filterbank), rounded to float16 as in training, then log10(10000 x + 1).

Clip handling: the log-mel is cut into consecutive, non-overlapping 187-frame patches (about
3 s); an incomplete last patch is dropped (musicnn's `batch_data`); a clip shorter than one
patch is repeat-padded to 187 frames (the `repeat-pad` of musicnn's training config). One
embedding / tag vector per patch.

Architecture (musicnn `build_musicnn`, 'MTT_musicnn' / 'MSD_musicnn'):
- front end: input batch norm; timbral filters 7x38 and 7x67 (204 maps each, valid over
  frequency, time padded 3+3) and temporal filters 128x1, 64x1, 32x1 (51 maps each, 'same'),
  each conv -> ReLU -> batch norm -> max over frequency; concatenated: 561 features per frame;
- mid end: three 7-frame convolutions over the 561 (then 64) features, 64 maps, ReLU, batch
  norm, the 2nd and 3rd with residual connections; dense connection: [561, 64, 64, 64] = 753;
- back end: max and mean over time (interleaved per feature, as TF's flatten of [753, 2]),
  batch norm (1506), dense 200 + ReLU + batch norm = the 'penultimate' features, dense 50 ->
  sigmoid = the tag posteriors.
"""

from __future__ import annotations

import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, MissingWeightsError
from ..files import atomic_write, load_torch
from ..paths import cache_dir
from .base import Embedder, bytes_sha1, load_strict, make_weights_id

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187
BN_EPS = 1e-3

MTT_LABELS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop",
    "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
    "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)
MSD_LABELS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock",
    "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
    "indie pop", "sad", "House", "happy",
)
MODELS = {"MTT_musicnn": MTT_LABELS, "MSD_musicnn": MSD_LABELS}
LAYERS = {"penultimate": 200, "max_pool": 753, "mean_pool": 753}

# TF variable scope -> our module name, in TF's creation order (see module docstring)
_CONVS = {"conv2d": "timbral74", "conv2d_1": "timbral77", "conv2d_2": "temporal128", "conv2d_3": "temporal64",
          "conv2d_4": "temporal32", "conv2d_5": "mid1", "conv2d_6": "mid2", "conv2d_7": "mid3"}
_BNS = {"batch_normalization": "bn_input", "batch_normalization_1": "timbral74_bn",
        "batch_normalization_2": "timbral77_bn", "batch_normalization_3": "temporal128_bn",
        "batch_normalization_4": "temporal64_bn", "batch_normalization_5": "temporal32_bn",
        "batch_normalization_6": "mid1_bn", "batch_normalization_7": "mid2_bn", "batch_normalization_8": "mid3_bn",
        "batch_normalization_9": "pool_bn", "batch_normalization_10": "dense_bn"}
_DENSES = {"dense": "dense", "dense_1": "output"}


def _torch():
    import torch

    return torch


def build_network(n_classes: int = 50, n_mels: int = N_MELS, front_filters: float = 1.6,
                  mid_filters: int = 64, dense_units: int = 200):
    """The musicnn network as a torch module (random weights until a state dict is loaded)."""
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    n_timbral = int(front_filters * 128)
    n_temporal = int(front_filters * 32)
    front_dim = 2 * n_timbral + 3 * n_temporal
    mid_dim = front_dim + 3 * mid_filters

    class MusicnnNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn_input = nn.BatchNorm2d(1, eps=BN_EPS)
            self.timbral74 = nn.Conv2d(1, n_timbral, (7, int(0.4 * n_mels)))
            self.timbral74_bn = nn.BatchNorm2d(n_timbral, eps=BN_EPS)
            self.timbral77 = nn.Conv2d(1, n_timbral, (7, int(0.7 * n_mels)))
            self.timbral77_bn = nn.BatchNorm2d(n_timbral, eps=BN_EPS)
            for k in (128, 64, 32):
                setattr(self, f"temporal{k}", nn.Conv2d(1, n_temporal, (k, 1)))
                setattr(self, f"temporal{k}_bn", nn.BatchNorm2d(n_temporal, eps=BN_EPS))
            self.mid1 = nn.Conv1d(front_dim, mid_filters, 7)
            self.mid1_bn = nn.BatchNorm1d(mid_filters, eps=BN_EPS)
            self.mid2 = nn.Conv1d(mid_filters, mid_filters, 7)
            self.mid2_bn = nn.BatchNorm1d(mid_filters, eps=BN_EPS)
            self.mid3 = nn.Conv1d(mid_filters, mid_filters, 7)
            self.mid3_bn = nn.BatchNorm1d(mid_filters, eps=BN_EPS)
            self.pool_bn = nn.BatchNorm1d(2 * mid_dim, eps=BN_EPS)
            self.dense = nn.Linear(2 * mid_dim, dense_units)
            self.dense_bn = nn.BatchNorm1d(dense_units, eps=BN_EPS)
            self.output = nn.Linear(dense_units, n_classes)

        @staticmethod
        def _freq_max(x):  # [B, C, T, F] -> [B, C, T]
            return x.max(dim=3).values

        def forward(self, spec):
            """spec [B, T, mels] -> dict(logits, penultimate, max_pool, mean_pool)."""
            x = self.bn_input(spec.unsqueeze(1))  # [B, 1, T, F]
            xt = F.pad(x, (0, 0, 3, 3))  # time padding for the 7-frame timbral filters
            feats = [self._freq_max(self.timbral74_bn(F.relu(self.timbral74(xt)))),
                     self._freq_max(self.timbral77_bn(F.relu(self.timbral77(xt))))]
            for k in (128, 64, 32):
                top = (k - 1) // 2  # TensorFlow 'same': the extra padding goes after
                xs = F.pad(x, (0, 0, top, k - 1 - top))
                conv, bn = getattr(self, f"temporal{k}"), getattr(self, f"temporal{k}_bn")
                feats.append(self._freq_max(bn(F.relu(conv(xs)))))
            front = torch.cat(feats, dim=1)  # [B, 561, T]
            m1 = self.mid1_bn(F.relu(self.mid1(F.pad(front, (3, 3)))))
            m2 = self.mid2_bn(F.relu(self.mid2(F.pad(m1, (3, 3))))) + m1
            m3 = self.mid3_bn(F.relu(self.mid3(F.pad(m2, (3, 3))))) + m2
            mid = torch.cat([front, m1, m2, m3], dim=1)  # [B, 753, T]
            max_pool = mid.max(dim=2).values
            mean_pool = mid.mean(dim=2)
            pooled = torch.stack([max_pool, mean_pool], dim=2).reshape(mid.shape[0], -1)  # TF flatten order
            penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
            logits = self.output(penultimate)
            return {"logits": logits, "penultimate": penultimate, "max_pool": max_pool, "mean_pool": mean_pool}

    return MusicnnNet()


def tf_to_state_dict(tf_vars: dict[str, np.ndarray]) -> dict:
    """Map musicnn's TF variables (conv2d/kernel, batch_normalization_3/moving_mean, ...) to our keys."""
    torch = _torch()
    sd = {}
    used = set()
    for scope, ours in _CONVS.items():
        k = tf_vars[f"{scope}/kernel"]  # [kh, kw, in, out]
        if ours.startswith("mid"):
            w = k[:, :, 0, :].transpose(2, 1, 0)  # conv over the (time, features) plane -> Conv1d [out, in, kh]
        else:
            w = k.transpose(3, 2, 0, 1)  # -> Conv2d [out, in, kh, kw]
        sd[f"{ours}.weight"] = torch.from_numpy(np.ascontiguousarray(w))
        sd[f"{ours}.bias"] = torch.from_numpy(tf_vars[f"{scope}/bias"].copy())
        used |= {f"{scope}/kernel", f"{scope}/bias"}
    for scope, ours in _BNS.items():
        for tf_name, t_name in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                                ("moving_variance", "running_var")):
            sd[f"{ours}.{t_name}"] = torch.from_numpy(tf_vars[f"{scope}/{tf_name}"].copy())
            used.add(f"{scope}/{tf_name}")
        sd[f"{ours}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    for scope, ours in _DENSES.items():
        sd[f"{ours}.weight"] = torch.from_numpy(np.ascontiguousarray(tf_vars[f"{scope}/kernel"].T))
        sd[f"{ours}.bias"] = torch.from_numpy(tf_vars[f"{scope}/bias"].copy())
        used |= {f"{scope}/kernel", f"{scope}/bias"}
    left = sorted(set(tf_vars) - used)
    if left:
        raise CheckpointError(f"musicnn checkpoint has variables this architecture does not use: {left[:10]}")
    return sd


def _is_optimizer_slot(name: str) -> bool:
    return "/Adam" in name or name.endswith("_power") or name == "global_step"


def read_tf_checkpoint(index: bytes, data: bytes) -> dict[str, np.ndarray]:
    """The model variables of a musicnn TF checkpoint (Adam slots and counters skipped)."""
    from .tf_bundle import read_bundle

    return read_bundle(index, [data], skip=_is_optimizer_slot)


def _bundle_bytes(model: str, weights: Path | None) -> tuple[bytes, bytes, str]:
    """(index, data, where) of one musicnn checkpoint: from the cached wheel, a wheel path or a folder."""
    member = f"musicnn/{model}/"
    if weights is None or weights.suffix == ".whl":
        if weights is None:
            from ..weights import wheel_path

            try:
                weights = wheel_path("musicnn")
            except MissingWeightsError as exc:
                raise MissingWeightsError(
                    f"musicnn weights ({member}.index + .data-00000-of-00001 inside the musicnn 0.1.0 wheel) "
                    f"are not available.\n{exc}") from exc
        if not weights.exists():
            raise MissingWeightsError(f"musicnn wheel {weights} does not exist")
        with zipfile.ZipFile(weights) as zf:
            try:
                return zf.read(member + ".index"), zf.read(member + ".data-00000-of-00001"), f"{weights}:{member}"
            except KeyError as exc:
                raise MissingWeightsError(f"{member} is not inside {weights}") from exc
    folder = weights
    if (folder / "musicnn" / model).is_dir():
        folder = folder / "musicnn" / model
    elif (folder / model).is_dir():
        folder = folder / model
    idx, dat = folder / ".index", folder / ".data-00000-of-00001"
    if not (idx.exists() and dat.exists()):
        raise MissingWeightsError(
            f"musicnn checkpoint files not found: expected {idx} and {dat} (the {model} folder of the musicnn wheel)")
    return idx.read_bytes(), dat.read_bytes(), str(folder)


def converted_dir() -> Path:
    return cache_dir() / "weights" / "musicnn"


def load_converted(model: str = "MTT_musicnn", weights: str | Path | None = None) -> tuple[dict, str, str]:
    """(torch state dict, sha1 of the TF files, source) — converting once into `converted_dir()`.

    `weights`: None (the cached musicnn wheel), a .whl, a checkpoint folder, or a converted .pt.
    """
    torch = _torch()
    if model not in MODELS:
        raise CheckpointError(f"unknown musicnn model {model!r}; choose one of {sorted(MODELS)}")
    path = Path(weights).expanduser() if weights else None
    if path is not None and path.suffix == ".pt":
        if not path.exists():
            raise MissingWeightsError(f"converted musicnn weights {path} do not exist")
        blob = load_torch(path)
        if not isinstance(blob, dict) or blob.get("model") != model:
            raise CheckpointError(f"{path} holds {blob.get('model')!r} weights, not {model!r}")
        return blob["state_dict"], blob["sha1"], str(path)
    index, data, where = _bundle_bytes(model, path)
    digest = bytes_sha1(index, data)
    target = converted_dir() / f"{model}-{digest[:16]}.pt"
    if target.exists():
        try:
            blob = load_torch(target)
            return blob["state_dict"], digest, where
        except Exception:  # a corrupt cache file (e.g. a killed write): convert again
            pass
    sd = tf_to_state_dict(read_tf_checkpoint(index, data))
    with atomic_write(target) as f:
        torch.save({"state_dict": sd, "sha1": digest, "model": model, "source": where,
                    "labels": list(MODELS[model])}, f)
    return sd, digest, where


_MEL_CACHE: dict[tuple, np.ndarray] = {}


def mel_filterbank() -> np.ndarray:
    """librosa's Slaney mel filterbank [96, 257] for 16 kHz / n_fft 512 (what musicnn was trained with)."""
    key = (SAMPLE_RATE, N_FFT, N_MELS)
    if key not in _MEL_CACHE:
        import librosa

        _MEL_CACHE[key] = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
    return _MEL_CACHE[key]


def log_mel(wav: np.ndarray) -> np.ndarray:
    """musicnn's input representation [frames, 96] of 16 kHz mono audio (see module docstring)."""
    torch = _torch()
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    if x.shape[-1] <= N_FFT // 2:  # reflect padding needs more samples than the pad width
        x = torch.nn.functional.pad(x, (0, N_FFT // 2 + 1 - x.shape[-1]))
    spec = torch.stft(x, N_FFT, hop_length=HOP, win_length=N_FFT, window=torch.hann_window(N_FFT),
                      center=True, pad_mode="reflect", return_complex=True)
    power = spec.abs().pow(2).numpy()  # [257, frames]
    mel = (mel_filterbank() @ power).T.astype(np.float16).astype(np.float32)
    return np.log10(10000.0 * mel + 1.0)


def patches(spec: np.ndarray, n_frames: int = PATCH_FRAMES) -> np.ndarray:
    """[n_patches, 187, 96]: consecutive patches, partial tail dropped, short input repeat-padded."""
    if spec.shape[0] < n_frames:
        reps = int(np.ceil(n_frames / max(spec.shape[0], 1)))
        spec = np.tile(spec, (reps, 1))[:n_frames]
    n = spec.shape[0] // n_frames
    return np.ascontiguousarray(spec[: n * n_frames].reshape(n, n_frames, spec.shape[1]))


class MusicnnEmbedder(Embedder):
    """musicnn features per 3 s patch (default: the 200-d 'penultimate' layer of MTT_musicnn)."""

    sample_rate = SAMPLE_RATE
    clip_handling = ("16 kHz log-mel cut into consecutive 187-frame (~3 s) patches, partial last patch dropped, "
                     "clips under 3 s repeat-padded; one frame per patch")
    min_seconds = 0.02
    batched = True
    # "2": fixed-shape forward passes (one patch per pass on CPU) so a clip's frames do not depend on the
    # embedding batch; values moved by ~1e-6 from version 1, so version-1 cache entries are not reused
    version = "2"

    def __init__(self, model: str = "MTT_musicnn", layer: str = "penultimate", device: str | None = None,
                 batch_size: int = 16, name: str | None = None) -> None:
        super().__init__(device)
        if model not in MODELS:
            raise CheckpointError(f"unknown musicnn model {model!r}; choose one of {sorted(MODELS)}")
        if layer not in LAYERS:
            raise CheckpointError(f"unknown musicnn layer {layer!r}; choose one of {sorted(LAYERS)}")
        self.model_name = model
        self.layer = layer
        self.dim = LAYERS[layer]
        self.batch_size = int(batch_size)
        self.name = name or ("musicnn" if model == "MTT_musicnn" else "musicnn-msd")
        self.tag_names: tuple[str, ...] = MODELS[model]
        self.source = ""

    @property
    def labels(self) -> tuple[str, ...]:
        return self.tag_names

    def _load(self, weights: Path | None) -> None:
        sd, digest, where = load_converted(self.model_name, weights)
        net = build_network(n_classes=len(self.tag_names))
        load_strict(net, sd, f"musicnn weights from {where} do not fit the architecture")
        self.model = net.to(self.device).eval()
        self.source = where
        self.weights_path = Path(where.split(":musicnn/")[0]) if ":musicnn/" in where else Path(where)
        self.weights_id = make_weights_id(digest, self.model_name, self.layer)

    def _forward(self, wav: np.ndarray) -> dict:
        x = patches(log_mel(wav))
        got = self._forward_patches(x)
        self._remember_logits(x, got["logits"])
        return got

    def _forward_patches(self, batch: np.ndarray) -> dict:
        torch = _torch()
        outs: dict[str, list] = {}
        with torch.inference_mode():
            # fixed-shape passes (the last one zero-padded), so a patch's frames never depend on which other
            # patches or clips share its pass (float rounding of the kernels varies with the batch shape);
            # on CPU one patch per pass is as fast per patch as larger passes, on GPU `batch_size` patches
            chunk = self.batch_size if str(self.device).startswith("cuda") else 1
            for s in range(0, batch.shape[0], chunk):
                x = batch[s:s + chunk]
                real = x.shape[0]
                if real < chunk:
                    x = np.concatenate([x, np.zeros((chunk - real, *x.shape[1:]), x.dtype)])
                got = self.model(torch.from_numpy(np.ascontiguousarray(x)).to(self.device))
                for k, v in got.items():
                    outs.setdefault(k, []).append(v[:real].float().cpu())
        return {k: torch.cat(v).numpy() for k, v in outs.items()}

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        return self._forward(wav)[self.layer]

    def _embed_batch(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        """The patches of several clips through the network together (frames equal `_embed` of each clip)."""
        per_clip = [patches(log_mel(w)) for w in wavs]
        got = self._forward_patches(np.concatenate(per_clip, axis=0))
        bounds = np.cumsum([0] + [p.shape[0] for p in per_clip])
        for x, a, b in zip(per_clip, bounds[:-1], bounds[1:]):
            self._remember_logits(x, got["logits"][a:b])
        return [got[self.layer][a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    # The tag logits of the clips embedded last (by any instance: the KL classifier wraps its own), keyed
    # by the weights and the exact network input: an evaluation asks for a clip's embedding (FAD) and then
    # for its tags (KL), and one pass gives both. 50 floats a 3 s patch: a few MB for 4096 clips.
    RECENT_LOGITS = 4096
    _recent_logits: "OrderedDict[str, np.ndarray]" = OrderedDict()

    def _input_key(self, x: np.ndarray) -> str:
        return bytes_sha1(str(self.weights_id).split("/")[0].encode(), self.model_name.encode(), str(self.device).encode(),
                          np.ascontiguousarray(x).tobytes(), str((x.dtype, x.shape)).encode())

    def _remember_logits(self, x: np.ndarray, logits: np.ndarray) -> None:
        memo = MusicnnEmbedder._recent_logits
        key = self._input_key(x)
        memo[key] = np.array(logits)
        memo.move_to_end(key)
        while len(memo) > self.RECENT_LOGITS:
            memo.popitem(last=False)

    def tag_probs(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Tag posteriors [patches, 50] (independent sigmoids, musicnn's taggram), order = `tag_names`.

        A clip embedded shortly before (same network input) reuses that pass's logits: one patch per
        pass on CPU, fixed shapes on GPU, so they are the floats a pass of this clip alone gives.
        """
        self._require_loaded()
        x = patches(log_mel(self.prepare(audio, sr)))
        logits = self._recent_logits.get(self._input_key(x))
        if logits is None:
            logits = self._forward_patches(x)["logits"]
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)

    def top_tags(self, audio: np.ndarray, sr: int, k: int = 5) -> list[tuple[str, float]]:
        """The k most likely tags of a clip (posteriors averaged over patches)."""
        p = self.tag_probs(audio, sr).mean(axis=0)
        order = np.argsort(-p)[:k]
        return [(self.tag_names[i], float(p[i])) for i in order]


def convert_all(weights: str | Path | None = None) -> list[Path]:
    """Convert every musicnn model of the wheel now (what `python -m magnet_eval.embedders convert` runs)."""
    out = []
    for model in MODELS:
        _, digest, _ = load_converted(model, weights)
        out.append(converted_dir() / f"{model}-{digest[:16]}.pt")
    return out
