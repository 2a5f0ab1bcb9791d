"""Compare NEW against BASELINE metric by metric; exit 1 when a metric regresses beyond its tolerance.

BASELINE and NEW are results files of `evaluate` (.parquet/.csv; the per-sample files beside them give paired bootstrap intervals of the differences), or two checkpoints / presets / hub names that are then generated on the same prompts and seeds (--prompts) and evaluated against --reference.

Tolerances: --metric fad:+0.1 (absolute) or --metric kl:+5% (relative to the baseline), globs allowed (mirdd*:+10%). A metric without a tolerance fails when it is significantly worse. Every comparison is appended to the results ledger; --history NAME lists a checkpoint's history.

Refused (exit 2, naming what differs) when the two results are not comparable: another reference set or reference size, another embedder / classifier, weights or sample rate, another loudness protocol, or prompt sets that share fewer than 90% of the larger set's ids (6 vs 10 prompts with 1 in common is refused). Results that do not record this (files from before provenance was recorded, a results file without its .per_sample file) are refused unless --allow-unknown. With fewer than 10 shared ids the paired bootstrap is skipped; the "test" column says which interval was used: paired bootstrap, from the two intervals (independent), or none (sign of the difference).

Exit status: 0 no regression, 1 regression, 2 bad input or results that are not comparable.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer


def _fmt(v) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "-" if f != f else f"{f:.4g}"


def print_comparison(frame) -> None:
    """The comparison table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="magnet-eval compare (diff = new - baseline)")
    for col in ("system", "metric", "baseline", "new", "diff", "CI of diff", "test", "better when", "tolerance",
                "verdict"):
        table.add_column(col, justify="right" if col in ("baseline", "new", "diff") else "left")
    colour = {"better": "green", "worse": "red", "same": "white"}
    for r in frame.itertuples():
        system = r.system_new if r.system_baseline == r.system_new else f"{r.system_baseline} -> {r.system_new}"
        ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]" if math.isfinite(r.ci_low) else "-"
        verdict = f"[{colour.get(r.verdict, 'yellow')}]{r.verdict}[/]"
        if r.regressed:
            verdict += " [bold red]REGRESSION[/]"
        if r.note:
            verdict += f" ({r.note})"
        table.add_row(system, r.metric, _fmt(r.baseline), _fmt(r.new), _fmt(r.diff), ci, str(r.ci_method),
                      r.direction.replace(" is better", ""), r.tolerance or "-", verdict)
    Console(width=200).print(table)
    from ..progress import info

    for note in frame.attrs.get("comparability", []):
        info(f"comparability: {note}")


def print_history(frame, name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ledger history of {name}")
    for col in ("timestamp", "kind", "checkpoint", "hash", "system", "metric", "value", "CI", "status", "git"):
        table.add_column(col)
    for r in frame.itertuples():
        ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]" if r.ci_low is not None and math.isfinite(r.ci_low) else "-"
        table.add_row(str(r.timestamp), str(r.kind), str(r.checkpoint), str(r.checkpoint_hash or "")[:10],
                      str(r.system), str(r.metric), _fmt(r.value), ci, str(r.status), str(r.git_commit or "")[:8])
    Console(width=200).print(table)


