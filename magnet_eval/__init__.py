"""magnet-eval: train, load, generate from and measure masked non-autoregressive audio generators."""

__version__ = "0.1.0"
