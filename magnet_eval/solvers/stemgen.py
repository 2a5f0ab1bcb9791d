"""The StemGen objective on the shared training loop: (context, target, instrument) token triples, one level per step.

Data: every (clip, stem) pair of a stem corpus (`magnet_eval.stems`) is encoded once with the
codec, twice: the context (the sum of the clip's other stems) and the target stem; silence is
encoded once so a sample's context can be replaced by real silence (probability
`silent_context_prob`: StemGen also starts pieces from nothing). The shared sampler
(`base.fit`) draws pair indices, so every clip and every stem is trained on; each sample gets a
random window of `segment_frames` frames, the same for context and target.

Objective (`StemGenLM.training_inputs`): one codebook level k per step (drawn on the shared
RNG, the same on every rank), levels < k given, level k masked at a cosine rate, levels > k
masked, context and instrument dropped independently for multi-source guidance; cross-entropy
on the masked tokens of level k. Validation is deterministic (window at 0, fixed masks per
(level, rate), nothing dropped) and reports masked-token accuracy next to the most-frequent-token
floor of each level.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..errors import AudioError, ManifestError
from ..progress import track
from ..stems import INSTRUMENTS, StemTrack, instrument_index, make_example
from .base import Solver, StepOutput, StepRandom
from .magnet import StageTally, magnet_loss, masked_stage_inputs
from .masking import choose_stage, sample_masks


@dataclass
class StemTokenSet:
    """Codec tokens of every (clip, stem) pair: context [K, F], target [K, F], instrument id; plus silence."""

    ids: list[str]  # "{clip}/{stem}"
    contexts: list[torch.Tensor]
    targets: list[torch.Tensor]
    instruments: list[int]
    silence: torch.Tensor  # [K, F_max]: the codec's tokens of digital silence

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_q(self) -> int:
        return int(self.targets[0].shape[0])

    def batch(self, indices: Sequence[int], frames: int, generator: Optional[torch.Generator] = None,
              silent_context_prob: float = 0.0, random_offset: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(context [B, K, frames], target [B, K, frames], instrument [B]); windows shorter than `frames`
        are padded by repeating the clip (tokens have no silence id)."""
        ctxs, tgts = [], []
        for i in indices:
            tgt, ctx = self.targets[i], self.contexts[i]
            F_ = tgt.shape[-1]
            start = 0
            if random_offset and F_ > frames:
                start = int(torch.randint(0, F_ - frames + 1, (1,), generator=generator))
            silent = silent_context_prob > 0 and float(torch.rand(1, generator=generator)) < silent_context_prob
            idx = (torch.arange(frames) + start) % F_
            tgts.append(tgt[:, idx])
            src = self.silence if silent else ctx
            ctxs.append(src[:, idx % src.shape[-1]])
        return torch.stack(ctxs), torch.stack(tgts), torch.tensor([self.instruments[i] for i in indices])


def encode_stem_tokens(tracks: Sequence[StemTrack], codec: Any, vocabulary: Sequence[str] = INSTRUMENTS,
                       device: str | torch.device = "cpu", description: str = "encoding stems to tokens"
                       ) -> StemTokenSet:
    """Encode the context and the target of every (clip, stem) pair, and silence, with `codec` (no grad)."""
    from ..audio import fit_length, load_audio

    sr = int(codec.sample_rate)

    def enc(wav: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            codes = codec.encode(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None, None].to(device))
        return codes[0].to("cpu", torch.int64)

    ids, ctxs, tgts, inst = [], [], [], []
    longest = 0
    for t in track(list(tracks), description):
        stems = {k: load_audio(p, sr=sr)[0] for k, p in sorted(t.stems.items())}
        n = max(v.shape[-1] for v in stems.values())
        longest = max(longest, n)
        stems = {k: fit_length(v, n) for k, v in stems.items()}
        for key in stems:
            context, target = make_example(stems, key)
            tgt = enc(target)
            if tgt.shape[-1] == 0:
                raise AudioError(f"{t.stems[key]}: too short to give a single codec frame")
            ids.append(f"{t.id}/{key}")
            ctxs.append(enc(context))
            tgts.append(tgt)
            inst.append(instrument_index(t.classes[key], vocabulary))
    if not ids:
        raise ManifestError("no (clip, stem) pair to train on")
    return StemTokenSet(ids, ctxs, tgts, inst, enc(np.zeros(longest, dtype=np.float32)))


