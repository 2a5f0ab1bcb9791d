"""Metric parity across a refactor: the same audio files must give the same metric values.

Runs `magnet_eval.evaluation.evaluate` (the public API, present in every version) on a small
rendered corpus, half against the other half, and writes every value (value, ci_low, ci_high and
each per-sample value) to JSON; `compare` then checks two such files agree to a relative
tolerance. Run it once with an older tree on PYTHONPATH and once with the working tree:

    .venv/bin/magnet-eval data synth --out /tmp/p2corpus --n 12 --duration 4 --seed 0
    git archive HEAD | tar -x -C /tmp/p2_old
    PYTHONPATH=/tmp/p2_old .venv/bin/python benchmarks/metric_parity.py run /tmp/p2corpus /tmp/old.json
    .venv/bin/python benchmarks/metric_parity.py run /tmp/p2corpus /tmp/new.json
    .venv/bin/python benchmarks/metric_parity.py compare /tmp/old.json /tmp/new.json

Each run uses its own empty embedding cache (features are recomputed, not read back).
The cases:
- sets: FAD, FAD-inf, KAD (musicnn embeddings) of the second half against the first half;
- paired: KL over musicnn tags and chroma cosine, generated clip i (second half) paired with
  reference clip i (first half) by giving it the reference's id; one generated clip is cut to
  3.3 s so chroma's unequal-length path (both cut to the shorter) is exercised;
- MIRDD on full mixes, and on each clip's lead stem + a context mix (its other stems summed),
  which exercises the stem + context selection.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path


def _manifests(corpus: Path, work: Path):
    from magnet_eval.audio import load_audio, save_audio
    from magnet_eval.manifest import Manifest, ManifestEntry, read_any

    full = read_any(corpus / "manifest.jsonl")
    entries = list(full)
    half = len(entries) // 2
    ref = Manifest(entries[:half], source="reference-half")
    gen_entries = []
    for i, (r, g) in enumerate(zip(entries[:half], entries[half:2 * half])):
        path = g.audio_path
        if i == 0:  # one clip shorter than its reference: chroma cuts both to the shorter
            wav, sr = load_audio(path)
            path = str(save_audio(work / "cut" / f"{g.id}.wav", wav[..., : int(3.3 * sr)], sr))
        gen_entries.append(ManifestEntry(r.id, r.caption, path))
    gen = Manifest(gen_entries, source="generated-half")
    stem_entries = []
    for g in entries[half:2 * half]:
        others = [p for name, p in g.stems.items() if name != "lead"]
        if "lead" not in g.stems or not others:
            continue
        loaded = [load_audio(p) for p in others]
        sr = loaded[0][1]
        n = min(w.shape[-1] for w, _ in loaded)
        ctx = sum(w[..., :n] for w, _ in loaded)
        ctx_path = save_audio(work / "ctx" / f"{g.id}.wav", ctx, sr)
        stem_entries.append(ManifestEntry(g.id, g.caption, g.stems["lead"], stems={"context": str(ctx_path)}))
    stems = Manifest(stem_entries, source="lead-stems")
    return gen, ref, stems


def _values(results, per_sample, tag: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in results.itertuples():
        if r.status != "ok":
            raise SystemExit(f"{tag} {r.metric}: status {r.status!r}")
        for col in ("value", "ci_low", "ci_high"):
            out[f"{tag}/{r.metric}/{col}"] = float(getattr(r, col))
    for s in per_sample.itertuples():
        out[f"{tag}/{s.metric}/{s.id}"] = float(s.value)
    return out


def run(corpus: Path, out: Path, n_bootstrap: int) -> None:
    import magnet_eval
    from magnet_eval.embedding_cache import EmbeddingCache
    from magnet_eval.evaluation import evaluate

    with tempfile.TemporaryDirectory(prefix="metric-parity-") as tmp:
        work = Path(tmp)
        gen, ref, stems = _manifests(corpus, work)
        cache = EmbeddingCache(work / "cache")
        opts = dict(cache=cache, n_bootstrap=n_bootstrap, seed=0)
        values: dict[str, float] = {}
        cases = [("sets", gen, ["fad", "kad"]), ("paired", gen, ["kl_musicnn", "chroma_cosine"]),
                 ("mirdd", gen, ["mirdd"]), ("mirdd_stems", stems, ["mirdd"])]
        for tag, generated, metrics in cases:
            res, per = evaluate(generated, ref, metrics, embedder="musicnn", system=tag, **opts)
            values.update(_values(res, per, tag))
    out.write_text(json.dumps({"code": str(Path(magnet_eval.__file__).parent), "values": values}, indent=1))
    print(f"{len(values)} values from {magnet_eval.__file__} -> {out}")


def compare(a: Path, b: Path, rtol: float) -> int:
    va = json.loads(a.read_text())["values"]
    vb = json.loads(b.read_text())["values"]
    bad = sorted(set(va) ^ set(vb))
    for k in bad:
        print(f"only in {'A' if k in va else 'B'}: {k}")
    worst = 0.0
    for k in sorted(set(va) & set(vb)):
        x, y = va[k], vb[k]
        if math.isnan(x) and math.isnan(y):
            continue
        rel = abs(x - y) / max(abs(x), abs(y), 1e-300)
        worst = max(worst, rel)
        if not rel <= rtol:
            bad.append(k)
            print(f"differs: {k}: {x!r} vs {y!r} (relative {rel:.3g})")
    print("| metric | before | after |")
    print("| --- | ---: | ---: |")
    for k in sorted(k for k in set(va) & set(vb) if k.endswith("/value")):
        print(f"| {k[:-len('/value')]} | {va[k]:.12g} | {vb[k]:.12g} |")
    print(f"{len(set(va) & set(vb))} shared values, worst relative difference {worst:.3g} (tolerance {rtol:g})")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("corpus", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--bootstrap", type=int, default=50)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--rtol", type=float, default=1e-9)
    args = p.parse_args(argv)
    if args.cmd == "run":
        run(args.corpus, args.out, args.bootstrap)
        return 0
    return compare(args.a, args.b, args.rtol)


if __name__ == "__main__":
    sys.exit(main())
