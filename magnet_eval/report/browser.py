"""Open a report page in headless Chromium and check it: console errors, audio players, screenshot.

A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe` (file descriptors 3
and 4, NUL-terminated JSON messages), so no extra package (websockets, selenium) is needed.
Used by the tests and by `magnet-eval report --check`.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..errors import MagnetEvalError

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "chromium",
                       "chromium-browser", "google-chrome")

# resolves when every <audio> has its metadata (or failed), at most `ms` milliseconds
_AUDIO_JS = """
new Promise((resolve) => {
  const audios = Array.from(document.querySelectorAll('audio'));
  const report = () => audios.map(a => ({src: a.getAttribute('src'), url: a.currentSrc || a.src,
      readyState: a.readyState, duration: a.duration, error: a.error ? a.error.code : null}));
  const settled = () => audios.every(a => a.readyState >= 1 || a.error);
  const t0 = Date.now();
  const poll = () => { if (settled() || Date.now() - t0 > %d) resolve(report()); else setTimeout(poll, 50); };
  audios.forEach(a => { if (a.preload === 'none') a.load(); });
  poll();
})
"""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    env = os.environ.get("MAGNET_EVAL_CHROMIUM")
    for cand in ([env] if env else []) + list(CHROMIUM_CANDIDATES):
        path = shutil.which(cand) if not os.path.isabs(cand) else (cand if os.access(cand, os.X_OK) else None)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    """What the browser saw: console errors, every audio element, images, and the screenshot path."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    audio: list[dict] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    title: str = ""
    screenshot: Path | None = None

    @property
    def missing_audio(self) -> list[str]:
        """Audio src that do not point at an existing file, relative to the page."""
        base = Path(unquote(urlparse(self.url).path)).parent
        return [a["src"] for a in self.audio if not a.get("src") or not (base / unquote(a["src"])).is_file()]

    @property
    def unplayable_audio(self) -> list[str]:
        return [a["src"] for a in self.audio if a.get("error") is not None or (a.get("readyState") or 0) < 1]

    @property
    def ok(self) -> bool:
        return not self.console_errors and not self.missing_audio and not self.unplayable_audio


class _Pipe:
    """CDP over the two pipes: we write commands to Chromium's fd 3 and read replies/events on its fd 4."""

    def __init__(self, binary: str, user_dir: str, width: int, height: int):
        self._to_r, self._to_w = os.pipe()
        self._from_r, self._from_w = os.pipe()
        to_r, from_w = self._to_r, self._from_w

        def child_fds() -> None:  # runs in the child before exec: the protocol fds must be 3 and 4
            high_r = fcntl.fcntl(to_r, fcntl.F_DUPFD, 100)  # out of the way first: to_r / from_w may be 3 or 4
            high_w = fcntl.fcntl(from_w, fcntl.F_DUPFD, 100)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)
            os.close(high_r)
            os.close(high_w)

        # close_fds=False: only inheritable fds survive exec (Python's own are not, PEP 446), and
        # the dup2 copies made in child_fds are: exactly fds 3 and 4 reach Chromium
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--remote-debugging-pipe", f"--user-data-dir={user_dir}", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--mute-audio", "--hide-scrollbars", f"--window-size={width},{height}",
                "--autoplay-policy=no-user-gesture-required", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=child_fds)
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._next = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0) -> dict:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for m in self._read(deadline):
                if m.get("id") == self._next:
                    if "error" in m:
                        raise MagnetEvalError(f"Chromium: {method} failed: {m['error']}")
                    return m.get("result", {})
                self.events.append(m)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict | None:
        deadline = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while time.monotonic() < deadline:
            for m in self._read(deadline):
                if m.get("method") == method:
                    return m
                self.events.append(m)
        return None

    def _read(self, deadline: float) -> list[dict]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MagnetEvalError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_r], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(self._from_r, 1 << 20)
                if not chunk:
                    raise MagnetEvalError("Chromium closed the DevTools pipe (did it start?)")
                self._buf += chunk
            elif self.proc.poll() is not None:
                raise MagnetEvalError(f"Chromium exited with status {self.proc.returncode}")
        *msgs, self._buf = self._buf.split(b"\0")
        return [json.loads(m) for m in msgs if m]

    def close(self) -> None:
        try:
            os.write(self._to_w, json.dumps({"id": 10**9, "method": "Browser.close"}).encode() + b"\0")
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_w, self._from_r):
            try:
                os.close(fd)
            except OSError:
                pass


def _console_errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", "")))
                                                                for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            out.append(f"{entry.get('source', 'log')}: {entry.get('text')} {entry.get('url', '')}".strip())
    return out


def check_page(page: str | Path, screenshot: str | Path | None = None, *, width: int = 1280, height: int = 900,
               timeout: float = 60.0, audio_wait_ms: int = 10000) -> PageCheck:
    """Load a local HTML page in headless Chromium; collect console errors and the state of every
    <audio> and <img>; save a full-page PNG screenshot when `screenshot` is given."""
    binary = find_chromium()
    if binary is None:
        raise MagnetEvalError("Chromium is not installed (Debian: apt-get install chromium); "
                              "set MAGNET_EVAL_CHROMIUM to its path if it is elsewhere")
    page = Path(page).resolve()
    if not page.is_file():
        raise MagnetEvalError(f"{page}: no such page")
    url = page.as_uri()
    result = PageCheck(url=url)
    with tempfile.TemporaryDirectory(prefix="magnet-eval-chromium-") as user_dir:
        cdp = _Pipe(binary, user_dir, width, height)
        try:
            target = cdp.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
            session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                cdp.send(f"{domain}.enable", session=session)
            cdp.send("Page.navigate", {"url": url}, session=session, timeout=timeout)
            if cdp.wait_event("Page.loadEventFired", timeout=timeout) is None:
                raise MagnetEvalError(f"{page}: the page did not finish loading in {timeout:g}s")
            got = cdp.send("Runtime.evaluate", {"expression": _AUDIO_JS % audio_wait_ms, "awaitPromise": True,
                                                "returnByValue": True}, session=session, timeout=timeout)
            result.audio = got.get("result", {}).get("value") or []
            got = cdp.send("Runtime.evaluate", {
                "expression": "({title: document.title, images: Array.from(document.images).map(i => "
                              "({alt: i.alt, complete: i.complete, width: i.naturalWidth}))})",
                "returnByValue": True}, session=session)
            value = got.get("result", {}).get("value") or {}
            result.title, result.images = value.get("title", ""), value.get("images", [])
            if screenshot:
                metrics = cdp.send("Page.getLayoutMetrics", session=session)
                size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
                full_h = int(min(max(size.get("height", height), height), 16000))
                cdp.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": full_h,
                                                                "deviceScaleFactor": 1, "mobile": False},
                         session=session)
                shot = cdp.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                session=session, timeout=timeout)
                path = Path(screenshot)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(base64.b64decode(shot["data"]))
                result.screenshot = path
            time.sleep(0.2)  # late console messages
            try:
                cdp.send("Runtime.evaluate", {"expression": "1"}, session=session, timeout=5)
            except MagnetEvalError:
                pass
        finally:
            cdp.close()
        result.console_errors = _console_errors(cdp.events)
    return result