def _save(frame, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    elif out.suffix == ".json":
        frame.to_json(out, orient="records", indent=1)
    else:
        frame.to_csv(out, index=False)
    return out


def main(
    baseline: Optional[str] = typer.Argument(None, help="Baseline results file (.parquet/.csv), or a checkpoint / preset / hub name."),
    new: Optional[str] = typer.Argument(None, help="New results file, or a checkpoint / preset / hub name."),
    metric: List[str] = typer.Option([], "--metric", "-m", help="Tolerance METRIC:+AMOUNT or METRIC:+PCT% (how much worse it may get); repeatable."),
    only_listed: bool = typer.Option(False, "--only-listed", help="Only metrics given with --metric can fail the comparison."),
    strict: bool = typer.Option(False, "--strict", help="A metric that was ok in BASELINE but failed or is missing in NEW is a regression."),
    allow_unknown: bool = typer.Option(False, "--allow-unknown", help="Compare results that do not record their reference identity, model weights, protocol or prompt ids (older files, no .per_sample file); what could not be checked is printed. Results known to differ are always refused."),
    system_baseline: Optional[str] = typer.Option(None, "--system-baseline", help="System of BASELINE to compare (when the file has several)."),
    system_new: Optional[str] = typer.Option(None, "--system-new", help="System of NEW to compare."),
    bootstrap: int = typer.Option(2000, "--bootstrap", help="Paired bootstrap resamples for the interval of a difference."),
    ci: float = typer.Option(0.95, "--ci", help="Confidence level of the intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap (and of generation for checkpoints)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the comparison table (.csv, .parquet or .json)."),
    ledger: Optional[Path] = typer.Option(None, "--ledger", help="Results ledger (SQLite); default ~/.cache/magnet-eval/ledger.sqlite."),
    no_ledger: bool = typer.Option(False, "--no-ledger", help="Do not append this comparison to the ledger."),
    name_baseline: Optional[str] = typer.Option(None, "--name-baseline", help="Checkpoint name of BASELINE in the ledger (default: its system or path)."),
    name_new: Optional[str] = typer.Option(None, "--name-new", help="Checkpoint name of NEW in the ledger."),
    history: Optional[str] = typer.Option(None, "--history", help="List the ledger history of a checkpoint (name, system or hash prefix) and exit."),
    history_metric: Optional[str] = typer.Option(None, "--history-metric", help="With --history: only this metric."),
    prompts: Optional[str] = typer.Option(None, "--prompts", help="Checkpoints: prompts manifest (.jsonl / folder) or one literal prompt."),
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="Checkpoints: reference audio manifest/folder or statistics (.npz)."),
    metrics: str = typer.Option("fad,kl_musicnn", "--metrics", help="Checkpoints: metrics to evaluate."),
    embedder: str = typer.Option("musicnn", "--embedder", "-e", help="Checkpoints: FAD embedder."),
    duration: float = typer.Option(10.0, "--duration", help="Checkpoints: seconds per generated clip."),
    batch_size: int = typer.Option(4, "--batch-size", help="Checkpoints: generation batch size."),
    device: str = typer.Option("cpu", "--device", help="Checkpoints: cpu or cuda."),
    work_dir: Path = typer.Option(Path("compare-runs"), "--work-dir", help="Checkpoints: where generated audio and results go."),
) -> None:
    """Compare NEW against BASELINE metric by metric; exit 1 when a metric regresses beyond its tolerance."""
    from ..compare import compare_results, evaluate_checkpoint, exit_code, is_results_file, parse_tolerance
    from ..errors import MagnetEvalError
    from ..ledger import Ledger, checkpoint_hash
    from ..progress import info
    from ..validate import non_negative_int, probability, writable_output

    # options first: a bad value or unwritable output stops before anything is generated or read
    non_negative_int("--bootstrap", bootstrap)
    probability("--ci", ci, low_open=True, high_open=True)
    if out is not None:
        writable_output(out, "--out")
    if not no_ledger and not history:
        Ledger(ledger).check_appendable()
    if history:
        frame = Ledger(ledger).history(history, history_metric)
        if len(frame) == 0:
            known = Ledger(ledger).names()
            listing = ", ".join(map(str, known["checkpoint"].tolist()[-20:])) or "(the ledger is empty)"
            raise MagnetEvalError(f"no ledger rows for {history!r}; known checkpoints: {listing}")
        print_history(frame, history)
        if out:
            info(f"wrote {_save(frame, out)}")
        return
    if not baseline or not new:
        raise MagnetEvalError("give BASELINE and NEW (results files or checkpoints), or --history NAME")
    tolerances = [parse_tolerance(t) for t in metric]

    hashes = {"baseline": "", "new": ""}
    paths = {"baseline": baseline, "new": new}
    if not (is_results_file(baseline) and is_results_file(new)):
        for side, spec in list(paths.items()):
            if is_results_file(spec):
                continue
            if Path(spec).suffix in (".parquet", ".csv"):
                raise MagnetEvalError(f"{spec}: results file does not exist")
            if not prompts:
                raise MagnetEvalError(f"{spec} is not a results file: comparing checkpoints needs --prompts "
                                      "(and --reference) so both are generated on the same prompts and seeds")
            hashes[side] = checkpoint_hash(spec)
            label = (name_baseline if side == "baseline" else name_new) or f"{side}-{Path(spec).stem or spec}"
            info(f"{side}: generating and evaluating {spec}")
            paths[side] = str(evaluate_checkpoint(spec, prompts, reference, work_dir, name=label,
                                                  metrics=[m for m in metrics.split(",") if m.strip()],
                                                  embedder=embedder, duration=duration, seed=seed,
                                                  batch_size=batch_size, device=device))
    from ..progress import fail

    try:
        frame = compare_results(paths["baseline"], paths["new"], tolerances, system_baseline=system_baseline,
                                system_new=system_new, only_listed=only_listed, strict=strict,
                                allow_unknown=allow_unknown, n_boot=bootstrap, ci=ci, seed=seed)
    except MagnetEvalError as exc:  # not comparable, unreadable: exit 2, never 1 (a regression) or 0
        fail(str(exc))
        raise typer.Exit(code=2) from None
    if len(frame) == 0:
        raise MagnetEvalError("the two results have no metric in common")
    print_comparison(frame)
    if out:
        info(f"wrote {_save(frame, out)}")
    if not no_ledger:
        _record(Ledger(ledger), frame, paths, hashes, name_baseline, name_new)
    code = exit_code(frame)
    bad = frame[frame.regressed]
    if code:
        info(f"[red]regression[/red] in {', '.join(sorted(set(bad.metric)))}")
    else:
        info("no regression")
    raise typer.Exit(code=code)


def _record(ledger, frame, paths: dict, hashes: dict, name_baseline: Optional[str], name_new: Optional[str]) -> None:
    """The NEW side's metric rows (kind compare) and the differences with verdicts (kind compare-diff)."""
    import uuid

    import pandas as pd

    from ..compare import load_results

    run = uuid.uuid4().hex[:12]
    new_res, _ = load_results(paths["new"])
    base_label = name_baseline or ", ".join(dict.fromkeys(frame.system_baseline))
    ledger.append(new_res, kind="compare", checkpoint=name_new, checkpoint_hash=hashes["new"],
                  baseline=base_label, source=paths["new"], run_id=run)
    diffs = pd.DataFrame({
        "system": frame.system_new, "metric": frame.metric, "value": frame["diff"], "ci_low": frame.ci_low,
        "ci_high": frame.ci_high,
        "status": [v + (" (regression)" if r else "") for v, r in zip(frame.verdict, frame.regressed)],
    })
    ledger.append(diffs, kind="compare-diff", checkpoint=name_new, checkpoint_hash=hashes["new"],
                  baseline=base_label, source=paths["new"], run_id=run)
