"""Generate stems for contexts with a StemGen model: audio in, stem and stem + context mix out, with a JSONL log.

The library side of `magnet-eval stem` (the CLI module only parses options). Each context is a
file (its id is the file name without extension) or an entry of a manifest (its `audio_path`;
the instrument is `labels.instrument` when present, else the one given). Per context it writes
OUT/{id}_{instrument}.wav (the stem), OUT/{id}_{instrument}_mix.wav (stem + context) and one
line of OUT/log.jsonl. A clip's seed is derived from the run seed and its id; a killed run
resumes without redoing the clips already logged.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .audio import fit_length, load_audio, save_audio
from .errors import MagnetEvalError, ManifestError

LOG_FILE = "log.jsonl"


@dataclass
class StemRequest:
    """One context to answer: id, context audio file, target instrument."""

    id: str
    context: Path
    instrument: str


def read_requests(context: str | Path, instrument: Optional[str]) -> list[StemRequest]:
    """Requests from an audio file or a manifest (.jsonl / folder with manifest.jsonl)."""
    p = Path(context).expanduser()
    if not p.exists():
        raise ManifestError(f"{p}: context file does not exist")
    if p.is_dir() or p.suffix.lower() == ".jsonl":
        from .manifest import read_any

        reqs = []
        for e in read_any(p):
            inst = e.labels.get("instrument") or instrument
            if not inst:
                raise ManifestError(f"{p}: entry {e.id} has no labels.instrument and no --instrument was given")
            if not e.audio_path:
                raise ManifestError(f"{p}: entry {e.id} has no audio_path (the context)")
            reqs.append(StemRequest(e.id, Path(e.audio_path), str(inst)))
        if not reqs:
            raise ManifestError(f"{p}: manifest holds no context")
        return reqs
    if not instrument:
        raise MagnetEvalError("--instrument is required with a single context file")
    return [StemRequest(p.stem, p, instrument)]


def _done(log: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill: that clip is redone
            out[rec["id"]] = rec
    return out


def generate_stem(lm: Any, codec: Any, wav: np.ndarray, instrument: str, dec: Any, seed: int,
                  device: str) -> tuple[np.ndarray, Any]:
    """One stem (audio as long as `wav`, and its codes) for a context clip at the codec's rate.

    Shared by `run_stem` and the registry's StemGen system (systems/stemgen.py).
    """
    import torch

    with torch.no_grad():
        ctx_codes = codec.encode(torch.from_numpy(wav)[None, None].to(device))
        codes = lm.generate(ctx_codes, lm.instrument_ids([instrument]).to(device), dec, seeds=[seed])
        stem = codec.decode(codes)[0, 0].float().cpu().numpy()
    return fit_length(stem, wav.shape[-1]), codes


def run_stem(model: str, context: str | Path, out: str | Path, *, instrument: Optional[str] = None,
             duration: Optional[float] = None, seed: int = 0, device: str = "cpu",
             decoding_steps: Optional[list[int]] = None, cfg_weights: Optional[tuple[float, float]] = (3.0, 3.0),
             causal_bias: float = 0.1, temperature: float = 1.0, codec: Optional[str] = None) -> list[dict]:
    """Answer every context with one stem; returns the log records (also appended to OUT/log.jsonl)."""
    from .models.generator import derive_seed
    from .models.stemgen import StemGenDecoding, build_stemgen

    from .models.stemgen import is_stemgen_preset
    from .stems import INSTRUMENTS, instrument_index
    from .validate import writable_output

    # everything a user can get wrong is checked before a model is built or a stem generated
    writable_output(out, "--out", kind="dir")
    requests = read_requests(context, instrument)
    dec = StemGenDecoding(**({"decoding_steps": decoding_steps} if decoding_steps else {}),
                          cfg_weights=cfg_weights, causal_bias=causal_bias, temperature=temperature)
    if is_stemgen_preset(model):
        for r in requests:
            instrument_index(r.instrument, INSTRUMENTS)
    for r in requests:
        load_audio(r.context)  # a context that does not decode is named now, not after hours of work
    lm, cod = build_stemgen(model, device, codec=codec)
    for r in requests:  # a checkpoint's own instrument vocabulary
        lm.instrument_ids([r.instrument])
    if len(dec.decoding_steps) != lm.n_q:
        raise MagnetEvalError(f"--decoding-steps has {len(dec.decoding_steps)} entries; the model has {lm.n_q} "
                              "codebook levels")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / LOG_FILE
    done = _done(log)
    sr = int(cod.sample_rate)
    records = []
    for r in requests:
        if r.id in done:
            records.append(done[r.id])
            continue
        t0 = time.perf_counter()
        wav, _ = load_audio(r.context, sr=sr)
        if duration is not None:
            wav = fit_length(wav, int(round(duration * sr)))
        s = derive_seed(seed, r.id)
        stem, codes = generate_stem(lm, cod, wav, r.instrument, dec, s, device)
        mix = wav + stem
        name = f"{r.id}_{r.instrument.replace(' ', '_')}"
        save_audio(out / f"{name}.wav", stem, sr)
        save_audio(out / f"{name}_mix.wav", np.clip(mix, -1.0, 1.0), sr)
        rec = {"id": r.id, "context": str(r.context), "instrument": r.instrument, "model": model,
               "stem": f"{name}.wav", "mix": f"{name}_mix.wav", "seed": seed, "sample_seed": s,
               "frames": int(codes.shape[-1]), "sample_rate": sr, "decoding": dec.to_dict(),
               "seconds": round(time.perf_counter() - t0, 3)}
        with log.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        records.append(rec)
    return records
