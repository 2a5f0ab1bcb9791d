"""A `Generator`: LM + codec + text conditioner behind one `generate(prompts, duration, seed)` call.

`load_generator(spec)` resolves, in order: a preset name (`magnet-tiny`, `musicgen-large`, ...,
random weights), a checkpoint path (a `state_dict.bin` export or a folder holding one, with its
`compression_state_dict.bin` beside it when present), or a hub name (`facebook/magnet-small-10secs`,
`facebook/audio-magnet-*`, `facebook/musicgen-*`) found in the local caches. Nothing is downloaded.

Randomness: each sample draws from its own counter-based stream (`sampling.ClipRandom`) keyed by
a seed derived from (seed, its index in the call), or by explicit `seeds`. Padded condition keys are
masked and, on CPU, prompts are encoded and clips decoded one at a time, so on CPU in float32 a clip's
tokens and audio are bit-identical whatever its batch; on GPU the forward pass's float rounding may
depend on the batch size (docs/determinism.md).

Beyond audiocraft (docs/magnet-beyond-audiocraft.md): `set_rescorer` binds an external MusicGen that
rescores MAGNeT's sampled tokens, `generate(prompt_codes=...)` / `encode_prompt` continue an audio
prompt (its tokens kept bit for bit), MAGNeT's `hybrid_prefix` decoding knob decodes the first seconds
autoregressively, and MusicGen runs past its trained segment by a sliding window.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..errors import MagnetEvalError, MissingWeightsError
from ..progress import make_progress, warn
from ..validate import generation_memory
from .checkpoints import codec_spec_for, is_lm_hub_name, load_lm, resolve_lm_checkpoint
from .build import build_lm
from .lm import LMModel
from .magnet import MagnetDecoding
from .musicgen import MusicGenDecoding
from .presets import PRESET_NAMES, is_preset, preset_config
from .rescoring import Rescoring, check_rescorer
from .sampling import make_generators

PARAM_ALIASES = {"temp": "temperature", "steps": "decoding_steps"}


def derive_seed(seed: int, key: str | int) -> int:
    """A 63-bit seed from (seed, key): per-sample seeds that don't depend on batch composition."""
    digest = hashlib.sha256(f"{int(seed)}:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def parse_steps(value: Any) -> list[int]:
    """decoding_steps from a list, a single int (all stages) or a string '20,10,10,10'."""
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",") if p]
        try:
            return [int(p) for p in parts]
        except ValueError as exc:
            raise MagnetEvalError(f"decoding steps must be integers separated by commas, got {value!r}") from exc
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


