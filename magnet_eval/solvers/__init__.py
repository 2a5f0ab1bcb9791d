"""Solvers: the training side (audiocraft's `solvers/` layout).

- `masking`: MAGNeT's cosine schedule, Appendix-C span-count lookup, span masks, stage choice.
- `base`: the shared loop `fit(solver, TrainConfig, out_dir)` (AdamW, warm-up + cosine, clipping, EMA,
  GPU autocast, DDP, progress bar, CSV log, loss-curve PNG, checkpoints, exact resumption).
- `tokens`: codec tokens and text-encoder outputs computed once and cached on disk.
- `magnet`, `musicgen`, `codec`: the three objectives.
- `distributed`: torchrun / DDP helpers.
- `recipes`: `train_codec`, `train_magnet`, `train_musicgen`, `train_tiny_suite` (what the CLI calls).
"""
