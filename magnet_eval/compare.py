"""Compare two evaluations of the same prompts: per metric the difference, its interval and a verdict.

Built to gate the CI of a model repository: `compare_results` says, for every metric both
results share, whether NEW is better, worse or the same as BASELINE, and whether it regressed
beyond a tolerance (then `magnet-eval compare` exits 1).

How the interval of a difference is obtained, best first:
1. paired bootstrap: when both sides have per-sample values for the metric (the
   `*.per_sample.parquet` written beside results by `evaluate`) whose mean is the metric (KL,
   CLAP, ...), clips are resampled by prompt id, the same ids on both sides;
2. otherwise, from the two sides' own bootstrap intervals, treating them as independent
   (half-widths added in quadrature, asymmetric intervals kept asymmetric): FAD, KAD;
3. otherwise none (NaN) and the verdict comes from the sign alone.

Comparability (refused with NotComparableError, exit 2, before any verdict; see `check_comparable`):
- the reference: same identity (content hash of the reference audio or statistics, recorded by
  `evaluate`, see `provenance.py`) and the same number of reference clips;
- the model of every metric both sides have: same embedder / classifier, weights id, sample
  rate and version; a metric measured with disjoint embedders on the two sides;
- the protocol: loudness normalisation and headroom;
- the prompts: the ids both sides share (from the per-sample files) must be at least
  `MIN_SHARED_FRACTION` (90 %) of the larger prompt set; 6 vs 10 prompts with 1 id in common
  is refused. With at least 2 but fewer than `MIN_PAIRED_IDS` (10) shared ids the paired
  bootstrap is not used (the output says so) and the unpaired fallback is taken.
Results that do not record one of these (files written before `evaluate` recorded provenance,
a results table without its per-sample file) are "not known": refused unless `allow_unknown`,
and then listed in the comparison's notes.

Regression rule: a metric with a tolerance (`fad:+0.1` absolute, `fad:+5%` relative to the
baseline value) regresses when its point difference is worse than the tolerance; a metric
without one regresses when the change is significantly worse (the interval of the difference
lies entirely on the worse side, or, with no interval, any worse change).
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .errors import MagnetEvalError, NotComparableError
from .provenance import provenance_of

if TYPE_CHECKING:
    import pandas as pd

# metric name prefixes (before any "/descriptor" or "_rev") and which way is better
LOWER_IS_BETTER = ("fad", "fad_inf", "kad", "kl", "kl_rev", "kl_musicnn", "kl_musicnn_rev", "mirdd", "fd", "latency")
HIGHER_IS_BETTER = ("clap", "chroma_cosine")
RESULT_SUFFIXES = (".parquet", ".csv")
# prompts: the shared ids must cover this fraction of the larger prompt set, else the results are refused
MIN_SHARED_FRACTION = 0.9
# fewer shared ids than this: no paired bootstrap (too few resampling units), the unpaired fallback is used
MIN_PAIRED_IDS = 10
COMPARISON_COLUMNS = ["system_baseline", "system_new", "metric", "baseline", "new", "diff", "ci_low", "ci_high",
                      "ci_method", "direction", "tolerance", "verdict", "regressed", "note"]


def direction(metric: str) -> int:
    """-1 when lower is better (fad, kad, kl*, mirdd*), +1 when higher is better (clap, chroma_cosine), 0 unknown."""
    base = metric.split(" (", 1)[0].split("/", 1)[0].lower()  # "fad (vggish)", "mirdd/tempo" -> fad, mirdd
    if base in LOWER_IS_BETTER or base.startswith(("kl_", "mirdd", "fad", "kad")):
        return -1
    if base in HIGHER_IS_BETTER or base.startswith(("clap", "chroma")):
        return 1
    return 0


# ----------------------------------------------------------------------------- tolerances


@dataclass(frozen=True)
class Tolerance:
    """How much worse a metric may get: `amount` absolute, or a fraction of |baseline| when `relative`."""

    pattern: str
    amount: float
    relative: bool = False

    def allowed(self, baseline: float) -> float:
        return self.amount * abs(baseline) if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.pattern}:+{self.amount * 100:g}%" if self.relative else f"{self.pattern}:+{self.amount:g}"


_TOL_RE = re.compile(r"^\s*([^:\s]+)\s*:\s*([+-]?)\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(%?)\s*$")


def parse_tolerance(text: str) -> Tolerance:
    """`fad:+0.1` (absolute), `fad:+5%` (relative to the baseline), `clap:-0.01`, `mirdd*:+10%`.

    The number is how much WORSE the metric may get. A sign is optional; when given it must
    point the worse way for the metric (+ for lower-is-better metrics, - for clap/chroma).
    """
    m = _TOL_RE.match(text or "")
    if not m:
        raise MagnetEvalError(
            f"bad tolerance {text!r}: expected METRIC:+AMOUNT or METRIC:+PERCENT%, e.g. fad:+0.1 or kl:+5%")
    pattern, sign, number, percent = m.groups()
    amount = float(number)
    d = direction(pattern.rstrip("*"))
    if sign and d and ((sign == "-") != (d == 1)):
        worse = "+" if d == -1 else "-"
        raise MagnetEvalError(
            f"bad tolerance {text!r}: {pattern} is {'lower' if d == -1 else 'higher'}-is-better, so the allowed "
            f"worsening is written {pattern}:{worse}{number}{percent}")
    return Tolerance(pattern, amount / 100.0 if percent else amount, bool(percent))


def find_tolerance(metric: str, tolerances: Sequence[Tolerance]) -> Tolerance | None:
    """The first tolerance whose name or glob pattern matches the metric (exact names win over globs).

    `fad (vggish)` (a metric measured with several embedders) also matches a tolerance for `fad`.
    """
    names = [metric] + ([metric.split(" (", 1)[0]] if " (" in metric else [])
    for name in names:
        for t in tolerances:
            if t.pattern == name:
                return t
        for t in tolerances:
            if fnmatch.fnmatchcase(name, t.pattern):
                return t
    return None


# ----------------------------------------------------------------------------- reading results


def per_sample_path(results_path: str | Path) -> Path | None:
    """`X.per_sample.parquet` (or `.csv`) beside results `X.parquet` / `X.csv`, if it exists."""
    p = Path(results_path)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    for suffix in (".per_sample.parquet", ".per_sample.csv"):
        cand = p.with_name(stem + suffix)
        if cand.is_file():
            return cand
    return None


def normalize_results(frame: "pd.DataFrame", where: str = "results") -> "pd.DataFrame":
    """Check the agreed columns and fill the optional ones (ci NaN, status ok, counts 0)."""
    import pandas as pd

    missing = [c for c in ("system", "metric", "value") if c not in frame.columns]
    if missing:
        raise MagnetEvalError(f"{where}: not a results table (missing columns {missing}; "
                              "expected the output of `magnet-eval evaluate`)")
    out = frame.copy()
    defaults: dict[str, Any] = {"ci_low": math.nan, "ci_high": math.nan, "n_generated": 0, "n_reference": 0,
                                "embedder": "", "reference": "", "status": "ok", "details": "{}"}
    for col, val in defaults.items():
        if col not in out.columns:
            out[col] = val
    out["system"] = out["system"].astype(str)
    out["metric"] = out["metric"].astype(str)
    for col in ("value", "ci_low", "ci_high"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    out["status"] = out["status"].fillna("ok").astype(str)
    out["embedder"] = out["embedder"].fillna("").astype(str)
    return out


def load_results(path: str | Path | "pd.DataFrame") -> tuple["pd.DataFrame", "pd.DataFrame | None"]:
    """(results, per-sample or None) from a results .parquet/.csv (per-sample file read from beside it)."""
    import pandas as pd

    if isinstance(path, pd.DataFrame):
        return normalize_results(path), None
    p = Path(path)
    if not p.is_file():
        raise MagnetEvalError(f"{p}: results file does not exist")
    try:
        frame = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    except Exception as exc:  # noqa: BLE001  (pyarrow / parser errors: any unreadable file)
        raise MagnetEvalError(f"{p}: cannot read results ({type(exc).__name__}: {exc})") from exc
    results = normalize_results(frame, str(p))
    per = None
    sp = per_sample_path(p)
    if sp is not None:
        try:
            per = pd.read_parquet(sp) if sp.suffix == ".parquet" else pd.read_csv(sp)
        except Exception as exc:  # noqa: BLE001
            raise MagnetEvalError(f"{sp}: cannot read per-sample results ({exc})") from exc
        if not {"system", "id", "metric", "value"} <= set(per.columns):
            raise MagnetEvalError(f"{sp}: per-sample file needs columns system, id, metric, value")
        per = per.astype({"system": str, "id": str, "metric": str})
    return results, per


def is_results_file(path: str | Path) -> bool:
    return Path(path).suffix in RESULT_SUFFIXES and Path(path).is_file()


# ----------------------------------------------------------------------------- intervals


def paired_bootstrap_diff(base: dict[str, float], new: dict[str, float], n_boot: int = 2000, ci: float = 0.95,
                          seed: int = 0) -> tuple[float, float, int]:
    """Interval of mean(new) - mean(base) over the ids both have, resampling ids (paired). (lo, hi, n)."""
    ids = sorted(set(base) & set(new))
    if len(ids) < 2 or n_boot < 2:
        return math.nan, math.nan, len(ids)
    d = np.array([new[i] - base[i] for i in ids], dtype=np.float64)
    if not np.isfinite(d).all():
        return math.nan, math.nan, len(ids)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(d), np.full(len(d), 1.0 / len(d)), size=n_boot)
    boots = counts @ d / len(d)
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return float(lo), float(hi), len(ids)


def combined_interval(base: float, b_lo: float, b_hi: float, new: float, n_lo: float, n_hi: float) -> tuple[float, float]:
    """Interval of new - base from the two sides' intervals, assumed independent (quadrature sum)."""
    vals = [base, b_lo, b_hi, new, n_lo, n_hi]
    if not all(math.isfinite(v) for v in vals):
        return math.nan, math.nan
    d = new - base
    lo = d - math.hypot(max(new - n_lo, 0.0), max(b_hi - base, 0.0))
    hi = d + math.hypot(max(n_hi - new, 0.0), max(base - b_lo, 0.0))
    return lo, hi