class StemGenSolver(Solver):
    """Trains a `StemGenLM` on a `StemTokenSet` with the shared loop (`base.fit`)."""

    name = "stemgen"
    find_unused_parameters = True  # only level k's head gets a gradient

    def __init__(self, lm: torch.nn.Module, train: StemTokenSet, valid: StemTokenSet, segment_frames: int,
                 p_drop_context: float = 0.2, p_drop_instrument: float = 0.2, silent_context_prob: float = 0.1,
                 valid_rates: tuple[float, ...] = (0.3, 0.6, 0.9), extra_config: Optional[dict] = None):
        self.model = lm
        self.train_set, self.valid_set = train, valid
        self.segment_frames = int(segment_frames)
        self.p_drop_context, self.p_drop_instrument = float(p_drop_context), float(p_drop_instrument)
        self.silent_context_prob = float(silent_context_prob)
        self.valid_rates = valid_rates
        self.extra_config = extra_config or {}
        card = int(lm.card)
        allt = torch.cat([t.reshape(t.shape[0], -1) for t in train.targets], dim=1)
        self._unigram = torch.stack([torch.bincount(allt[k], minlength=card).argmax() for k in range(allt.shape[0])])

    def config(self) -> dict:
        ids = hashlib.sha256("\n".join(self.train_set.ids).encode()).hexdigest()[:16]
        return {"solver": self.name, "segment_frames": self.segment_frames, "p_drop_context": self.p_drop_context,
                "p_drop_instrument": self.p_drop_instrument, "silent_context_prob": self.silent_context_prob,
                "n_train": len(self.train_set), "train_ids": ids, **self.extra_config}

    def n_train_items(self) -> int:
        return len(self.train_set)

    @staticmethod
    def _bare(model: torch.nn.Module) -> torch.nn.Module:
        from .distributed import unwrap

        return unwrap(model)

    def train_loss(self, model, indices, rng: StepRandom, device) -> StepOutput:
        ctx, tgt, ins = self.train_set.batch(indices, self.segment_frames, rng.local, self.silent_context_prob)
        ctx, tgt, ins = ctx.to(device), tgt.to(device), ins.to(device)
        B, K, T = tgt.shape
        stage = choose_stage(K, rng.shared)
        c, x, i, k, mask = self._bare(model).training_inputs(ctx, tgt, ins, self.p_drop_context,
                                                             self.p_drop_instrument, rng.local, stage=stage)
        logits = model(c, x, i, codebooks=[k])
        loss, correct = magnet_loss(logits, tgt[:, k:k + 1], 0, mask)
        return StepOutput(loss, B * K * T, {"stage": float(k), "mask_rate": float(mask.float().mean()),
                                            "train_masked_accuracy": float(correct.float().mean())})

    @torch.no_grad()
    def validate(self, model, device) -> dict[str, float]:
        vs, n, bs = self.valid_set, len(self.valid_set), 16
        mask_id = int(self._bare(model).mask_id)
        tally = StageTally()
        for stage in range(vs.n_q):
            for r_i, rate in enumerate(self.valid_rates):
                g = torch.Generator().manual_seed(1000 * stage + r_i)
                for start in range(0, n, bs):
                    chunk = list(range(start, min(n, start + bs)))
                    ctx, tgt, ins = (t.to(device) for t in vs.batch(chunk, self.segment_frames, random_offset=False))
                    B, K, T = tgt.shape
                    t = torch.full((B,), float(torch.arccos(torch.tensor(rate)) * 2 / torch.pi))
                    mask, _ = sample_masks(B, T, 1, generator=g, device=device, t=t)
                    x = masked_stage_inputs(tgt, stage, mask, mask_id)
                    loss, correct = magnet_loss(model(ctx, x, ins, codebooks=[stage]), tgt[:, stage:stage + 1], 0, mask)
                    hits = int((tgt[:, stage][mask] == self._unigram[stage].to(device)).sum())
                    tally.add(stage, loss, correct, hits, int(mask.sum()))
        return tally.metrics()

    def export(self, model, folder: Path) -> Path:
        from ..models.stemgen import save_stemgen

        return save_stemgen(self._bare(model), Path(folder) / "stemgen.pt", extra={"solver": self.config()})


def train_stemgen(data: Path | str, out_dir: Path | str, codec: Path | str, preset: str = "stemgen-tiny",
                  steps: int = 300, batch_size: int = 16, lr: float = 2e-3, segment_seconds: float = 3.0,
                  seed: int = 0, p_drop_context: float = 0.2, p_drop_instrument: float = 0.2,
                  silent_context_prob: float = 0.1, train_overrides: Optional[dict] = None,
                  lm_overrides: Optional[dict] = None) -> Path:
    """Train StemGen on a stem corpus (manifest with stems, Slakh2100 or MUSDB18-HQ folder); returns the export.

    Resumable (rerun the same command) and torchrun-able, through `base.fit`. The export
    (OUT/stemgen.pt) names the codec it was trained with, so `magnet-eval stem --model OUT/stemgen.pt`
    finds it.
    """
    from dataclasses import replace

    from ..models.codec import load_codec
    from ..models.stemgen import StemGenLM, stemgen_preset_config
    from ..stems import read_stem_corpus, split_tracks
    from .base import TrainConfig, fit

    preset = preset if preset.startswith("stemgen-") else f"stemgen-{preset}"
    cod = load_codec(str(codec))
    train_tracks, valid_tracks = split_tracks(read_stem_corpus(data))
    cfg = replace(stemgen_preset_config(preset, cod), codec=str(Path(codec).expanduser().resolve()),
                  **(lm_overrides or {}))
    train = encode_stem_tokens(train_tracks, cod, cfg.instruments, description="encoding training stems")
    valid = encode_stem_tokens(valid_tracks, cod, cfg.instruments, description="encoding validation stems")
    frames = max(1, int(round(segment_seconds * float(cod.frame_rate))))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lm = StemGenLM(cfg)
    solver = StemGenSolver(lm, train, valid, frames, p_drop_context, p_drop_instrument, silent_context_prob,
                           extra_config={"preset": preset, "model": cfg.to_dict()})
    base = {"steps": int(steps), "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed),
            "warmup_steps": max(1, min(100, steps // 10)), "checkpoint_every": max(1, min(200, steps // 4)),
            "valid_every": max(1, min(200, steps // 4)), "log_every": max(1, min(10, steps // 20))}
    base.update({k: v for k, v in (train_overrides or {}).items() if v is not None})
    return fit(solver, TrainConfig(**base), out_dir).export
