"""Solvers: the training side (audiocraft's `solvers/` layout).

- `masking`: MAGNeT's cosine schedule, Appendix-C span-count lookup, span masks, stage choice.
- `interface`: what a solver implements (`Solver`, `StepOutput`, `StepRandom`) and what defines a run
  (`TrainConfig`, `config_hash`, `TrainResult`).
- `base`: the shared loop `fit(solver, TrainConfig, out_dir)` (clipping, GPU autocast, DDP, progress bar,
  periodic checkpoints, exact resumption), built from:
  `optim` (AdamW groups, warm-up + cosine, EMA, autocast dtype), `checkpoint` (checkpoint and RNG state,
  the done marker, weight checksums) and `train_log` (CSV log, loss-curve PNG, progress columns).
- `text_lm`: the step the MAGNeT and MusicGen solvers share (crop, condition dropout, export).
- `tokens`: codec tokens and text-encoder outputs computed once and cached on disk.
- `magnet`, `musicgen`, `codec`: the three objectives.
- `distributed`: torchrun / DDP helpers.
- `recipes`: `train_codec`, `train_magnet`, `train_musicgen`, `train_tiny_suite` (what the CLI calls).
"""
