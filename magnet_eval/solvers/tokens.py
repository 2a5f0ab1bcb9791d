"""Training inputs computed once and cached on disk: codec tokens of each clip, text-encoder outputs.

Language-model training never runs the codec or the frozen text encoder in its loop. Tokens are
stored under `cache_dir()/tokens/<codec hash>/<audio hash>.npy`, keyed by a hash of the codec
checkpoint (so retraining the codec invalidates them) and a hash of the audio file's bytes (so an
edited file is re-encoded, a moved one is not). Text-encoder outputs are stored under
`cache_dir()/conditions/<encoder key>/<text hash>.pt` before the learned projection, which is the
part that trains.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import AudioError, ManifestError
from ..files import atomic_write, load_torch
from ..manifest import Manifest
from ..paths import cache_dir
from ..progress import track, warn
from ..threads import torch_threads


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def state_dict_sha256(state: dict) -> str:
    """Hex SHA-256 of a state dict's names, shapes and values (for codecs held in memory)."""
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(repr(v).encode())
    return h.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def token_dir(codec_key: str) -> Path:
    return cache_dir() / "tokens" / codec_key[:20]


CONDITIONS_LAYOUT = "v2"  # v2: one caption per encoder pass on one thread (v1 files, batched, are not read)


def condition_dir(encoder_key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in encoder_key)
    return cache_dir() / "conditions" / safe / CONDITIONS_LAYOUT


def _save_atomic_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_write(path) as f:  # a unique temporary name: parallel trainings share the cache
        np.save(f, arr)


def encode_clips(
    paths: Sequence[str | Path],
    encode: Callable[[torch.Tensor], torch.Tensor],
    sample_rate: int,
    codec_key: str,
    description: str = "encoding clips to tokens",
) -> list[torch.Tensor]:
    """Codec tokens [K, T] (long) of each audio file, from the cache or by running `encode` once.

    encode: takes a mono waveform [1, 1, N] at `sample_rate` and returns codes [1, K, T].
    """
    from ..audio import load_audio

    folder = token_dir(codec_key)
    out: list[torch.Tensor] = []
    n_new = 0
    for p in track(list(paths), description):
        key = file_sha256(p)
        cached = folder / f"{key[:40]}.npy"
        if cached.exists():
            try:
                out.append(torch.from_numpy(np.load(cached).astype(np.int64)))
                continue
            except (ValueError, OSError, EOFError):
                warn(f"token cache file {cached} is unreadable; re-encoding {p}")
        wav, _ = load_audio(p, sr=sample_rate, mono=True)
        with torch.no_grad():
            codes = encode(torch.from_numpy(wav).float()[None, None])
        codes = codes[0].to("cpu", torch.int64)
        if codes.numel() == 0:
            raise AudioError(f"{p}: too short to give a single codec frame")
        _save_atomic_npy(cached, codes.numpy().astype(np.int16 if codes.max() < 32767 else np.int32))
        out.append(codes)
        n_new += 1
    return out


def encode_texts(
    texts: Sequence[str],
    encode_raw: Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]],
    encoder_key: str,
    description: str = "encoding captions",
) -> list[torch.Tensor]:
    """Frozen text-encoder outputs [S_i, D] (float32, padding removed) per text, cached on disk.

    encode_raw: texts -> (embeddings [B, S, D], mask [B, S]); only the valid positions are stored.
    Each caption is encoded alone, on one CPU thread: its stored condition then depends on its text
    only, not on which other captions happened to be missing from the cache at the time (padding to
    the longest caption of a batch and the kernels' blocking move the floats, and any changed input
    sends a training run elsewhere: docs/determinism.md).
    """
    folder = condition_dir(encoder_key)
    folder.mkdir(parents=True, exist_ok=True)
    result: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for text in dict.fromkeys(texts):
        path = folder / f"{text_sha256(text)[:40]}.pt"
        if path.exists():
            try:
                result[text] = load_torch(path)["emb"].float()
                continue
            except Exception:
                warn(f"condition cache file {path} is unreadable; re-encoding")
        missing.append(text)
    with torch_threads(1):
        for text in track(missing, description):
            with torch.no_grad():
                emb, mask = encode_raw([text])
            valid = mask[0].bool().cpu()
            e = emb[0].detach().cpu().float()[valid]
            if e.shape[0] == 0:  # an empty caption: keep one zero row so shapes stay valid
                e = torch.zeros(1, emb.shape[-1])
            with atomic_write(folder / f"{text_sha256(text)[:40]}.pt") as f:
                torch.save({"emb": e.half(), "text": text}, f)
            result[text] = e.half().float()
    return [result[t] for t in texts]


