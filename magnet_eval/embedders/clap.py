"""LAION-CLAP audio and text embeddings through laion_clap's own model code, offline and deterministic.

Checkpoints (HF repo `lukewys/laion_clap`): `music_audioset_epoch_15_esc_90.14.pt` (HTSAT-base,
the default, as audiocraft's CLAP score), `music_speech_audioset_epoch_15_esc_89.98.pt`
(HTSAT-base), `630k-audioset-best.pt` (HTSAT-tiny, embedder `clap-630k`), ... found in the
Hugging Face cache (`$HF_HOME/hub/models--lukewys--laion_clap/snapshots/*/`), in the torch hub
folder (where frechet-audio-distance saves them), or given as a path.

Loading differs from `laion_clap.CLAP_Module` on purpose:
- `CLAP_Module` calls `RobertaModel.from_pretrained('roberta-base')` at construction (offline
  that needs roberta-base's weights in the HF cache) although every text-branch weight is then
  overwritten by the CLAP checkpoint. Here the RoBERTa text branch is built from a config read
  off the checkpoint's own tensor shapes (vocabulary, width, layers, positions) and filled by
  the checkpoint, so audio embeddings need no roberta-base files at all.
- Text embeddings need the roberta-base *tokenizer* (vocab.json + merges.txt, or
  tokenizer.json) from the HF cache (`roberta-base` or `FacebookAI/roberta-base`): absent, a
  MissingWeightsError names them; a dummy placeholder tokenizer is refused
  (`offline.assert_real_tokenizer`). Texts are tokenized to 77 tokens (padding + truncation).
- `text_branch.embeddings.position_ids` (saved by old transformers) is dropped; a leading
  `module.` (DataParallel) is stripped; the state dict must then match exactly.

Audio (as `CLAP_Module.get_audio_embedding_from_data`): 48 kHz mono, quantised to int16 and
back, HTSAT's mel front end, projection, L2-normalised 512-d. laion_clap crops clips longer
than 10 s at a *random* offset; here no input to laion_clap is ever longer than 10 s:

Clip handling: consecutive 10 s windows from the start; when the clip has at least one full
window, a shorter tail is dropped; a clip of 10 s or less is one window, repeat-padded to 10 s
by laion_clap ('repeatpad', deterministic). One unit-norm 512-d frame per window, so the same
audio always gets the same embedding.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, MagnetEvalError, MissingWeightsError
from ..files import file_sha1, load_torch
from ..paths import find_hf_file, find_weights, hf_repo_dir, torch_hub_dir
from .base import Embedder, load_strict, make_weights_id, skip_random_init

SAMPLE_RATE = 48000
WINDOW_SECONDS = 10.0
MAX_TOKENS = 77
HF_REPO = "lukewys/laion_clap"
DEFAULT_CHECKPOINT = "music_audioset_epoch_15_esc_90.14.pt"
CHECKPOINTS = {  # file -> audio tower
    "music_audioset_epoch_15_esc_90.14.pt": "HTSAT-base",
    "music_speech_audioset_epoch_15_esc_89.98.pt": "HTSAT-base",
    "music_speech_epoch_15_esc_89.25.pt": "HTSAT-base",
    "630k-audioset-best.pt": "HTSAT-tiny",
    "630k-best.pt": "HTSAT-tiny",
}
TOKENIZER_REPOS = ("roberta-base", "FacebookAI/roberta-base")
# HTSAT patch-embedding width -> laion_clap audio model config
_HTSAT_BY_WIDTH = {96: "HTSAT-tiny", 128: "HTSAT-base", 256: "HTSAT-large"}


def checkpoint_candidates(filename: str) -> list[Path]:
    """Where a CLAP checkpoint is looked for: the HF cache snapshot, then the torch hub folder."""
    hf = find_hf_file(HF_REPO, filename)
    return [hf or hf_repo_dir(HF_REPO) / "snapshots" / "*" / filename, torch_hub_dir() / filename]


def read_state_dict(path: Path) -> dict:
    """The model state dict of a CLAP checkpoint: 'state_dict' entry, `module.` stripped, position_ids dropped."""
    ckpt = load_torch(path)  # the released files also hold training state: numpy scalars, plain values
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError(f"{path}: expected a CLAP state dict (or a dict with 'state_dict')")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    sd.pop("text_branch.embeddings.position_ids", None)
    return sd


def audio_model_of(sd: dict, filename: str = "") -> str:
    """laion_clap's audio config name (HTSAT-tiny/base/large) from the checkpoint's patch-embedding width."""
    w = sd.get("audio_branch.patch_embed.proj.weight")
    if w is not None and int(w.shape[0]) in _HTSAT_BY_WIDTH:
        return _HTSAT_BY_WIDTH[int(w.shape[0])]
    if filename in CHECKPOINTS:
        return CHECKPOINTS[filename]
    raise CheckpointError(f"cannot tell the CLAP audio tower of {filename or 'this checkpoint'} "
                          "(no audio_branch.patch_embed.proj.weight): only HTSAT checkpoints are supported")


def roberta_config_of(sd: dict):
    """A RobertaConfig that fits the checkpoint's text branch (roberta-base's, for the released files)."""
    from transformers import RobertaConfig

    try:
        vocab, hidden = sd["text_branch.embeddings.word_embeddings.weight"].shape
        max_pos = sd["text_branch.embeddings.position_embeddings.weight"].shape[0]
        type_vocab = sd["text_branch.embeddings.token_type_embeddings.weight"].shape[0]
        inter = sd["text_branch.encoder.layer.0.intermediate.dense.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"CLAP checkpoint has no RoBERTa text branch (missing {exc})") from exc
    layers = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"text_branch\.encoder\.layer\.(\d+)\.", k)))
    return RobertaConfig(vocab_size=int(vocab), hidden_size=int(hidden), num_hidden_layers=layers,
                         num_attention_heads=max(1, int(hidden) // 64), intermediate_size=int(inter),
                         max_position_embeddings=int(max_pos), type_vocab_size=int(type_vocab),
                         layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)


@contextlib.contextmanager
def _roberta_from_config(config):
    """While laion_clap builds CLAP, make its `RobertaModel.from_pretrained('roberta-base')` build from `config`.

    The text-branch weights all come from the CLAP checkpoint, so nothing is read from the hub.
    """
    import sys

    from transformers import RobertaModel

    module = sys.modules.get("clap_module.model")
    if module is None:
        raise MagnetEvalError("laion_clap's clap_module.model is not imported")

    class _FromConfig:
        @staticmethod
        def from_pretrained(*_args, **_kwargs):
            return RobertaModel(config, add_pooling_layer=True)

    original = module.RobertaModel
    module.RobertaModel = _FromConfig
    try:
        yield
    finally:
        module.RobertaModel = original


def find_tokenizer_dir() -> Path | None:
    """The cached roberta-base snapshot folder holding tokenizer files, or None."""
    for repo in TOKENIZER_REPOS:
        for name in ("tokenizer.json", "vocab.json"):
            hit = find_hf_file(repo, name)
            if hit is not None and (name == "tokenizer.json" or (hit.parent / "merges.txt").exists()):
                return hit.parent
    return None


def load_tokenizer(path: str | Path | None = None):
    """The real roberta-base tokenizer from a folder or the HF cache; MissingWeightsError otherwise."""
    from ..offline import assert_real_tokenizer

    folder = Path(path).expanduser() if path else find_tokenizer_dir()
    where = str(hf_repo_dir("roberta-base") / "snapshots" / "<revision>")
    if folder is None or not folder.exists():
        raise MissingWeightsError(
            "The roberta-base tokenizer (vocab.json + merges.txt, or tokenizer.json) is not in the Hugging Face "
            f"cache; CLAP text embeddings need it.\nPut the files at: {where}/\n"
            "Official source: https://huggingface.co/FacebookAI/roberta-base")
    from transformers import RobertaTokenizer

    try:
        tok = RobertaTokenizer.from_pretrained(str(folder), local_files_only=True)
    except OSError as exc:  # a file of the tokenizer missing from the folder
        raise MissingWeightsError(f"cannot load the roberta-base tokenizer from {folder}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001  (a transformers API change or a broken file: not missing weights)
        from ..errors import ModelLoadError

        raise ModelLoadError(f"cannot build the roberta-base tokenizer from {folder} "
                             f"({type(exc).__name__}: {exc})") from exc
    assert_real_tokenizer(tok, "roberta-base", where)
    return tok


class CLAPEmbedder(Embedder):
    """L2-normalised 512-d LAION-CLAP audio embeddings per 10 s window, and text embeddings."""

    sample_rate = SAMPLE_RATE
    dim = 512
    clip_handling = ("48 kHz; consecutive 10 s windows from the start, a shorter tail dropped when a full window "
                     "exists, clips of 10 s or less repeat-padded to 10 s; one unit-norm frame per window")

    def __init__(self, checkpoint: str = DEFAULT_CHECKPOINT, device: str | None = None,
                 tokenizer: str | Path | None = None, batch_size: int = 4, name: str | None = None) -> None:
        super().__init__(device)
        self.checkpoint = checkpoint
        self.name = name or ("clap" if checkpoint == DEFAULT_CHECKPOINT else f"clap-{Path(checkpoint).stem}")
        self.tokenizer_path = tokenizer
        self.batch_size = int(batch_size)
        self._tokenizer = None
        self.audio_model = ""

    def _load(self, weights: Path | None) -> None:
        from ..offline import import_laion_clap

        filename = weights.name if weights else self.checkpoint
        candidates = [weights] if weights else checkpoint_candidates(self.checkpoint)
        put_here = weights or hf_repo_dir(HF_REPO) / "snapshots" / "<revision>" / self.checkpoint
        path = find_weights(f"LAION-CLAP checkpoint {filename}", candidates, put_here=put_here,
                            source=f"https://huggingface.co/{HF_REPO}/blob/main/{filename}")
        sd = read_state_dict(path)
        amodel = audio_model_of(sd, filename)
        config = roberta_config_of(sd)
        import_laion_clap()
        import sys

        from clap_module import create_model  # laion_clap puts its folder on sys.path

        with _roberta_from_config(config), skip_random_init(sys.modules.get("clap_module.htsat")):
            model, model_cfg = create_model(amodel, "roberta", precision="fp32", device="cpu", enable_fusion=False)
        load_strict(model, sd, f"{path} does not fit laion_clap's {amodel} CLAP")
        self.model = model.to(self.device).eval()
        self.model_cfg = model_cfg
        self.audio_model = amodel
        self.checkpoint = filename
        self.weights_path = path
        self.weights_id = make_weights_id(file_sha1(path))

    # -- audio ---------------------------------------------------------------------------

    @staticmethod
    def windows(wav: np.ndarray) -> list[np.ndarray]:
        """The deterministic 10 s windows of a 48 kHz clip (see module docstring)."""
        win = int(WINDOW_SECONDS * SAMPLE_RATE)
        if wav.shape[0] <= win:
            return [wav]
        return [wav[s:s + win] for s in range(0, wav.shape[0] - win + 1, win)]

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        import torch
        from laion_clap.training.data import get_audio_features

        feats = []
        for piece in self.windows(wav):
            q = (np.clip(piece, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0
            feats.append(get_audio_features({}, torch.from_numpy(q), int(WINDOW_SECONDS * SAMPLE_RATE),
                                            data_truncating="rand_trunc", data_filling="repeatpad",
                                            audio_cfg=self.model_cfg["audio_cfg"], require_grad=False))
        out = []
        with torch.inference_mode():
            for s in range(0, len(feats), self.batch_size):
                out.append(self.model.get_audio_embedding(feats[s:s + self.batch_size]).float().cpu())
        return torch.cat(out).numpy()

    # -- text ----------------------------------------------------------------------------

    @property
    def tokenizer(self):
        """The roberta-base tokenizer (loaded on first use; MissingWeightsError if absent or a dummy)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer_path)
        return self._tokenizer

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """L2-normalised text embeddings [B, 512] (roberta-base tokens, 77 max, padded)."""
        import torch

        from ..offline import assert_real_tokenizer

        self._require_loaded()
        if isinstance(texts, str):
            texts = [texts]
        tok = self.tokenizer
        assert_real_tokenizer(tok, "roberta-base", str(hf_repo_dir("roberta-base")))
        out = []
        with torch.inference_mode():
            for s in range(0, len(texts), 32):
                batch = tok(list(texts[s:s + 32]), padding="max_length", truncation=True, max_length=MAX_TOKENS,
                            return_tensors="pt")
                data = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
                out.append(self.model.get_text_embedding(data).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), dtype=np.float32)
