"""Ready-made trainings: `train_codec`, `train_magnet`, `train_musicgen` and `train_tiny_suite`.

These are what the CLI (`magnet-eval train ...`) and the reproduce pipeline call. Each reads a
manifest (entries with `labels['split']` in train/valid/test; the rendered corpus has them),
prepares its inputs once (audio for the codec; cached codec tokens and text-encoder outputs for the
LMs), trains through `base.fit` (resumable), and returns the exported checkpoint path:

- codec  -> OUT/compression_state_dict.bin            (C2's `save_codec` format)
- magnet / musicgen -> OUT/state_dict.bin (audiocraft export, `checkpoints.save_lm`) with the codec
  copied beside it as OUT/compression_state_dict.bin, so `magnet-eval generate --model OUT` works.

A run whose recipe (data, codec, preset and every setting) matches a finished run in OUT is not
repeated: its checkpoint is returned at once (`recipe_done.json`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..errors import CheckpointError, MagnetEvalError
from ..manifest import Manifest, read_any
from ..progress import info, track, warn
from ..threads import torch_threads
from .base import fit
from .checkpoint import read_marker
from .interface import TrainConfig, TrainResult
from .tokens import TokenSet, encode_clips, encode_texts, file_sha256, training_entries

RECIPE_DONE = "recipe_done.json"
CODEC_FILE = "compression_state_dict.bin"
LM_FILE = "state_dict.bin"


# ---- the tiny preset: sized for ~5 minutes per model on 2 CPU cores ---------------------------------
@dataclass
class TinyBudget:
    """Default steps and batch sizes of the tiny preset (2 CPU cores, ~15 minutes for all three)."""

    codec_steps: int = 1500
    codec_batch: int = 8
    codec_segment_seconds: float = 0.5
    codec_lr: float = 2e-3
    codec_validations: int = 1  # validation passes (the last at the last step), as lm_validations below
    lm_steps: int = 300
    lm_batch: int = 16
    lm_segment_seconds: float = 2.0  # 2 s crops: a third less compute than 3 s, FAD not worse over 3 seeds (README)
    lm_lr: float = 2e-3
    # validation passes after the untrained model's (the last at the last step): they only feed the
    # training log (the training itself is the same bit for bit with more or fewer of them)
    lm_validations: int = 1


TINY = TinyBudget()


def _sha_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _reuse(out: Path, recipe: dict, steps: int, artifact: str) -> Optional[Path]:
    """The artifact of a finished run in `out` with the same recipe and at least `steps` steps, else None."""
    meta = read_marker(out / RECIPE_DONE)
    if meta is None:
        return None
    path = out / artifact
    if meta.get("recipe_hash") == _sha_json(recipe) and int(meta.get("steps", -1)) >= steps and path.exists():
        return path
    return None


def _mark_done(out: Path, recipe: dict, result: TrainResult, artifact: Path) -> None:
    (out / RECIPE_DONE).write_text(json.dumps({
        "recipe_hash": _sha_json(recipe), "recipe": recipe, "steps": result.step, "artifact": str(artifact),
        "metrics": result.metrics,
    }, indent=2, default=str))


def validation_passes(steps: int, passes: int) -> dict:
    """Train overrides for `passes` validation passes spread over `steps` (the last at the last step)."""
    return {"valid_every": max(1, steps // max(1, passes))}


def _train_config(base: dict, overrides: Optional[dict]) -> TrainConfig:
    """TrainConfig from a recipe's defaults, bookkeeping intervals scaled to the run, then user overrides."""
    steps = int(base["steps"])
    base.setdefault("checkpoint_every", max(1, min(200, steps // 4)))
    base.setdefault("valid_every", max(1, min(200, steps // 4)))
    base.setdefault("log_every", max(1, min(10, steps // 20)))
    base.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TrainConfig(**base)


def _fit_recipe(out: Path, solver: Any, tc: TrainConfig, recipe: dict, artifact_name: str, *, restart_stale: bool,
                summary: Callable[[dict], str], intro: Optional[str] = None) -> Path:
    """Train (resuming, or over a stale run set aside), mark the recipe done and log its summary line.

    Every recipe ends the same way; `summary` turns the last validation metrics into its line.
    """
    if restart_stale:
        _set_aside_stale(out, solver, tc)
    if intro:
        info(intro)
    result = fit(solver, tc, out)
    artifact = out / artifact_name
    if _is_main():
        _mark_done(out, recipe, result, artifact)
        if result.metrics:
            info(summary(result.metrics))
    return artifact


def _set_aside_stale(out: Path, solver: Any, tc: TrainConfig) -> None:
    """Move a run folder whose checkpoint has other settings to OUT.stale-<hash> (nothing is deleted)."""
    from .checkpoint import CHECKPOINT_NAME, load_checkpoint
    from .interface import config_hash

    ckpt = out / CHECKPOINT_NAME
    if not _is_main() or not ckpt.exists():
        return
    old = load_checkpoint(ckpt)["config_hash"]
    if old == config_hash(solver.config(), tc):
        return
    dest = out.with_name(f"{out.name}.stale-{old}")
    n = 1
    while dest.exists():
        dest = out.with_name(f"{out.name}.stale-{old}-{n}")
        n += 1
    out.rename(dest)
    warn(f"{out} held a run with other settings; moved it to {dest} and starting over")


def _is_main() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0


def _manifest(data: Path | str | Manifest) -> tuple[Manifest, str]:
    m = data if isinstance(data, Manifest) else read_any(data)
    ids_hash = hashlib.sha256("\n".join(f"{e.id}:{e.audio_path}:{e.labels.get('split')}:{e.caption}" for e in m).encode()).hexdigest()[:16]
    return m, ids_hash


def _codec_module():
    try:
        from ..models import codec as codec_mod
    except ImportError as exc:
        raise MagnetEvalError(f"the codec module (magnet_eval.models.codec) is not available: {exc}") from exc
    return codec_mod


# ---- codec ------------------------------------------------------------------------------------------
def train_codec(
    data: Path | str | Manifest,
    out_dir: Path | str,
    preset: str = "tiny",
    steps: int = TINY.codec_steps,
    batch_size: int = TINY.codec_batch,
    lr: float = TINY.codec_lr,
    segment_seconds: float = TINY.codec_segment_seconds,
    adversarial: bool = False,
    seed: int = 0,
    max_train_clips: Optional[int] = None,
    kmeans_iters: int = 10,
    loss_overrides: Optional[dict] = None,
    train_overrides: Optional[dict] = None,
    restart_stale: bool = False,
) -> Path:
    """Train the codec of `preset` on the manifest's training clips; returns OUT/compression_state_dict.bin."""
    from .codec import CodecLossConfig, CodecSolver

    out = Path(out_dir)
    manifest, ids_hash = _manifest(data)
    loss_cfg = CodecLossConfig(segment_seconds=segment_seconds, adversarial=adversarial, **(loss_overrides or {}))
    tc = _train_config(dict(steps=steps, batch_size=batch_size, lr=lr, beta1=0.5, beta2=0.9, weight_decay=0.0,
                            warmup_steps=max(1, min(100, steps // 20)), seed=seed), train_overrides)
    cm = _codec_module()
    arch_spec = _codec_arch(preset)
    try:  # a changed architecture is a new recipe
        arch: dict = asdict(cm.resolve_config(arch_spec))
    except MagnetEvalError:
        arch = {"spec": arch_spec}
    recipe = {"kind": "codec", "preset": preset, "arch": arch, "data": ids_hash, "loss": asdict(loss_cfg), "max_train_clips": max_train_clips,
              "kmeans_iters": kmeans_iters, "train": {k: v for k, v in asdict(tc).items() if k not in ("checkpoint_every", "log_every", "valid_every", "device")}}
    hit = _reuse(out, recipe, steps, CODEC_FILE)
    if hit is not None:
        info(f"codec: reusing {hit} (same recipe, already trained)")
        return hit
    torch.manual_seed(seed)
    codec = cm.load_codec(arch_spec, pretrained=False)
    _limit_kmeans(codec, kmeans_iters)
    sr = int(codec.sample_rate)
    train_m, valid_m = training_entries(manifest)
    if max_train_clips:
        train_m = Manifest(train_m.entries[:max_train_clips])
    train_audio = _load_audio([e.audio_path for e in train_m], sr, "loading training audio")
    valid_audio = _load_audio([e.audio_path for e in valid_m][: loss_cfg.n_valid], sr, "loading validation audio")

    def export(model: torch.nn.Module, folder: Path) -> Path:
        return Path(cm.save_codec(model, folder / CODEC_FILE))

    _prepare_codebooks(codec, train_audio, max(1, batch_size), int(round(segment_seconds * sr)), seed)
    solver = CodecSolver(codec, sr, train_audio, valid_audio, export, loss_cfg,
                         extra_config={"preset": preset, "arch": arch, "data": ids_hash, "max_train_clips": max_train_clips})

    def summary(m: dict) -> str:
        return (f"codec: SI-SNR {m.get('valid_si_snr_db', float('nan')):.2f} dB, mel distance "
                f"{m.get('valid_mel_distance', float('nan')):.3f} on {len(valid_audio)} validation clips")

    return _fit_recipe(out, solver, tc, recipe, CODEC_FILE, restart_stale=restart_stale, summary=summary)


def _codec_arch(preset: str) -> str:
    """The codec architecture trained for a preset: the tiny codec for 'tiny', EnCodec 32 kHz for the released
    scales; a codec name ('encodec_16khz', ...) is taken as is."""
    if preset == "tiny":
        return "tiny"
    if preset in ("small", "medium", "large"):
        return "encodec_32khz"
    return preset


def _limit_kmeans(codec: Any, iters: int) -> None:
    """Fewer k-means iterations for the codebooks' data-dependent init on the first batch.

    EnCodec runs 50 iterations over 2048 centroids per codebook; on 2 CPU cores that first step
    alone takes minutes, while 10 iterations give nearly the same start (dead codes are replaced
    during training anyway).
    """
    vq = getattr(getattr(codec, "quantizer", None), "vq", None)
    for layer in getattr(vq, "layers", []):
        cb = getattr(layer, "_codebook", None)
        if cb is not None and hasattr(cb, "kmeans_iters"):
            cb.kmeans_iters = int(iters)


def _prepare_codebooks(codec: Any, audio: list[np.ndarray], batch_size: int, segment: int, seed: int,
                       init_clips: int = 64) -> None:
    """Tune EnCodec's codebook bookkeeping to small CPU batches, then initialise the codebooks on many crops.

    - Dead-code threshold: EnCodec replaces a code whose EMA usage per step falls below 2, which
      suits batches of thousands of frames; with a few hundred frames per step and 2048 codes almost
      every code would be replaced at every step (the codebooks churn and the codec stops learning).
      The threshold becomes a quarter of the average usage per code, so a code is replaced when it
      has been idle for a while.
    - Initialisation: k-means on the first training batch would see only batch_size crops; here the
      (untrained) codec runs once in train mode on `init_clips` random crops, so each residual
      codebook is initialised by k-means on thousands of vectors.
    """
    vq = getattr(getattr(codec, "quantizer", None), "vq", None)
    layers = list(getattr(vq, "layers", []))
    frames_per_step = batch_size * max(1, segment // int(codec.hop_length))
    threshold = 0.25 * frames_per_step / max(int(codec.card), 1)
    for layer in layers:
        cb = getattr(layer, "_codebook", None)
        if cb is not None and hasattr(cb, "threshold_ema_dead_code"):
            cb.threshold_ema_dead_code = min(float(cb.threshold_ema_dead_code), threshold)
    if not layers or all(bool(getattr(l._codebook, "inited", True)) for l in layers):
        return
    g = torch.Generator().manual_seed(seed)
    crops = []
    for _ in range(init_clips):
        a = audio[int(torch.randint(0, len(audio), (1,), generator=g))]
        off = int(torch.randint(0, max(1, len(a) - segment + 1), (1,), generator=g))
        crops.append(torch.from_numpy(a[off: off + segment].astype(np.float32)))
    n = min(len(c) for c in crops)
    wav = torch.stack([c[:n] for c in crops])[:, None]
    was_training = codec.training
    codec.train()
    with torch.no_grad():
        codec(wav)  # k-means init of every residual codebook (and one EMA update)
    codec.train(was_training)


def _load_audio(paths: list, sr: int, description: str) -> list[np.ndarray]:
    from ..audio import load_audio

    return [load_audio(p, sr=sr, mono=True)[0].astype(np.float16) for p in track(paths, description)]


# ---- language models ----------------------------------------------------------------------------------
def _text_encoder(name: str, dim: int):
    from ..modules.conditioners import build_text_conditioner

    return build_text_conditioner(name, dim)


def prepare_tokens(manifest: Manifest, codec: Any, codec_key: str, text_encoder: Optional[str], lm_dim: int
                   ) -> tuple[TokenSet, TokenSet]:
    """(train, valid) token sets from the cache, encoding whatever is missing.

    codec_key identifies the codec weights (the checkpoint file's SHA-256) in the token cache.
    """
    codec.eval()
    train_m, valid_m = training_entries(manifest)

    def encode(wav: torch.Tensor) -> torch.Tensor:
        return codec.encode(wav)

    sets = []
    encoder = None
    for part, name in ((train_m, "train"), (valid_m, "valid")):
        codes = encode_clips([e.audio_path for e in part], encode, int(codec.sample_rate), codec_key,
                             description=f"tokens ({name})")
        conds = None
        if text_encoder:
            if encoder is None:
                encoder = _text_encoder(text_encoder, lm_dim)
            conds = encode_texts([e.caption for e in part], encoder.encode_raw, f"{text_encoder}",
                                 description=f"captions ({name})")
        sets.append(TokenSet([e.id for e in part], codes, [e.caption for e in part], conds))
    return sets[0], sets[1]


def codec_checkpoint(codec: Path | str) -> Path:
    """The codec file a trainer reads: the path itself, or CODEC_FILE inside a folder; a clear error if absent."""
    path = Path(codec)
    if path.is_dir():
        path = path / CODEC_FILE
    if not path.is_file():
        raise CheckpointError(f"no codec checkpoint at {codec}: train one with `magnet-eval train codec` first "
                              f"(it writes {CODEC_FILE})")
    return path


def train_lm(
    kind: str,
    data: Path | str | Manifest,
    out_dir: Path | str,
    codec: Path | str,
    preset: str = "tiny",
    steps: int = TINY.lm_steps,
    batch_size: int = TINY.lm_batch,
    lr: float = TINY.lm_lr,
    segment_seconds: float = TINY.lm_segment_seconds,
    cond_dropout: Optional[float] = None,
    seed: int = 0,
    ema: float = 0.0,
    text_encoder: Optional[str] = None,
    train_overrides: Optional[dict] = None,
    lm_overrides: Optional[dict] = None,
    restart_stale: bool = False,
    hybrid: bool = False,
) -> Path:
    """Train a `kind` ("magnet" or "musicgen") LM on the codec's tokens of the manifest's clips; returns OUT/state_dict.bin.

    restart_stale: a checkpoint in OUT from other settings is moved aside (OUT.stale-<hash>) and training
    starts over, instead of raising CheckpointError. hybrid: Hybrid-MAGNeT's objective (MAGNeT only).
    """
    from ..models.checkpoints import save_lm
    from ..models.build import build_lm
    from ..models.presets import preset_config

    out = Path(out_dir)
    codec_path = codec_checkpoint(codec)
    manifest, ids_hash = _manifest(data)
    codec_hash = file_sha256(codec_path)
    tc = _train_config(dict(steps=steps, batch_size=batch_size, lr=lr, weight_decay=0.1, beta1=0.9, beta2=0.95,
                            warmup_steps=max(1, min(200, steps // 10)), ema_decay=ema, seed=seed), train_overrides)
    dropout = 0.3 if cond_dropout is None else cond_dropout  # audiocraft text2music: 0.3 for both
    if hybrid and kind != "magnet":
        raise MagnetEvalError("--hybrid trains Hybrid-MAGNeT: it applies to `train magnet` only")
    cm = _codec_module()
    codec_model = cm.load_codec(str(codec_path), device="cpu")
    cfg = preset_config(f"{kind}-{preset}", codec=codec_model, text_encoder=text_encoder)
    cfg = replace(cfg, segment_duration=float(segment_seconds), codec=str(codec_path), **(lm_overrides or {}))
    recipe = {"kind": kind, "preset": preset, "data": ids_hash, "codec": codec_hash, "segment_seconds": segment_seconds,
              "cond_dropout": dropout, **({"hybrid": True} if hybrid else {}),
              "lm": {k: v for k, v in cfg.to_dict().items() if k != "codec"},
              "train": {k: v for k, v in asdict(tc).items() if k not in ("checkpoint_every", "log_every", "valid_every", "device")}}
    hit = _reuse(out, recipe, steps, LM_FILE)
    if hit is not None:
        info(f"{kind}: reusing {hit} (same recipe, already trained)")
        return hit

    enc_name = cfg.text_encoder if cfg.cross_attention else None
    train_set, valid_set = prepare_tokens(manifest, codec_model, codec_hash, enc_name, cfg.dim)
    if train_set.n_q < cfg.n_q:
        raise MagnetEvalError(f"the codec gives {train_set.n_q} codebooks, the LM needs {cfg.n_q}")
    segment_frames = int(round(segment_seconds * cfg.frame_rate))
    torch.manual_seed(seed)
    lm = build_lm(cfg)

    def export(model: torch.nn.Module, folder: Path) -> Path:
        path = save_lm(model, folder / LM_FILE, extra={"trained_steps_hint": steps})
        sibling = folder / CODEC_FILE
        if not sibling.exists() or file_sha256(sibling) != codec_hash:
            shutil.copyfile(codec_path, sibling)
        return path

    extra = {"preset": preset, "data": ids_hash, "codec": codec_hash, "lm": {k: v for k, v in cfg.to_dict().items() if k != "codec"}}
    if kind == "magnet":
        from .magnet import MagnetSolver

        solver = MagnetSolver(lm, train_set, valid_set, segment_frames, export, span_len=cfg.span_len,
                              cond_dropout=dropout, extra_config=extra, hybrid=hybrid)
    else:
        from .musicgen import MusicGenSolver

        solver = MusicGenSolver(lm, train_set, valid_set, segment_frames, export, cond_dropout=dropout, extra_config=extra)
    intro = (f"{kind}-{preset}: {lm.num_parameters / 1e6:.2f}M parameters, {len(train_set)} training clips, "
             f"{len(valid_set)} validation clips, crops of {segment_frames} frames")

    def summary(m: dict) -> str:
        return (f"{kind}: validation accuracy {m.get('valid_accuracy', float('nan')):.3f} "
                f"(most-frequent-token floor {m.get('valid_unigram_accuracy', float('nan')):.3f}, "
                f"chance {m.get('valid_chance_accuracy', float('nan')):.5f})")

    return _fit_recipe(out, solver, tc, recipe, LM_FILE, restart_stale=restart_stale, summary=summary, intro=intro)


def train_magnet(data: Path | str | Manifest, out_dir: Path | str, codec: Path | str, **options: Any) -> Path:
    """Train MAGNeT (span-masked, one codebook stage per step); `train_lm` lists the options."""
    return train_lm("magnet", data, out_dir, codec, **options)


def train_musicgen(data: Path | str | Manifest, out_dir: Path | str, codec: Path | str, **options: Any) -> Path:
    """Train the MusicGen baseline (delay pattern) on the same tokens; `train_lm` lists the options."""
    return train_lm("musicgen", data, out_dir, codec, **options)


def _train_tiny_lm(kind: str, corpus_manifest: str, out_dir: str, codec: str, budget: TinyBudget, seed: int,
                   threads: Optional[int], then: Optional[Callable[[str, Path], Any]] = None) -> str:
    """One tiny LM (run in a worker process by `train_tiny_suite`), then `then(kind, checkpoint)` in the same
    process and with the same threads; returns its state_dict.bin as a string."""
    if threads:
        torch.set_num_threads(int(threads))
    ckpt = train_lm(kind, corpus_manifest, out_dir, codec, "tiny", budget.lm_steps, budget.lm_batch, budget.lm_lr,
                    budget.lm_segment_seconds, seed=seed, restart_stale=True,
                    train_overrides=validation_passes(budget.lm_steps, budget.lm_validations))
    if then is not None:
        then(kind, Path(ckpt))
    return str(ckpt)


def train_tiny_codec(corpus_manifest: Path | str, out_dir: Path | str, budget: TinyBudget = TINY, seed: int = 0) -> Path:
    """The tiny preset's codec (one recipe, so every preset that shares a work folder reuses the same codec)."""
    return train_codec(corpus_manifest, out_dir, "tiny", budget.codec_steps, budget.codec_batch, budget.codec_lr,
                       budget.codec_segment_seconds, seed=seed, restart_stale=True,
                       train_overrides=validation_passes(budget.codec_steps, budget.codec_validations))


def train_tiny_suite(corpus_manifest: Path | str, out_dir: Path | str, budget: TinyBudget = TINY, seed: int = 0,
                     threads: Optional[int] = 1, parallel: Optional[bool] = None,
                     then: Optional[Callable[[str, Path], Any]] = None) -> dict[str, Path]:
    """Codec, then MAGNeT and MusicGen on its tokens, into OUT/{codec,magnet,musicgen}; finished parts are reused.

    threads: torch CPU threads per training (None leaves the setting alone). One thread by default:
    on shared cores these small models run several times faster without OpenMP contention.
    parallel: train MAGNeT and MusicGen at the same time in two worker processes (default: when the
    machine has at least 2 cores); both only depend on the codec, so on 2 cores this halves the LM
    stage. Each worker seeds itself as the sequential run does, so the checkpoints are the same.
    then: `then(kind, checkpoint)` right after each LM's training (or reuse), in its worker and with its
    threads (a picklable top-level function): `reproduce` generates there, so the LM that finishes first
    generates while the other still trains, and the result never depends on which one that is.
    Returns {'codec': .../compression_state_dict.bin, 'magnet': .../state_dict.bin, 'musicgen': ...}.
    """
    import os

    out = Path(out_dir)
    if parallel is None:
        parallel = (os.cpu_count() or 1) >= 2 and _is_main()
    # the codec trains alone: it gets the threads of both LM workers
    with torch_threads(int(threads) * (2 if parallel else 1) if threads else None):
        codec = train_tiny_codec(corpus_manifest, out / "codec", budget, seed)
        kinds = ("magnet", "musicgen")
        args = {k: (k, str(corpus_manifest), str(out / k), str(codec), budget, seed, threads, then) for k in kinds}
        if parallel:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            info("training MAGNeT and MusicGen side by side (two processes)")
            with ProcessPoolExecutor(len(kinds), mp_context=mp.get_context("spawn")) as pool:
                futures = {k: pool.submit(_train_tiny_lm, *args[k]) for k in kinds}
                lms = {k: Path(f.result()) for k, f in futures.items()}
        else:
            lms = {k: Path(_train_tiny_lm(*args[k])) for k in kinds}
    return {"codec": codec, **lms}