def _per_sample_values(per: "pd.DataFrame | None", system: str, metric: str) -> dict[str, float]:
    if per is None or len(per) == 0:
        return {}
    rows = per[(per["system"] == system) & (per["metric"] == metric)]
    return {str(i): float(v) for i, v in zip(rows["id"], rows["value"]) if math.isfinite(float(v))}


def _is_mean_of(values: dict[str, float], value: float) -> bool:
    """True when the per-sample values average to the metric (so resampling them resamples the metric)."""
    if len(values) < 2 or not math.isfinite(value):
        return False
    m = float(np.mean(list(values.values())))
    return abs(m - value) <= 1e-6 * max(1.0, abs(value))


# ----------------------------------------------------------------------------- comparison


@dataclass
class MetricComparison:
    system_baseline: str
    system_new: str
    metric: str
    baseline: float
    new: float
    diff: float
    ci_low: float
    ci_high: float
    ci_method: str
    direction: str
    tolerance: str
    verdict: str  # better | worse | same | changed | not comparable | only in baseline | only in new
    regressed: bool
    note: str = ""


def _pair_systems(base: "pd.DataFrame", new: "pd.DataFrame", system_baseline: str | None,
                  system_new: str | None) -> list[tuple[str, str]]:
    bs = list(dict.fromkeys(base["system"]))
    ns = list(dict.fromkeys(new["system"]))
    if system_baseline or system_new:
        b = system_baseline or (bs[0] if len(bs) == 1 else None)
        n = system_new or (ns[0] if len(ns) == 1 else None)
        if b not in bs or n not in ns:
            raise MagnetEvalError(f"system {b!r} / {n!r} not found (baseline has {bs}, new has {ns})")
        return [(b, n)]
    if len(bs) == 1 and len(ns) == 1:
        return [(bs[0], ns[0])]
    common = [s for s in bs if s in ns]
    if not common:
        raise MagnetEvalError(f"cannot pair systems: baseline has {bs}, new has {ns}; "
                              "name them with --system-baseline / --system-new")
    return [(s, s) for s in common]


