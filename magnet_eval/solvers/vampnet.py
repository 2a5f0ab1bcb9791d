"""The VampNet objective on the shared training loop: condition-free masked token modelling, coarse or c2f.

Per example a progress r is drawn and each token of the predicted codebooks is hidden with
probability cos(r pi / 2) (the paper's variable masking schedule, `models.vampnet.training_mask`);
the loss is the cross-entropy (label smoothing 0.1) over the hidden tokens only. The reference
draws r from a Sobol sequence; here the batch's r are stratified (one per 1/B slice of [0, 1),
jittered from the step's generator), which gives the same even coverage of the schedule per
batch. The c2f model (`--part c2f`) sees the coarse codebooks always unmasked and is trained on
short chunks (its chunk duration, 3 s as the reference); there is no text: the model is condition-free.

Validation is deterministic (windows from the start of each clip, fixed masks at hidden
fractions 0.3 / 0.6 / 0.9): masked-token accuracy and loss per predicted codebook and overall,
beside the accuracy of always predicting the codebook's most frequent training token (the
unigram floor, `valid_unigram_accuracy`, as the MAGNeT solver logs it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from ..errors import InvalidOptionError, MagnetEvalError
from ..manifest import Manifest
from ..models.vampnet import VampNetModel, masked_logits_loss, preset_configs, training_mask
from .interface import Solver, StepOutput, StepRandom
from .magnet import StageTally
from .text_lm import ids_hash, most_frequent_tokens
from .tokens import TokenSet

PARTS = ("coarse", "c2f")


@dataclass(frozen=True)
class VampNetBudget:
    """Default steps / batch / learning rate of `train vampnet` (tiny models: about 10 minutes a part on one CPU
    core; at 200 steps both parts were still at the most-frequent-token floor)."""

    steps: int = 1200
    batch_size: int = 8
    lr: float = 2e-3


TINY_VAMPNET = VampNetBudget()
EXPORT_NAME = "vampnet_{part}.pt"
LABEL_SMOOTHING = 0.1  # conf/vampnet.yml


def stratified_progress(batch: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """One schedule progress r per example, one in each 1/B slice of [0, 1) (a low-discrepancy draw like Sobol's)."""
    return (torch.arange(batch, dtype=torch.float32) + torch.rand(batch, generator=generator)) / batch


def progress_for_fraction(fraction: float) -> float:
    """The r at which the schedule hides `fraction` of the tokens: cos(r pi / 2) = fraction."""
    return math.acos(fraction) * 2.0 / math.pi


class VampNetSolver(Solver):
    """Trains one VampNet model (coarse, or c2f given the coarse codebooks) on cached codec tokens."""

    name = "vampnet"
    token_unit = "tok"

    def __init__(self, model: VampNetModel, train: TokenSet, valid: TokenSet, segment_frames: int,
                 export_fn: Callable[[torch.nn.Module, Path], Path], part: str = "coarse",
                 valid_fractions: tuple[float, ...] = (0.3, 0.6, 0.9), valid_batch: int = 16,
                 extra_config: Optional[dict] = None):
        if part not in PARTS:
            raise InvalidOptionError(f"--part must be one of {', '.join(PARTS)}, got {part!r}")
        cfg = model.cfg
        if train.n_q < cfg.n_codebooks:
            raise MagnetEvalError(f"the codec gives {train.n_q} codebooks, the VampNet {part} model needs {cfg.n_codebooks}")
        self.model = model
        self.part = part
        self.name = f"vampnet-{part}"
        self.train_set, self.valid_set = train, valid
        self.segment_frames = int(segment_frames)
        self.export_fn = export_fn
        self.valid_fractions = tuple(valid_fractions)
        self.valid_batch = valid_batch
        self.extra_config = extra_config or {}
        self._unigram = most_frequent_tokens(train, cfg.vocab_size)[: cfg.n_codebooks]

    def config(self) -> dict:
        return {"solver": self.name, "segment_frames": self.segment_frames, "model": self.model.cfg.to_dict(),
                "label_smoothing": LABEL_SMOOTHING, "n_train": len(self.train_set),
                "train_ids": ids_hash(self.train_set.ids), **self.extra_config}

    def n_train_items(self) -> int:
        return len(self.train_set)

    def _codes(self, tokens: TokenSet, indices, generator: Optional[torch.Generator], random_offset: bool,
               device) -> torch.Tensor:
        K = self.model.cfg.n_codebooks
        return tokens.crop(indices, self.segment_frames, generator, random_offset=random_offset)[:, :K].to(device)

    def train_loss(self, model, indices, rng: StepRandom, device) -> StepOutput:
        cfg = self.model.cfg
        codes = self._codes(self.train_set, indices, rng.local, True, device)
        B, K, T = codes.shape
        r = stratified_progress(B, rng.local)
        masked = training_mask(codes, r, cfg.n_conditioning_codebooks, generator=rng.local)
        logits = model(codes.masked_fill(masked, cfg.mask_token))
        loss, correct = masked_logits_loss(logits, codes, masked, cfg.n_conditioning_codebooks, LABEL_SMOOTHING)
        n_pred = masked[:, cfg.n_conditioning_codebooks:]
        metrics = {"mask_rate": float(n_pred.float().mean()),
                   "train_masked_accuracy": float(correct.float().mean()) if correct.numel() else float("nan")}
        return StepOutput(loss, B * K * T, metrics)

    @torch.no_grad()
    def validate(self, model, device) -> dict[str, float]:
        cfg = self.model.cfg
        C = cfg.n_conditioning_codebooks
        vs = self.valid_set
        idx = list(range(len(vs)))
        tally = StageTally()  # "stage" = predicted codebook here
        for f_i, fraction in enumerate(self.valid_fractions):
            g = torch.Generator().manual_seed(7919 + f_i)
            for start in range(0, len(idx), self.valid_batch):
                chunk = idx[start: start + self.valid_batch]
                codes = self._codes(vs, chunk, None, False, device)
                r = torch.full((codes.shape[0],), progress_for_fraction(fraction))
                masked = training_mask(codes, r, C, generator=g)
                logits = model(codes.masked_fill(masked, cfg.mask_token)).float()  # [B, P, T, V]
                for p in range(cfg.n_predict):
                    k = C + p
                    sel = masked[:, k]
                    n = int(sel.sum())
                    if n == 0:
                        continue
                    lg, target = logits[:, p][sel], codes[:, k][sel]
                    loss = F.cross_entropy(lg, target)
                    hits = int((target == self._unigram[k].to(device)).sum())
                    tally.add(k, loss, lg.argmax(-1) == target, hits, n)
        out = tally.metrics()
        out["valid_chance_accuracy"] = 1.0 / cfg.vocab_size
        return out

    def export(self, model, folder: Path) -> Path:
        return self.export_fn(model, folder)


def train_vampnet(
    part: str,
    data: Path | str | Manifest,
    out_dir: Path | str,
    codec: Path | str,
    preset: str = "vampnet-tiny",
    steps: int = TINY_VAMPNET.steps,
    batch_size: int = TINY_VAMPNET.batch_size,
    lr: float = TINY_VAMPNET.lr,
    segment_seconds: Optional[float] = None,
    seed: int = 0,
    train_overrides: Optional[dict] = None,
    restart_stale: bool = False,
) -> Path:
    """Train the `part` ('coarse' or 'c2f') model of a VampNet preset on the codec's tokens of the manifest's
    clips; returns OUT/vampnet_{part}.pt (`vampnet_weights.save_vampnet_part`). A finished run with the same
    recipe is reused. segment_seconds None = the part's chunk duration (coarse 10 s, c2f 3 s in the presets).
    """
    from ..models.vampnet_weights import save_vampnet_part
    from ..progress import info
    from .recipes import _codec_module, _fit_recipe, _manifest, _reuse, _train_config, codec_checkpoint, prepare_tokens
    from .tokens import file_sha256

    if part not in PARTS:
        raise InvalidOptionError(f"--part must be one of {', '.join(PARTS)}, got {part!r}")
    out = Path(out_dir)
    codec_path = codec_checkpoint(codec)
    manifest, data_hash = _manifest(data)
    codec_hash = file_sha256(codec_path)
    codec_model = _codec_module().load_codec(str(codec_path), device="cpu")
    coarse_cfg, c2f_cfg = preset_configs(preset, codec_model)
    cfg = coarse_cfg if part == "coarse" else c2f_cfg
    seconds = float(segment_seconds) if segment_seconds else float(cfg.chunk_duration)
    tc = _train_config(dict(steps=steps, batch_size=batch_size, lr=lr, weight_decay=0.01, beta1=0.9, beta2=0.95,
                            warmup_steps=max(1, min(200, steps // 10)), seed=seed), train_overrides)
    recipe = {"kind": f"vampnet-{part}", "preset": preset, "data": data_hash, "codec": codec_hash,
              "segment_seconds": seconds, "model": cfg.to_dict(),
              "train": {k: v for k, v in asdict(tc).items() if k not in ("checkpoint_every", "log_every", "valid_every", "device")}}
    artifact = EXPORT_NAME.format(part=part)
    hit = _reuse(out, recipe, steps, artifact)
    if hit is not None:
        info(f"vampnet {part}: reusing {hit} (same recipe, already trained)")
        return hit
    train_set, valid_set = prepare_tokens(manifest, codec_model, codec_hash, None, 0)
    from ..models.vampnet import codec_codebooks

    torch.manual_seed(seed)
    model = VampNetModel(cfg)
    model.embedding.set_codebooks(codec_codebooks(codec_model))
    segment_frames = max(1, int(round(seconds * cfg.frame_rate)))

    def export(m: torch.nn.Module, folder: Path) -> Path:
        return save_vampnet_part(m, folder / artifact, str(codec_path.resolve()), part)

    solver = VampNetSolver(model, train_set, valid_set, segment_frames, export, part=part,
                           extra_config={"preset": preset, "data": data_hash, "codec": codec_hash})
    intro = (f"vampnet {part} ({preset}): {model.num_params() / 1e6:.2f}M parameters, {len(train_set)} training clips, "
             f"{len(valid_set)} validation clips, crops of {segment_frames} frames, no text condition")

    def summary(m: dict[str, Any]) -> str:
        return (f"vampnet {part}: validation masked-token accuracy {m.get('valid_accuracy', float('nan')):.2g} "
                f"(unigram floor {m.get('valid_unigram_accuracy', float('nan')):.2g}, "
                f"chance {m.get('valid_chance_accuracy', float('nan')):.5f})")

    return _fit_recipe(out, solver, tc, recipe, artifact, restart_stale=restart_stale, summary=summary, intro=intro)
