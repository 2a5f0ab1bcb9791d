"""What a run shows and leaves to read: the CSV log, the loss-curve PNG, the progress-bar columns."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from rich.progress import ProgressColumn
from rich.text import Text

from ..files import atomic_write
from ..progress import warn

LOG_NAME = "train_log.csv"
PLOT_NAME = "loss_curve.png"


class TrainLog:
    """The CSV training log: one row per logged train step or validation, rewritten whole (it is small)."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        self.rows: list[dict] = []
        if path.exists() and resume_step > 0:
            import pandas as pd

            try:
                old = pd.read_csv(path)
                old = old[old["step"] <= resume_step]
                self.rows = [{k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))} for r in old.to_dict("records")]
            except Exception:
                warn(f"could not read the old log {path}; starting a new one")

    def add(self, row: dict) -> None:
        self.rows.append(row)

    def write(self) -> None:
        import pandas as pd

        cols: list[str] = []
        for r in self.rows:
            cols += [k for k in r if k not in cols]
        df = pd.DataFrame(self.rows, columns=cols)
        with atomic_write(self.path) as f:
            df.to_csv(f, index=False)


def plot_log(log_csv: Path, out_png: Path, title: str = "") -> Optional[Path]:
    """Loss curves (train, validation), then validation accuracies, then each other validation metric."""
    import pandas as pd

    df = pd.read_csv(log_csv)
    if df.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = df[df["phase"] == "train"]
    valid = df[df["phase"] == "valid"]
    metrics = [c for c in valid.columns if c.startswith("valid_") and "loss" not in c and valid[c].notna().any()]
    accuracy = [c for c in metrics if "accuracy" in c]
    others = [c for c in metrics if c not in accuracy][:3]
    panels = 1 + bool(accuracy) + len(others)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    ax = axes[0, 0]
    if not train.empty:
        ax.plot(train["step"], train["loss"], label="train loss", lw=1)
    if "valid_loss" in valid and valid["valid_loss"].notna().any():
        ax.plot(valid["step"], valid["valid_loss"], "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or "training")
    ax.grid(alpha=0.3)
    ax.legend()
    i = 1
    if accuracy:
        ax = axes[0, i]
        for c in accuracy:
            bold = c in ("valid_accuracy", "valid_unigram_accuracy")
            ax.plot(valid["step"], valid[c], "o-" if bold else "-", lw=2 if bold else 0.8, label=c[len("valid_"):])
        ax.set_xlabel("step")
        ax.set_title("validation accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        i += 1
    for c in others:
        ax = axes[0, i]
        ax.plot(valid["step"], valid[c], "o-")
        ax.set_xlabel("step")
        ax.set_title(c[len("valid_"):].replace("_", " "))
        ax.grid(alpha=0.3)
        i += 1
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def last_valid_metrics(log_csv: Path) -> dict[str, float]:
    """The last validation row of a log (a finished run's metrics when the loop did not hold them)."""
    import pandas as pd

    if not log_csv.exists():
        return {}
    df = pd.read_csv(log_csv)
    v = df[df["phase"] == "valid"]
    if v.empty:
        return {}
    row = v.iloc[-1]
    return {k: float(row[k]) for k in v.columns if k.startswith("valid_") and not pd.isna(row[k])}


class LossColumn(ProgressColumn):
    def render(self, task) -> Text:
        loss = task.fields.get("loss", float("nan"))
        return Text("loss " + ("--" if loss != loss else f"{loss:.3f}"))


class RateColumn(ProgressColumn):
    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        rate = task.fields.get("rate", 0.0)
        return Text(f"{rate:,.0f} {self.unit}/s")