def _keyed(rows: "pd.DataFrame", multi: set[str]) -> "pd.DataFrame":
    """Rows indexed by metric name, or `metric (embedder)` for metrics in `multi`; last row wins."""
    label = [f"{m} ({e})" if m in multi else m for m, e in zip(rows["metric"], rows["embedder"])]
    keyed = rows.assign(key=label).drop_duplicates("key", keep="last")
    return keyed.set_index("key", drop=True)


def _ids(per: "pd.DataFrame | None", system: str) -> set[str] | None:
    """The clip ids a system's per-sample file holds (its prompts), None when not known."""
    if per is None or len(per) == 0:
        return None
    rows = per[per["system"] == system]
    return set(rows["id"].astype(str)) if len(rows) else None


def _short(ident: dict | None) -> str:
    if not ident:
        return "none"
    return f"{ident.get('kind', '?')} {str(ident.get('sha1', ''))[:10]}, {ident.get('n_clips', '?')} clips"


def check_comparable(base_res: "pd.DataFrame", base_per: "pd.DataFrame | None", new_res: "pd.DataFrame",
                     new_per: "pd.DataFrame | None", pairs: Sequence[tuple[str, str]], multi: set[str], *,
                     allow_unknown: bool = False) -> list[str]:
    """Refuse (NotComparableError naming what differs) results measured against another reference,
    with another model or protocol, or on prompt sets that share too few ids; returns notes on what
    was checked (and, with `allow_unknown`, what could not be).

    Why: a gate that compares unlike results can pass falsely; an unknown is refused too unless
    the caller accepts it (results written before `evaluate` recorded provenance).
    """
    differs: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    notes: list[str] = []

    def add(book: dict[str, list[str]], message: str, metric: str) -> None:
        book.setdefault(message, [])
        if metric not in book[message]:
            book[message].append(metric)

    for sb, sn in pairs:
        who = "" if sb == sn and len(pairs) == 1 else (f"{sb}: " if sb == sn else f"{sb} -> {sn}: ")
        b_all, n_all = base_res[base_res.system == sb], new_res[new_res.system == sn]
        # one metric measured with disjoint embedders on the two sides (fad with musicnn vs fad with vggish)
        b_emb = b_all.groupby("metric")["embedder"].agg(lambda e: set(map(str, e)))
        n_emb = n_all.groupby("metric")["embedder"].agg(lambda e: set(map(str, e)))
        for m in sorted(set(b_emb.index) & set(n_emb.index)):
            if b_emb[m] and n_emb[m] and not (b_emb[m] & n_emb[m]):
                add(differs, f"{who}measured with another embedder: baseline {sorted(b_emb[m])}, new {sorted(n_emb[m])}", m)
        b_rows, n_rows = _keyed(b_all, multi), _keyed(n_all, multi)
        for key in [k for k in b_rows.index if k in n_rows.index]:
            b, n = b_rows.loc[key], n_rows.loc[key]
            if b["status"] != "ok" or n["status"] != "ok":
                continue  # reported as "not comparable" row by row
            pb, pn = provenance_of(b["details"]), provenance_of(n["details"])
            if pb is None or pn is None:
                sides = " and ".join(side for side, p in (("baseline", pb), ("new", pn)) if p is None)
                add(unknown, f"{who}reference identity, model weights and protocol not recorded in {sides}", key)
                rb_label, rn_label = str(b["reference"] or ""), str(n["reference"] or "")
                nb, nn = int(b["n_reference"] or 0), int(n["n_reference"] or 0)
                if rb_label and rn_label and rb_label != rn_label:
                    add(differs, f"{who}reference differs: baseline {rb_label}, new {rn_label}", key)
                if nb > 0 and nn > 0 and nb != nn:
                    add(differs, f"{who}reference size differs: baseline {nb} clips, new {nn} clips", key)
                continue
            rb, rn = pb.get("reference"), pn.get("reference")
            if (rb or rn) and ((rb or {}).get("sha1") != (rn or {}).get("sha1")
                               or (rb or {}).get("n_clips") != (rn or {}).get("n_clips")):
                add(differs, f"{who}reference differs: baseline {b['reference'] or '?'} ({_short(rb)}), "
                             f"new {n['reference'] or '?'} ({_short(rn)})", key)
            for part in ("model", "protocol"):
                vb, vn = pb.get(part) or {}, pn.get(part) or {}
                changed = [f"{k} {vb.get(k)!r} vs {vn.get(k)!r}" for k in sorted(set(vb) | set(vn))
                           if vb.get(k) != vn.get(k)]
                if changed:
                    what = "embedder/classifier or its weights" if part == "model" else "protocol"
                    add(differs, f"{who}{what} differs (baseline vs new): {'; '.join(changed)}", key)
        ib, inw = _ids(base_per, sb), _ids(new_per, sn)
        if ib is None or inw is None:
            sides = " and ".join(side for side, i in (("baseline", ib), ("new", inw)) if i is None)
            add(unknown, f"{who}prompt ids not known (no per-sample file with this system in {sides})", "prompts")
            gb = int(b_all["n_generated"].max() or 0) if len(b_all) else 0
            gn = int(n_all["n_generated"].max() or 0) if len(n_all) else 0
            if gb > 0 and gn > 0 and min(gb, gn) < MIN_SHARED_FRACTION * max(gb, gn):
                add(differs, f"{who}prompt sets differ in size: baseline {gb} clips, new {gn} clips", "prompts")
            continue
        common = len(ib & inw)
        larger = max(len(ib), len(inw))
        if common < MIN_SHARED_FRACTION * larger:
            add(differs, f"{who}prompt sets share {common} ids (baseline {len(ib)}, new {len(inw)} prompts); at least "
                         f"{MIN_SHARED_FRACTION:.0%} of the larger set must be shared", "prompts")
        else:
            notes.append(f"{who}prompts: {common} of {larger} ids shared"
                         + ("" if common >= MIN_PAIRED_IDS else
                            f" (fewer than {MIN_PAIRED_IDS}: no paired test, unpaired fallback)"))
    if differs:
        lines = [f"  - {msg} [{', '.join(ms)}]" for msg, ms in differs.items()]
        raise NotComparableError("the two results are not comparable:\n" + "\n".join(lines))
    if unknown:
        lines = [f"  - {msg} [{', '.join(ms)}]" for msg, ms in unknown.items()]
        if not allow_unknown:
            raise NotComparableError(
                "cannot tell whether the two results are comparable:\n" + "\n".join(lines)
                + "\n(results written before `evaluate` recorded provenance, or a results file without its "
                  ".per_sample file); re-evaluate them, or pass --allow-unknown to compare anyway")
        notes += [f"not known (--allow-unknown): {msg} [{', '.join(ms)}]" for msg, ms in unknown.items()]
    if not unknown and not differs:
        notes.insert(0, "same reference, embedders/weights and protocol")
    return notes