@dataclass
class TokenSet:
    """Token sequences (and optional raw text conditions) of a set of clips, held in memory."""

    ids: list[str]
    codes: list[torch.Tensor]  # [K, T_i] long
    texts: list[str]
    conditions: Optional[list[torch.Tensor]] = None  # [S_i, D] raw encoder outputs

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def n_q(self) -> int:
        return int(self.codes[0].shape[0])

    def subset(self, indices: Sequence[int]) -> "TokenSet":
        return TokenSet(
            [self.ids[i] for i in indices],
            [self.codes[i] for i in indices],
            [self.texts[i] for i in indices],
            None if self.conditions is None else [self.conditions[i] for i in indices],
        )

    def crop(self, indices: Sequence[int], n_frames: int, generator: Optional[torch.Generator] = None,
             random_offset: bool = True) -> torch.Tensor:
        """Codes [B, K, n] of the given items: windows of n frames (random offsets, or from the start).

        n = min(n_frames, shortest item), so a batch never needs padding.
        """
        seqs = [self.codes[i] for i in indices]
        n = min([n_frames] + [s.shape[-1] for s in seqs])
        out = []
        for s in seqs:
            room = s.shape[-1] - n
            off = int(torch.randint(0, room + 1, (1,), generator=generator).item()) if (random_offset and room > 0) else 0
            out.append(s[:, off : off + n])
        return torch.stack(out)

    def condition_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw conditions padded to the longest: (emb [B, S, D], mask [B, S] bool)."""
        if self.conditions is None:
            raise ValueError("this token set has no text conditions")
        conds = [self.conditions[i] for i in indices]
        S = max(c.shape[0] for c in conds)
        D = conds[0].shape[1]
        emb = torch.zeros(len(conds), S, D)
        mask = torch.zeros(len(conds), S, dtype=torch.bool)
        for j, c in enumerate(conds):
            emb[j, : c.shape[0]] = c
            mask[j, : c.shape[0]] = True
        return emb, mask


def split_entries(manifest: Manifest, split: str, fallback_fraction: float = 0.1) -> Manifest:
    """The entries of one split (labels['split']); without split labels, a deterministic id-hash split."""
    labelled = [e for e in manifest if "split" in e.labels]
    if labelled:
        wanted = {"train": {"train"}, "valid": {"valid", "validation", "val"}, "test": {"test"}}.get(split, {split})
        return Manifest([e for e in manifest if e.labels.get("split") in wanted])

    def bucket(e) -> float:
        return int(hashlib.sha256(e.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    if split == "train":
        return Manifest([e for e in manifest if bucket(e) >= fallback_fraction])
    return Manifest([e for e in manifest if bucket(e) < fallback_fraction])


def training_entries(manifest: Manifest) -> tuple[Manifest, Manifest]:
    """(train, valid) entries with audio; ManifestError when there is nothing to train on."""
    with_audio = manifest.with_audio()
    if len(with_audio) == 0:
        raise ManifestError(f"{manifest.source or 'the manifest'} has no entries whose audio exists")
    train = split_entries(with_audio, "train")
    valid = split_entries(with_audio, "valid")
    if len(train) == 0:
        raise ManifestError("no training entries (labels['split'] == 'train') with audio in the manifest")
    if len(valid) == 0:
        warn("no validation entries (labels['split'] == 'valid'); validating on up to 16 training clips")
        valid = Manifest(train.entries[:16])
    return train, valid
