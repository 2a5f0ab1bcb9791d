"""All audio I/O of the toolkit: read, write, resample, downmix, loudness-normalise, validate.

One resampler for everything (torchaudio.functional.resample, windowed sinc, Hann window,
lowpass_filter_width 6, rolloff 0.99): metric values move with the resampling method
(audioldm_eval measured FD shifts of up to +-30), so it is fixed here and named in the README.
Files are read with soundfile (torchaudio's own loaders need TorchCodec, which is absent).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf

from .errors import AudioError
from .files import atomic_write

ArrayLike = Union[np.ndarray, "torch.Tensor"]  # noqa: F821

RESAMPLER = "torchaudio.functional.resample(sinc_interp_hann, lowpass_filter_width=6, rolloff=0.99)"


def _as_numpy(wav: ArrayLike) -> np.ndarray:
    if hasattr(wav, "detach"):
        wav = wav.detach().cpu().float().numpy()
    return np.asarray(wav, dtype=np.float32)


def check_finite(wav: ArrayLike, what: str) -> None:
    """Raise AudioError when `wav` is empty or holds NaN/inf samples (`what` names the source)."""
    arr = _as_numpy(wav)
    if arr.size == 0 or arr.shape[-1] == 0:
        raise AudioError(f"{what}: audio is empty (zero samples)")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.argwhere(bad.reshape(-1))[0][0])
        raise AudioError(f"{what}: audio holds {int(bad.sum())} NaN/inf samples (first at flat index {first})")


def to_mono(wav: ArrayLike) -> np.ndarray:
    """Average channels: [channels, samples] -> [samples]; a 1-D signal is returned unchanged."""
    arr = _as_numpy(wav)
    if arr.ndim == 1:
        return arr
    if arr.ndim != 2:
        raise AudioError(f"expected [channels, samples] or [samples], got shape {arr.shape}")
    return arr.mean(axis=0).astype(np.float32)


def resample(wav: ArrayLike, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along the last axis with the toolkit's one resampler; a no-op when rates match."""
    arr = _as_numpy(wav)
    if sr_in <= 0 or sr_out <= 0:
        raise AudioError(f"invalid sample rates {sr_in} -> {sr_out}")
    if sr_in == sr_out:
        return arr
    import torch
    import torchaudio.functional as AF

    g = math.gcd(int(sr_in), int(sr_out))
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(arr)), sr_in // g, sr_out // g,
                      lowpass_filter_width=6, rolloff=0.99, resampling_method="sinc_interp_hann")
    return out.numpy().astype(np.float32)


def wav_truncation(path: Union[str, Path]) -> str | None:
    """Why a RIFF/WAVE file is cut short, or None: its `data` chunk declares more bytes than the file holds.

    libsndfile silently clamps the frame count to what is there, so a half-copied wav would be read
    (and scored) as a shorter clip; the header's promise is compared with the file size instead.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        endian = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            cid, csize = chunk[:4], struct.unpack(endian + "I", chunk[4:8])[0]
            if cid == b"data":
                if csize in (0, 0xFFFFFFFF):  # streaming writers leave the size open
                    return None
                held = size - (pos + 8)
                if csize > held:
                    return f"header promises {csize} bytes of audio, the file holds {held} (truncated copy?)"
                return None
            pos += 8 + csize + (csize & 1)
    return "no audio data chunk before the end of the file (truncated?)"


def load_audio(path: Union[str, Path], sr: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read an audio file as float32: [samples] if mono else [channels, samples].

    A file at another rate than `sr` is resampled (never silently misread); corrupt, empty,
    zero-length and non-finite audio raise AudioError naming the file.
    """
    from .validate import readable_audio_file

    path = readable_audio_file(path)  # exists, a file (not a folder), readable, not 0 bytes
    try:
        truncated = wav_truncation(path)
        with sf.SoundFile(str(path)) as f:
            promised = f.frames
            data = f.read(dtype="float32", always_2d=True)
            file_sr = f.samplerate
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError on bad files
        raise AudioError(f"{path}: cannot decode audio ({exc})") from exc
    if truncated:
        raise AudioError(f"{path}: damaged wav: {truncated}")
    if data.shape[0] < promised:
        raise AudioError(f"{path}: damaged audio: the header promises {promised} frames, only {data.shape[0]} decode")
    wav = data.T  # [channels, samples]
    check_finite(wav, str(path))
    if mono:
        wav = to_mono(wav)
    if sr is not None and sr != file_sr:
        wav = resample(wav, file_sr, sr)
        file_sr = sr
    return np.ascontiguousarray(wav, dtype=np.float32), int(file_sr)


def save_audio(path: Union[str, Path], wav: ArrayLike, sr: int) -> Path:
    """Write 16-bit PCM wav ([samples] or [channels, samples]), clipping to [-1, 1]; atomic (temp + rename)."""
    path = Path(path)
    arr = _as_numpy(wav)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    check_finite(arr, f"audio to be written to {path}")
    arr = np.clip(arr, -1.0, 1.0)
    data = arr.T if arr.ndim == 2 else arr
    with atomic_write(path) as f:
        sf.write(f, data, int(sr), subtype="PCM_16", format="WAV")
    return path


def rms_db(wav: ArrayLike) -> float:
    arr = _as_numpy(wav)
    rms = float(np.sqrt(np.mean(np.square(arr, dtype=np.float64)))) if arr.size else 0.0
    return 20.0 * math.log10(max(rms, 1e-10))


def loudness_db(wav: ArrayLike, sr: int) -> float:
    """Integrated loudness (ITU-R BS.1770, LUFS) of a mono or [channels, samples] signal.

    Clips shorter than one 400 ms gating block fall back to plain RMS in dB.
    """
    arr = _as_numpy(wav)
    if arr.shape[-1] < int(0.4 * sr):
        return rms_db(arr)
    import torch
    import torchaudio.transforms as AT

    x = torch.from_numpy(np.ascontiguousarray(arr if arr.ndim == 2 else arr[None]))
    value = float(AT.Loudness(sr)(x).item())
    return value if math.isfinite(value) else rms_db(arr)


def loudness_normalize(wav: ArrayLike, sr: int, headroom_db: float = 14.0, energy_floor: float = 2e-3) -> np.ndarray:
    """Scale to -headroom_db LUFS as audiocraft does before its metrics (loudness strategy, 14 dB).

    Same steps as audiocraft's `normalize_loudness`: near-silent clips (RMS below
    `energy_floor`) are returned unchanged instead of amplifying noise; otherwise the gain
    brings the BS.1770 loudness to -headroom_db. The result is clipped to [-1, 1].
    """
    arr = _as_numpy(wav)
    check_finite(arr, "audio to normalise")
    rms = float(np.sqrt(np.mean(np.square(arr, dtype=np.float64))))
    if rms < energy_floor:
        return arr.copy()
    gain = 10.0 ** ((-headroom_db - loudness_db(arr, sr)) / 20.0)
    return np.clip(arr * gain, -1.0, 1.0).astype(np.float32)


def fit_length(wav: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad the last axis to exactly `n_samples`."""
    cur = wav.shape[-1]
    if cur >= n_samples:
        return wav[..., :n_samples]
    pad = [(0, 0)] * (wav.ndim - 1) + [(0, n_samples - cur)]
    return np.pad(wav, pad)