def _verdict(d: int, diff: float, lo: float, hi: float, baseline: float) -> str:
    # differences below float round-off (a .csv re-read of a .parquet) are no change
    eps = 1e-9 * max(1.0, abs(baseline))
    if not math.isfinite(diff):
        return "not comparable"
    if abs(diff) <= eps:
        return "same"
    if math.isfinite(lo) and math.isfinite(hi) and lo - eps <= 0.0 <= hi + eps:
        return "same"
    if d == 0:
        return "changed"
    return "better" if diff * d > 0 else "worse"


def compare_results(
    baseline: str | Path | "pd.DataFrame",
    new: str | Path | "pd.DataFrame",
    tolerances: Sequence[Tolerance | str] = (),
    *,
    baseline_per_sample: "pd.DataFrame | None" = None,
    new_per_sample: "pd.DataFrame | None" = None,
    system_baseline: str | None = None,
    system_new: str | None = None,
    only_listed: bool = False,
    strict: bool = False,
    allow_unknown: bool = False,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> "pd.DataFrame":
    """One row per (system pair, metric): baseline, new, diff = new - baseline, interval, verdict, regressed.

    tolerances: `Tolerance`s or strings like "fad:+0.1"; only_listed: only metrics with a
    tolerance can regress; strict: a metric that was ok in the baseline but failed or is
    missing in NEW counts as a regression. Results that are not comparable raise
    NotComparableError (see `check_comparable`); allow_unknown accepts results that do not
    record what is needed to tell. The notes of that check are in `frame.attrs["comparability"]`.
    """
    import pandas as pd

    tols = [t if isinstance(t, Tolerance) else parse_tolerance(t) for t in tolerances]
    base_res, base_per = load_results(baseline)
    new_res, new_per = load_results(new)
    base_per = baseline_per_sample if baseline_per_sample is not None else base_per
    new_per = new_per_sample if new_per_sample is not None else new_per

    # a metric measured with several embedders (fad with musicnn and vggish) is compared per embedder
    both = pd.concat([base_res, new_res], ignore_index=True)
    multi = {m for m, k in both.groupby("metric")["embedder"].nunique().items() if k > 1}
    rows: list[MetricComparison] = []
    pairs = _pair_systems(base_res, new_res, system_baseline, system_new)
    checks = check_comparable(base_res, base_per, new_res, new_per, pairs, multi, allow_unknown=allow_unknown)
    for sb, sn in pairs:
        b_rows = _keyed(base_res[base_res.system == sb], multi)
        n_rows = _keyed(new_res[new_res.system == sn], multi)
        metrics = list(dict.fromkeys(list(b_rows.index) + list(n_rows.index)))
        for metric in metrics:
            d = direction(metric)
            tol = find_tolerance(metric, tols)
            dir_text = {-1: "lower is better", 1: "higher is better", 0: "unknown"}[d]
            gated = tol is not None or not only_listed
            if metric not in n_rows.index or metric not in b_rows.index:
                only = "only in baseline" if metric not in n_rows.index else "only in new"
                was_ok = metric in b_rows.index and b_rows.loc[metric, "status"] == "ok"
                rows.append(MetricComparison(sb, sn, metric,
                                             float(b_rows.loc[metric, "value"]) if metric in b_rows.index else math.nan,
                                             float(n_rows.loc[metric, "value"]) if metric in n_rows.index else math.nan,
                                             math.nan, math.nan, math.nan, "none", dir_text, str(tol or ""), only,
                                             bool(strict and gated and only == "only in baseline" and was_ok)))
                continue
            b, n = b_rows.loc[metric], n_rows.loc[metric]
            bv, nv = float(b["value"]), float(n["value"])
            if b["status"] != "ok" or n["status"] != "ok" or not (math.isfinite(bv) and math.isfinite(nv)):
                note = "; ".join(f"{side}: {row['status'] if row['status'] != 'ok' else 'no value'}"
                                 for side, row in (("baseline", b), ("new", n))
                                 if row["status"] != "ok" or not math.isfinite(float(row["value"])))
                lost = b["status"] == "ok" and math.isfinite(bv) and not (n["status"] == "ok" and math.isfinite(nv))
                rows.append(MetricComparison(sb, sn, metric, bv, nv, math.nan, math.nan, math.nan, "none", dir_text,
                                             str(tol or ""), "not comparable", bool(strict and gated and lost), note))
                continue
            diff = nv - bv
            note = ""
            bvals = _per_sample_values(base_per, sb, str(b["metric"])) if metric not in multi else {}
            nvals = _per_sample_values(new_per, sn, str(n["metric"])) if metric not in multi else {}
            lo = hi = math.nan
            method = "none"
            n_shared = len(set(bvals) & set(nvals))
            if _is_mean_of(bvals, bv) and _is_mean_of(nvals, nv) and n_shared < MIN_PAIRED_IDS:
                note = f"paired test skipped: {n_shared} shared ids (< {MIN_PAIRED_IDS})"
            elif _is_mean_of(bvals, bv) and _is_mean_of(nvals, nv):
                plo, phi, n_common = paired_bootstrap_diff(bvals, nvals, n_boot, ci, seed)
                if math.isfinite(plo):
                    # centre the interval of the common-id difference on the reported difference
                    common = sorted(set(bvals) & set(nvals))
                    d_common = float(np.mean([nvals[i] - bvals[i] for i in common]))
                    lo, hi = plo + diff - d_common, phi + diff - d_common
                    method = f"paired bootstrap over {n_common} ids"
                    if n_common < max(len(bvals), len(nvals)):
                        note = f"{n_common} of {max(len(bvals), len(nvals))} ids in common"
            if method == "none":
                lo, hi = combined_interval(bv, float(b["ci_low"]), float(b["ci_high"]),
                                           nv, float(n["ci_low"]), float(n["ci_high"]))
                if math.isfinite(lo):
                    method = "from the two intervals (independent)"
                else:
                    method = "none: verdict from the sign of the difference"
            verdict = _verdict(d, diff, lo, hi, bv)
            if tol is not None:
                worse_by = -diff * d if d else abs(diff)
                regressed = worse_by > tol.allowed(bv) + 1e-9 * max(1.0, abs(bv))
            else:
                regressed = gated and verdict == "worse"
            rows.append(MetricComparison(sb, sn, metric, bv, nv, diff, lo, hi, method, dir_text, str(tol or ""),
                                         verdict, bool(regressed), note))
    frame = pd.DataFrame([asdict(r) for r in rows], columns=COMPARISON_COLUMNS)
    frame.attrs["comparability"] = checks
    return frame


def exit_code(comparison: "pd.DataFrame") -> int:
    """1 when any metric regressed, else 0 (what `magnet-eval compare` exits with)."""
    return int(bool(len(comparison)) and bool(comparison["regressed"].any()))


# ----------------------------------------------------------------------------- checkpoints


def evaluate_checkpoint(
    spec: str,
    prompts: str | Path,
    reference: str | Path | None,
    out_dir: str | Path,
    *,
    name: str | None = None,
    metrics: Sequence[str] = ("fad", "kl_musicnn"),
    embedder: str | Any = "musicnn",
    duration: float = 10.0,
    seed: int = 0,
    batch_size: int = 4,
    device: str = "cpu",
    n_bootstrap: int = 200,
    loader: Callable[..., Any] | None = None,
) -> Path:
    """Generate the prompts with one checkpoint and evaluate them; returns the results parquet.

    Both checkpoints of a comparison go through the pipeline with the same prompts, seed and
    duration, so their results pair prompt by prompt, and each clip's audio is what `magnet-eval
    generate` makes for that checkpoint, prompt and seed (one seeding rule: per clip id and seed).
    loader(spec, device=...) builds a generator instead of the system registry (tests).
    """
    from .pipeline import generate_and_evaluate

    label = name or Path(spec).stem or str(spec)
    generator = loader(spec, device=device) if loader is not None else None
    return generate_and_evaluate(spec, str(prompts), reference, out_dir, name=label, metrics=list(metrics),
                                 embedder=embedder, duration=duration, seed=seed, batch_size=batch_size,
                                 device=device, n_bootstrap=n_bootstrap, generator=generator)
