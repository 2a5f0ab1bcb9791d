"""Loading a file never runs code from it; what the official files hold still loads; shared files are 0644.

Each loader entry point (LM export, codec export / HF folder / torch-hub file, training resume
file, every embedder weight reader) is handed a pickle whose payload would create a file when
unpickled freely: it must raise CheckpointError naming the file, and the file must not exist.
"""

from __future__ import annotations

import ast
import io
import json
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from magnet_eval.errors import CheckpointError
from magnet_eval.files import atomic_write, file_sha1, load_torch
from magnet_eval.paths import cache_dir

REAL_CACHE = cache_dir()  # before the fixtures below point the caches at tmp_path (the wheels live here)


class OpenPayload:
    """Unpickled freely, this creates (truncates) `target`."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


class SystemPayload:
    """Unpickled freely, this runs a shell command that creates `target`."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.fixture(params=[OpenPayload, SystemPayload], ids=["open", "os.system"])
def payload(request, tmp_path):
    target = tmp_path / "created_by_unpickling"
    return request.param(target), target


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def evil_file(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def assert_refused(call, path: Path, target: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        call()
    assert str(path.name) in str(info.value)
    assert "refused" in str(info.value)
    assert not target.exists(), "the pickle's payload ran"


# ---- LM and codec exports -----------------------------------------------------------------------
def test_lm_export_with_payload_is_refused(payload, tmp_path):
    from magnet_eval.models.checkpoints import load_lm, resolve_lm_checkpoint

    obj, target = payload
    path = evil_file(tmp_path / "lm" / "state_dict.bin", {"best_state": {"emb.0.weight": obj}, "xp.cfg": "a: 1"})
    assert_refused(lambda: load_lm(path), path, target)
    assert_refused(lambda: load_lm(resolve_lm_checkpoint(path.parent)), path, target)  # the folder form


def test_codec_files_with_payload_are_refused(payload, tmp_path):
    from magnet_eval.models.codec import load_codec, load_hf_encodec

    obj, target = payload
    path = evil_file(tmp_path / "codec" / "compression_state_dict.bin", {"best_state": obj, "xp.cfg": "a: 1"})
    assert_refused(lambda: load_codec(path), path, target)
    assert_refused(lambda: load_codec(path.parent), path, target)
    hf = tmp_path / "hf"
    evil_file(hf / "pytorch_model.bin", {"encoder.layers.0.conv.weight": obj})
    (hf / "config.json").write_text(json.dumps({"model_type": "encodec"}))
    assert_refused(lambda: load_hf_encodec(hf), hf / "pytorch_model.bin", target)
    hub_file = evil_file(tmp_path / "torch" / "hub" / "checkpoints" / "encodec_24khz-d7cc33bc.th", obj)
    assert_refused(lambda: load_codec("encodec_24khz"), hub_file, target)


# ---- training resume file -----------------------------------------------------------------------
def test_resume_checkpoint_with_payload_is_refused(payload, tmp_path):
    from magnet_eval.solvers.base import load_checkpoint

    obj, target = payload
    path = evil_file(tmp_path / "run" / "checkpoint.pt", {"model": {}, "optimizer": obj, "scheduler": {},
                                                            "step": 1, "config_hash": "x"})
    assert_refused(lambda: load_checkpoint(path), path, target)


def test_resume_checkpoint_rng_state_loads_weights_only_and_restores(tmp_path):
    from magnet_eval.solvers.checkpoint import rng_state, set_rng_state

    np.random.seed(3)
    random.seed(4)
    torch.manual_seed(5)
    path = tmp_path / "rng.pt"
    torch.save({"rng": [rng_state()]}, path)
    want = (np.random.rand(3), random.random(), torch.rand(2))
    state = torch.load(path, weights_only=True)["rng"][0]  # plain torch, no allow-list: tensors and plain values
    set_rng_state(state)
    got = (np.random.rand(3), random.random(), torch.rand(2))
    assert np.array_equal(want[0], got[0]) and want[1] == got[1] and torch.equal(want[2], got[2])


# ---- embedder weights ---------------------------------------------------------------------------
def test_embedder_weight_files_with_payload_are_refused(payload, tmp_path):
    from magnet_eval.embedders import aisfx, clap, musicnn
    from magnet_eval.embedders.encodec import EncodecEmbedder
    from magnet_eval.embedders.pann import PANNEmbedder
    from magnet_eval.embedders.vggish import VGGishEmbedder

    obj, target = payload
    path = evil_file(tmp_path / "w" / "weights.pth", {"state_dict": obj, "model": obj})
    assert_refused(lambda: clap.read_state_dict(path), path, target)
    assert_refused(lambda: PANNEmbedder(device="cpu").load(path), path, target)
    assert_refused(lambda: VGGishEmbedder(device="cpu").load(path), path, target)
    assert_refused(lambda: EncodecEmbedder(device="cpu").load(path), path, target)
    pt = evil_file(tmp_path / "w" / "musicnn.pt", {"model": "MTT_musicnn", "state_dict": obj})
    assert_refused(lambda: musicnn.load_converted("MTT_musicnn", pt), pt, target)
    buf = io.BytesIO()
    torch.save(({"w": obj}, {"head": (0, 2)}), buf)
    assert_refused(lambda: aisfx.load_checkpoint(buf.getvalue(), "aisfx-evil/checkpoint.pth"),
                   Path("checkpoint.pth"), target)
    assert_refused(lambda: aisfx.AisfxEmbedder(device="cpu").load(path), path, target)


def test_vggish_pca_file_with_payload_is_refused(payload, tmp_path, monkeypatch):
    from magnet_eval.embedders import vggish

    obj, target = payload
    monkeypatch.setattr(vggish, "build_network", lambda: torch.nn.Module())  # an empty net fits the empty weights
    weights = evil_file(tmp_path / "v" / vggish.WEIGHTS_FILE, {})
    pca = evil_file(tmp_path / "v" / vggish.PCA_FILE, {"pca_eigen_vectors": obj, "pca_means": obj})
    assert_refused(lambda: vggish.VGGishEmbedder(device="cpu", postprocess=True).load(weights), pca, target)


def test_passt_weights_with_payload_are_refused(payload, tmp_path):
    pytest.importorskip("hear21passt")
    from magnet_eval.embedders.classifiers import PasstClassifier

    obj, target = payload
    path = evil_file(tmp_path / "p" / "passt.pt", {"model": obj})
    assert_refused(lambda: PasstClassifier(device="cpu").load(path), path, target)


# ---- what official files hold still loads ---------------------------------------------------------
def test_numeric_numpy_content_loads_and_object_arrays_do_not(tmp_path):
    rs = np.random.RandomState(0)
    official_like = {"model": {"w": torch.ones(2)}, "iteration": 10, "epoch": np.float64(3.5),
                     "sampler": {"random_state": rs.get_state(), "indexes": [np.arange(4, dtype=np.int64)]},
                     "pca_means": np.zeros((128, 1), np.float32), "heads": {"a": (np.int64(0), np.int64(78))}}
    path = evil_file(tmp_path / "ok.pth", official_like)
    back = load_torch(path)
    assert back["epoch"] == 3.5 and back["heads"]["a"] == (0, 78)
    assert np.array_equal(back["sampler"]["random_state"][1], rs.get_state()[1])
    assert back["pca_means"].dtype == np.float32 and torch.equal(back["model"]["w"], torch.ones(2))
    bad = evil_file(tmp_path / "objects.pth", {"x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(CheckpointError, match="objects.pth"):
        load_torch(bad)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = evil_file(tmp_path / "full.pt", {"a": torch.ones(3)})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="cut.pt.*not a readable torch file"):
        load_torch(cut)


def test_real_aisfx_wheel_checkpoint_loads(monkeypatch):
    from magnet_eval.embedders import aisfx

    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(REAL_CACHE))
    from magnet_eval.weights import MissingWeightsError, read_from_wheel

    try:
        blob = read_from_wheel("aisfx", aisfx.WHEEL_MEMBER)
    except MissingWeightsError:
        pytest.skip("the aisfx wheel is not cached")
    sd, heads = aisfx.load_checkpoint(blob, "aisfx wheel")
    assert sd and all(isinstance(v, torch.Tensor) for v in sd.values())
    assert heads and all(isinstance(a, int) and isinstance(b, int) for a, b in heads.values())


# ---- files written for sharing --------------------------------------------------------------------
@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_atomic_write_mode_follows_umask_and_leaves_no_temp(tmp_path, umask_022):
    path = tmp_path / "a" / "x.bin"
    with atomic_write(path) as f:
        f.write(b"abc")
    assert path.read_bytes() == b"abc" and _mode(path) == 0o644
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write(b"partial")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"abc" and sorted(p.name for p in path.parent.iterdir()) == ["x.bin"]
    os.umask(0o077)
    with atomic_write(tmp_path / "private.bin") as f:
        f.write(b"p")
    assert _mode(tmp_path / "private.bin") == 0o600
    assert file_sha1(path) == "a9993e364706816aba3e25717850c26c9cd0d89d"  # sha1("abc")


def test_reference_stats_and_cache_entries_are_readable_by_others(tmp_path, umask_022):
    from magnet_eval.embedding_cache import EmbeddingCache
    from magnet_eval.reference_stats import ReferenceStats

    cache = EmbeddingCache(tmp_path / "cache")
    entry = cache.save(cache.path("ab" * 20, "e", "w", 16000), np.ones((2, 3), np.float32))
    assert _mode(entry) == 0o644
    stats = ReferenceStats(mean=np.zeros(4), cov=np.eye(4), count=20, provenance={"embedder": "e"})
    out = stats.save(tmp_path / "ref" / "stats.npz")
    assert _mode(out) == 0o644


def _torch_load_calls(path: Path) -> list[ast.Call]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
            calls.append(node)
    return calls


def test_no_torch_load_runs_code_in_the_package():
    """No `weights_only=False` anywhere; a direct torch.load (files.load_torch is the one reader) says weights_only=True."""
    root = Path(__file__).resolve().parents[1] / "magnet_eval"
    assert not [str(p) for p in root.rglob("*.py") if "weights_only=False" in p.read_text()]
    unsafe = []
    for p in root.rglob("*.py"):
        for call in _torch_load_calls(p):
            kw = {k.arg: k.value for k in call.keywords}
            ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
            if not ok:
                unsafe.append(f"{p.relative_to(root)}:{call.lineno}")
    assert not unsafe, unsafe
