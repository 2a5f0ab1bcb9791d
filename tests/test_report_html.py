"""The HTML report in headless Chromium: no console errors, audio players that load, a screenshot."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from magnet_eval.report import build_report
from magnet_eval.report.browser import check_page, find_chromium

from test_report import latency_frame, results_frame

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")


def _generated_folder(folder: Path, freq: float, ids: list[str]) -> Path:
    """A folder like `generate` writes: {id}.wav + manifest.jsonl with captions."""
    from magnet_eval.audio import save_audio
    from magnet_eval.manifest import Manifest, ManifestEntry

    sr = 16000
    t = np.arange(sr // 2) / sr
    entries = []
    for k, i in enumerate(ids):
        path = save_audio(folder / f"{i}.wav", 0.2 * np.sin(2 * np.pi * freq * (1 + k / 8) * t), sr)
        entries.append(ManifestEntry(i, f"prompt {i}: calm piano & strings <test>", str(path)))
    Manifest(entries).write(folder / "manifest.jsonl")
    return folder


def test_report_page_in_chromium(tmp_path):
    ids = [f"clip{i}" for i in range(5)]
    audio = {"magnet-tiny": _generated_folder(tmp_path / "gen_magnet", 330.0, ids),
             "musicgen-tiny": _generated_folder(tmp_path / "gen musicgen", 440.0, ids)}  # a space in the path
    res = pd.concat([results_frame("magnet-tiny", 4.2, 1.1, 0.3), results_frame("musicgen-tiny", 4.9, 1.4, 0.5)])
    lat = tmp_path / "latency.csv"
    latency_frame().to_csv(lat, index=False)
    index = build_report([res], tmp_path / "report", latency_csv=lat, audio_dirs=audio, title="Chromium test",
                         n_audio=4)
    # the page must work when the folder moves: nothing may point back at the sources
    moved = tmp_path / "moved report"
    shutil.move(str(tmp_path / "report"), moved)
    shutil.rmtree(tmp_path / "gen_magnet")
    page = moved / index.name
    shot = tmp_path / "screenshot.png"
    result = check_page(page, shot)
    assert result.console_errors == []
    assert result.title == "Chromium test"
    assert len(result.audio) == 4 * 2
    assert result.missing_audio == []
    assert result.unplayable_audio == []
    # decoded by the browser (Ogg Vorbis listening copies may carry a few ms of codec padding)
    assert all(a["duration"] == pytest.approx(0.5, abs=0.03) for a in result.audio), result.audio
    assert all(a["url"].startswith(moved.as_uri()) for a in result.audio)  # relative to the page
    assert len(result.images) == 2 and all(i["complete"] and i["width"] > 300 for i in result.images)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    html = page.read_text()
    assert "weights not available" in html and "&lt;test&gt;" in html  # captions are escaped


def test_check_page_reports_problems(tmp_path):
    """The checker itself: a broken page is caught (so the test above can fail)."""
    (tmp_path / "a.wav").write_bytes(b"RIFF this is not audio")
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
                    "<title>bad</title></head><body>"
                    '<audio controls src="missing.wav"></audio><audio controls src="a.wav"></audio>'
                    "<script>console.error('boom'); notDefined();</script></body></html>")
    result = check_page(page, audio_wait_ms=3000)
    text = "\n".join(result.console_errors)
    assert "boom" in text and "notDefined" in text
    assert result.missing_audio == ["missing.wav"]
    assert set(result.unplayable_audio) == {"missing.wav", "a.wav"}
    assert not result.ok


def test_report_cli_check(tmp_path):
    from typer.testing import CliRunner

    from magnet_eval.cli import app

    r = tmp_path / "r.parquet"
    results_frame("magnet-tiny", 4.2, 1.1, 0.3).to_parquet(r, index=False)
    gen = _generated_folder(tmp_path / "gen", 330.0, ["a", "b"])
    res = CliRunner().invoke(app, ["report", str(r), "--out", str(tmp_path / "rep"), "--audio-dirs",
                                   f"magnet-tiny={gen}", "--title", "CLI report", "--check"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rep" / "screenshot.png").is_file()
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "magnet-eval report" in page and "--check" in page  # the command line is on the page
    assert page.count("<audio") == 2
