"""What a results row was measured against and with, recorded so `compare` can refuse what does not compare.

Every row `evaluate` writes carries, in its details JSON under "provenance":
- `reference`: the reference's identity: {"kind": "audio", "sha1": over sorted (id, file sha1),
  "n_clips"} for reference audio, {"kind": "stats", "sha1": over mean, covariance and count,
  "n_clips"} for cached statistics (none for metrics that use no reference, e.g. the CLAP score);
- `model`: the embedder / classifier: name, weights_id (a hash of its weight files and
  output-changing options), sample rate, version;
- `protocol`: loudness normalisation on/off and its headroom.
A row of a set measured against itself (the same audio files, or identical embeddings) gets the
status `SELF_COMPARISON`: its value is 0 by construction (or KAD's unbiased estimate near 0), not
a measurement of anything.

Rows written before this record existed have no "provenance"; `compare` treats them as not known.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

import numpy as np

from .files import file_sha1

PROVENANCE_KEY = "provenance"
SELF_COMPARISON = "self-comparison (generated = reference)"
# metrics computed without the reference (their rows carry no reference identity)
REFERENCE_FREE = ("clap",)


def _sha1(parts: Iterable[str]) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def file_hashes(manifest: Any) -> dict[str, str]:
    """{id: sha1 of the audio file} for the entries of a manifest that have audio."""
    return {e.id: file_sha1(e.audio_path) for e in manifest.with_audio()}


def audio_identity(hashes: dict[str, str]) -> dict:
    """The identity of a set of audio files: sha1 over sorted (id, content sha1), and the count."""
    return {"kind": "audio", "sha1": _sha1(f"{i}\t{h}" for i, h in sorted(hashes.items())), "n_clips": len(hashes)}


def stats_identity(stats: Any) -> dict:
    """The identity of cached reference statistics: their numbers, not their path (a copy is the same)."""
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(stats.mean, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(stats.cov, dtype=np.float64).tobytes())
    h.update(str(int(stats.count)).encode())
    return {"kind": "stats", "sha1": h.hexdigest(), "n_clips": int(stats.n_clips)}


def model_record(model: Any, fallback: str = "") -> dict:
    """Name, weights_id, sample rate and version of an embedder or classifier (what changes its output)."""
    rec = {"model": str(getattr(model, "name", None) or fallback),
           "weights_id": str(getattr(model, "weights_id", "") or "")}
    sr = getattr(model, "sample_rate", None)
    if sr is not None:
        rec["sample_rate"] = int(sr)
    version = getattr(model, "version", None)
    if version not in (None, ""):
        rec["version"] = str(version)
    return rec


def note_model(results: Iterable[Any], model: Any, fallback: str = "") -> None:
    """Record the model that produced these MetricResults (in details, read back by `stamp`)."""
    rec = model_record(model, fallback)
    for r in results:
        r.details.setdefault("_model", rec)


def stamp(results: list[tuple[Any, str]], generated: Any, reference: Any, *, normalize: bool,
          headroom_db: float) -> None:
    """Write the provenance record into every result's details and mark self-comparisons.

    `generated` is the generated Manifest; `reference` a Manifest, ReferenceStats or None. A row
    is a self-comparison when the generated files are the reference files (same contents, in
    any order or under other ids), or when its metric found identical embeddings
    (details["self_comparison"], set by FAD / KAD).
    """
    from .manifest import Manifest

    if not results:
        return
    ref_identity = None
    same_files = False
    if isinstance(reference, Manifest):
        ref_hashes = file_hashes(reference)
        ref_identity = audio_identity(ref_hashes)
        gen_hashes = file_hashes(generated)
        same_files = bool(gen_hashes) and sorted(gen_hashes.values()) == sorted(ref_hashes.values())
    elif reference is not None and hasattr(reference, "mean"):
        ref_identity = stats_identity(reference)
    protocol = {"normalize": bool(normalize), "headroom_db": float(headroom_db) if normalize else None}
    for r, label in results:
        base = r.metric.split("/", 1)[0]
        uses_reference = base not in REFERENCE_FREE
        record = {"model": r.details.pop("_model", {"model": str(label)}), "protocol": protocol,
                  "reference": ref_identity if uses_reference else None}
        r.details[PROVENANCE_KEY] = record
        if r.status != "ok" or not uses_reference:
            continue
        if same_files or r.details.get("self_comparison"):
            r.details["self_comparison"] = True
            r.status = SELF_COMPARISON


def provenance_of(details: Any) -> dict | None:
    """The provenance record of a results row's details (JSON text or dict), None when not recorded."""
    if isinstance(details, str):
        try:
            details = json.loads(details or "{}")
        except ValueError:
            return None
    if not isinstance(details, dict):
        return None
    rec = details.get(PROVENANCE_KEY)
    return rec if isinstance(rec, dict) else None