class Generator:
    """LM + codec (+ the LM's text conditioner) for text-to-audio generation.

    Attributes: lm, codec, name, kind ('magnet' | 'musicgen'), sample_rate, frame_rate, device,
    last_stats (decoding steps, forward passes and timings of the last `generate`).
    """

    def __init__(self, lm: LMModel, codec: Any, name: str = "model", device: str | torch.device = "cpu"):
        self.lm = lm.eval()
        self.codec = codec.eval() if hasattr(codec, "eval") else codec
        self.name = name
        self.kind = lm.cfg.kind
        self.device = torch.device(device)
        self.sample_rate = int(codec.sample_rate)
        self.frame_rate = float(codec.frame_rate)
        self.last_stats: dict[str, Any] = {}
        self.rescorer: Optional[LMModel] = None
        self.rescorer_name: Optional[str] = None
        if int(codec.n_q) < lm.n_q or int(codec.card) != lm.card:
            raise MagnetEvalError(
                f"{name}: the codec ({codec.n_q} x {codec.card}) does not fit the LM ({lm.n_q} x {lm.card})")

    @property
    def n_params(self) -> int:
        return self.lm.num_parameters

    def set_rescorer(self, rescorer: "Generator | LMModel | None", name: Optional[str] = None) -> None:
        """Rescore MAGNeT's sampled tokens with an external MusicGen (paper, section 3.4); None removes it.

        The rescorer must use the same codec (same codebooks and frame rate); its weight is the
        decoding knob `rescore_weight` (w_r, the rescorer's share).
        """
        if rescorer is None:
            self.rescorer, self.rescorer_name = None, None
            return
        if self.kind != "magnet":
            raise MagnetEvalError(f"{self.name}: rescoring applies to MAGNeT, not {self.kind}")
        lm = rescorer.lm if isinstance(rescorer, Generator) else rescorer
        name = name or (rescorer.name if isinstance(rescorer, Generator) else "rescorer")
        check_rescorer(self.lm, lm, name)
        self.rescorer, self.rescorer_name = lm.eval(), name

    def encode_prompt(self, wav: Any, sample_rate: int) -> torch.Tensor:
        """An audio prompt (array [samples] or [channels, samples]) -> its codes [1, K, P] with this codec.

        Resampled to the codec's rate and downmixed to mono by `magnet_eval.audio`, the one resampler.
        """
        from ..audio import resample, to_mono

        mono = to_mono(np.asarray(wav, dtype=np.float32))
        if int(sample_rate) != self.sample_rate:
            mono = resample(mono, int(sample_rate), self.sample_rate)
        x = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32)).view(1, 1, -1).to(self.device)
        channels = int(getattr(self.codec, "channels", 1))
        if channels > 1:
            x = x.expand(1, channels, -1)
        with torch.no_grad():
            codes = self.codec.encode(x)
        return codes[:, :self.lm.n_q].long().cpu()

    def default_decoding(self) -> MagnetDecoding | MusicGenDecoding:
        return MagnetDecoding() if self.kind == "magnet" else MusicGenDecoding()

    def decoding(self, **params: Any) -> MagnetDecoding | MusicGenDecoding:
        """Decoding settings from keyword knobs (None = default); unknown or other-model knobs are refused."""
        from ..validate import decoding_options

        decoding_options(params, prefix="")  # ranges (temperature > 0, top-p in [0, 1], ...) named per knob
        cls = MagnetDecoding if self.kind == "magnet" else MusicGenDecoding
        names = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in params.items():
            if value is None:
                continue
            key = PARAM_ALIASES.get(key, key)
            if key not in names:
                other = "MAGNeT" if self.kind == "musicgen" else "MusicGen"
                raise MagnetEvalError(f"decoding option {key!r} does not apply to {self.kind} ({self.name}); "
                                      f"its options: {', '.join(sorted(names))} (maybe an option of {other})")
            if key == "decoding_steps":
                value = parse_steps(value)
                if len(value) == 1:
                    value = value * self.lm.n_q
                if len(value) != self.lm.n_q:
                    raise MagnetEvalError(f"decoding_steps needs {self.lm.n_q} values (one per codebook), got {value}")
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise MagnetEvalError(str(exc)) from exc

    def frames_for(self, duration: float) -> int:
        frames = int(round(duration * self.frame_rate))
        if frames < 1:
            raise MagnetEvalError(f"duration {duration} s is shorter than one codec frame")
        return frames

    def peak_memory_bytes(self, batch: int, frames: int) -> int:
        """A lower bound of generation's peak memory beyond the weights: MAGNeT materialises one layer's
        attention weights and their softmax (CFG-doubled batch x heads x frames^2); MusicGen holds a
        key/value cache per layer (CFG-doubled batch x frames x dim)."""
        cfg = self.lm.cfg
        elem = self.lm.emb[0].weight.element_size()
        rows = 2 * batch  # conditional and unconditional passes in one batch
        if self.kind == "magnet":
            return 2 * rows * cfg.num_heads * frames * frames * elem
        return 2 * cfg.num_layers * rows * frames * cfg.dim * elem

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], duration: float = 10.0, seed: int = 0,
                 batch_size: Optional[int] = None, seeds: Optional[Sequence[int]] = None,
                 progress: bool = False, prompt_codes: Optional[torch.Tensor] = None,
                 **decoding_params: Any) -> tuple[torch.Tensor, np.ndarray, int]:
        """Generate one clip per prompt -> (codes [B, K, F], wav float32 [B, samples], sample_rate).

        batch_size: prompts per forward batch (default: all at once). seeds: one per prompt
        (default: derived from `seed` and the prompt's index). decoding_params: the model's knobs
        (see MagnetDecoding / MusicGenDecoding; None values keep the defaults). prompt_codes [1 or B,
        K, P] (`encode_prompt`): every clip continues this audio, whose tokens it keeps bit for bit;
        `duration` counts the prompt (as audiocraft's `generate_continuation`). A `rescorer` entry in
        decoding_params (a MusicGen spec) calls `set_rescorer` once, so knob-only callers (`bench
        latency --param rescorer=...`) can time rescoring; its loading happens on the first call.
        """
        prompts = list(prompts)
        if not prompts:
            raise MagnetEvalError("no prompts to generate")
        spec = decoding_params.pop("rescorer", None)  # e.g. `bench latency --param rescorer=musicgen-small`
        if spec is not None and (self.rescorer is None or spec != self.rescorer_name):
            self.set_rescorer(load_generator(str(spec), device=self.device, dtype=self.lm.emb[0].weight.dtype),
                              name=str(spec))
        dec = self.decoding(**decoding_params)
        if seeds is None:
            seeds = [derive_seed(seed, i) for i in range(len(prompts))]
        if len(seeds) != len(prompts):
            raise MagnetEvalError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        frames = self.frames_for(duration)
        if duration > self.lm.cfg.segment_duration + 1e-6 and self.kind == "magnet":
            # MusicGen slides a window past its segment (extend_stride); MAGNeT attends to the whole clip
            warn(f"{self.name}: {duration} s is longer than the {self.lm.cfg.segment_duration} s it was trained on")
        if prompt_codes is not None:
            prompt_codes = torch.as_tensor(prompt_codes).long()
            if prompt_codes.dim() != 3 or prompt_codes.shape[1] < self.lm.n_q or prompt_codes.shape[0] not in (1, len(prompts)):
                raise MagnetEvalError(f"prompt codes of shape {tuple(prompt_codes.shape)} do not fit {len(prompts)} "
                                      f"prompts x {self.lm.n_q} codebooks")
            if prompt_codes.shape[-1] >= frames:
                raise MagnetEvalError(f"the audio prompt ({prompt_codes.shape[-1] / self.frame_rate:.2f} s) is not "
                                      f"shorter than --duration {duration} s: nothing would be generated")
            prompt_codes = prompt_codes[:, :self.lm.n_q].expand(len(prompts), -1, -1)
        bs = int(batch_size or len(prompts))
        generation_memory(duration, min(bs, len(prompts)), self.peak_memory_bytes(min(bs, len(prompts)), frames),
                          self.device, what=f"{self.name}'s {'attention' if self.kind == 'magnet' else 'key/value cache'}")
        all_codes, all_wavs = [], []
        steps = passes = rescorer_passes = 0
        t0 = time.perf_counter()
        for start in range(0, len(prompts), bs):
            batch = prompts[start:start + bs]
            gens = make_generators(seeds[start:start + bs], self.device)
            # on CPU each prompt is encoded alone (bit-exact whatever the batch); on GPU in one batch,
            # where the forward is not bit-invariant anyway and a loop would slow large batches
            independent = self.device.type == "cpu"
            condition = self.lm.condition(batch, independent=independent)
            extra: dict[str, Any] = {}
            if prompt_codes is not None:
                extra["prompt"] = prompt_codes[start:start + bs].to(self.device)
            if self.rescorer is not None and self.kind == "magnet":
                extra["rescorer"] = Rescoring(self.rescorer, self.rescorer.condition(batch, independent=independent),
                                              name=self.rescorer_name or "rescorer")
            codes = self._generate_codes(condition, len(batch), frames, dec, gens, progress, **extra)
            steps += int(self.lm.last_stats.get("decoding_steps", 0))
            passes += int(self.lm.last_stats.get("forward_passes", 0))
            rescorer_passes += int(self.lm.last_stats.get("rescorer_forward_passes", 0))
            wav = self._decode(codes.to(self.device))
            all_codes.append(codes.cpu())
            all_wavs.append(wav.float().reshape(wav.shape[0], -1).cpu())
        codes = torch.cat(all_codes)
        wav = torch.cat(all_wavs).numpy().astype(np.float32)
        self.last_stats = {"decoding_steps": steps, "forward_passes": passes, "frames": int(codes.shape[-1]),
                           "seconds": time.perf_counter() - t0, "batches": -(-len(prompts) // bs),
                           "rescorer_forward_passes": rescorer_passes, "settings": self.settings(dec)}
        return codes, wav, self.sample_rate

    def settings(self, dec: MagnetDecoding | MusicGenDecoding) -> dict[str, Any]:
        """The decoding settings of a generation, with the rescorer when one is set (MAGNeT)."""
        d = dec.to_dict()
        if self.kind == "magnet" and self.rescorer is not None:
            d["rescorer"] = self.rescorer_name
            d["rescore_weight"] = dec.rescore_weight
        return d

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, K, F] -> audio. On CPU one clip per codec call: the convolutions' float rounding
        depends on the batch size, and a clip's audio must not (docs/determinism.md); on GPU the
        batched call is kept for throughput (the LM's forward is not bit-invariant there anyway)."""
        if self.device.type != "cpu" or codes.shape[0] == 1:
            return self.codec.decode(codes)
        return torch.cat([self.codec.decode(codes[i:i + 1]) for i in range(codes.shape[0])])

    def _generate_codes(self, condition: Any, n: int, frames: int, dec: Any,
                        gens: list[torch.Generator], progress: bool, **extra: Any) -> torch.Tensor:
        if not progress:
            return self.lm.generate(condition, n, frames, dec, generators=gens, **extra)
        with make_progress() as bar:
            task = bar.add_task(f"{self.name}: decoding", total=None)

            def callback(step: int, total: int) -> None:
                bar.update(task, completed=step, total=total)

            return self.lm.generate(condition, n, frames, dec, generators=gens, callback=callback, **extra)


# ---- loading ------------------------------------------------------------------------------------
def _load_codec(spec: str, device: str | torch.device, random_ok: bool) -> Any:
    """The codec through C2's `load_codec`; for random-weight presets an untrained codec is acceptable."""
    try:
        from .codec import load_codec
    except ImportError as exc:
        raise MagnetEvalError(f"the codec module (magnet_eval.models.codec) is not available: {exc}") from exc
    try:
        return load_codec(spec, device=device)
    except MissingWeightsError:
        if not random_ok:
            raise
        codec = load_codec(spec, device=device, pretrained=False)
        warn(f"codec {spec!r}: weights not on this machine, using random codec weights (benchmarking only)")
        return codec


def _check_text_encoder(lm: LMModel, random_ok: bool) -> None:
    """Make sure prompts can be encoded; random-weight presets fall back to the 'random' text encoder."""
    cond = lm.text_conditioner
    if cond.encoder_name == "random":
        return
    try:
        cond.load_encoder()
    except (MissingWeightsError, ImportError, OSError) as exc:
        if not random_ok:
            raise
        warn(f"text encoder {cond.encoder_name!r} is not available ({str(exc).splitlines()[0]}); "
             "using the 'random' stand-in encoder (prompts carry no meaning; fine for latency)")
        lm.set_text_encoder("random")


def load_generator(spec: str | Path, device: str | torch.device = "cpu", dtype: Optional[torch.dtype] = None,
                   text_encoder: Optional[str] = None, stage_attention: Optional[str] = None) -> Generator:
    """A Generator for a preset (random weights), a checkpoint path or a hub name; see the module doc.

    dtype: the LM's dtype (e.g. torch.float16 on GPU); the codec stays float32. text_encoder:
    override the LM's text encoder ('random' for benchmarks without T5).
    """
    s = str(spec)
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise MagnetEvalError(f"unknown device {device!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MagnetEvalError(f"device {device} requested but CUDA is not available on this machine (use --device cpu)")
    if is_preset(s):
        kind, scale = s.split("-", 1)
        codec = _load_codec("tiny" if scale == "tiny" else "encodec_32khz", device, random_ok=True)
        cfg = preset_config(s, codec=codec, text_encoder=text_encoder)
        with torch.random.fork_rng(devices=[]):  # the same random weights every time a preset is built
            torch.manual_seed(derive_seed(0, s) % (2 ** 31))
            lm = build_lm(cfg)
        random_ok = True
    else:
        if not (Path(s).expanduser().exists() or is_lm_hub_name(s)):
            raise MagnetEvalError(f"unknown model {s!r}: give a preset ({', '.join(PRESET_NAMES)}), a checkpoint "
                                  "path (state_dict.bin or its folder) or a hub name like facebook/magnet-small-10secs")
        path = resolve_lm_checkpoint(s)
        lm = load_lm(path, stage_attention=stage_attention)
        if text_encoder:
            try:
                lm.set_text_encoder(text_encoder)
            except ValueError as exc:
                raise MagnetEvalError(f"--text-encoder {text_encoder}: {exc}") from exc
        codec = _load_codec(codec_spec_for(path, lm.cfg), device, random_ok=False)
        random_ok = text_encoder == "random"
    if stage_attention is not None:
        lm.cfg.stage_attention = stage_attention
    lm = lm.to(device=device, dtype=dtype) if dtype is not None else lm.to(device)
    _check_text_encoder(lm, random_ok)
    if hasattr(codec, "to"):
        codec = codec.to(device)
    return Generator(lm, codec, name=s, device=device)
