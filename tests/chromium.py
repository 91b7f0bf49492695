"""Headless Chromium for the rendering tests, driven over the DevTools protocol on a pipe.

Only the standard library is used: Chromium is started with ``--remote-debugging-pipe`` and reads
commands on fd 3 and answers on fd 4. The page is shown at an exact device width (375 px phones are
narrower than a headless window can be), light or dark, then measured and captured in full.

Run as a script to write screenshots of the sample digests:
``python tests/chromium.py [OUT_DIR]`` (default ``shots/``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)
TRAMPOLINE = (
    "import os, sys; a, b = int(sys.argv[1]), int(sys.argv[2]); "
    "os.dup2(a, 3); os.dup2(b, 4); os.close(a); os.close(b); os.execvp(sys.argv[3], sys.argv[3:])"
)
"""Put the pipe ends on fds 3 and 4, where --remote-debugging-pipe expects them, then exec."""
MEASURE_JS = (Path(__file__).parent / "measure.js").read_text(encoding="utf-8")


def find_chromium() -> str | None:
    """Path of a Chromium-like browser on PATH, if any."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> tuple[str | None, str]:
    """Find Chromium, installing Debian's package when running as root; (path, reason if none)."""
    found = find_chromium()
    if found:
        return found, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return (
            None,
            "chromium is not installed and cannot be installed here (not root with apt-get)",
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            return None, f"could not install chromium ({' '.join(cmd)}: {tail[0]})"
    found = find_chromium()
    return (found, "") if found else (None, "apt-get installed chromium but it is not on PATH")


class Browser:
    """One headless Chromium process; use as a context manager."""

    def __init__(self, path: str) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()
        # Move the child's ends above fd 10 so that placing them on 3 and 4 clobbers nothing.
        child_in = fcntl.fcntl(to_child, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_child, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_child)
        os.close(from_child)
        args = [*FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", TRAMPOLINE, str(child_in), str(child_out), path, *args],
            pass_fds=(child_in, child_out),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("CHROMIUM_DEBUG") else subprocess.DEVNULL,
        )
        os.close(child_in)
        os.close(child_out)
        self._buffer = b""
        self._next_id = 0

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ask the browser to quit, then make sure it has."""
        with contextlib.suppress(OSError, RuntimeError):
            self.send("Browser.close")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._in)
        os.close(self._out)
        self._profile.cleanup()

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result, skipping events meanwhile."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def wait_for(self, event: str, session: str) -> None:
        """Block until ``event`` arrives for ``session``."""
        while True:
            message = self._read()
            if message.get("method") == event and message.get("sessionId") == session:
                return

    def open(self, html: Path, width: int, dark: bool = False) -> str:
        """Load ``html`` in a new tab at ``width`` CSS px (mobile below 600); return the session."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session: str = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.send("Page.enable", session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=900,
            deviceScaleFactor=1,
            mobile=width < 600,
        )
        scheme = "dark" if dark else "light"
        features = [{"name": "prefers-color-scheme", "value": scheme}]
        self.send("Emulation.setEmulatedMedia", session, features=features)
        self.send("Page.navigate", session, url=html.resolve().as_uri())
        self.wait_for("Page.loadEventFired", session)
        return session

    def evaluate(self, session: str, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the open page."""
        reply = self.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
        return reply["result"].get("value")

    def measure(self, session: str) -> dict[str, Any]:
        """What measure.js finds in the open page: widths, contrast, headings, language."""
        report: dict[str, Any] = json.loads(self.evaluate(session, MEASURE_JS))
        return report

    def screenshot(self, session: str, png: Path, top: int = 0, height: int | None = None) -> Path:
        """Capture the whole page (or ``height`` px from ``top``) into ``png``."""
        size = self.send("Page.getLayoutMetrics", session)["cssContentSize"]
        height = min(height or size["height"], size["height"] - top)
        clip = {"x": 0, "y": top, "width": size["width"], "height": height, "scale": 1}
        shot = self.send(
            "Page.captureScreenshot", session, format="png", clip=clip, captureBeyondViewport=True
        )
        png.write_bytes(base64.b64decode(shot["data"]))
        return png


def write_samples(out: Path) -> list[Path]:
    """Render the sample digests and screenshot each at 375 and 800 px, light and dark."""
    sys.path.insert(0, str(Path(__file__).parent))
    from render_samples import CTX, digest

    from bot.render import Renderer

    path, reason = ensure_chromium()
    if path is None:
        raise SystemExit(reason)
    out.mkdir(parents=True, exist_ok=True)
    renderer = Renderer()
    samples = {
        "digest": digest(),
        "alert": digest(n=1, more=0, kind="alert"),
        "empty": digest(n=0, more=0, kind="empty"),
    }
    shots: list[Path] = []
    with Browser(path) as browser:
        for name, dig in samples.items():
            html = out / f"{name}.html"
            html.write_text(renderer.render(dig, CTX).html, encoding="utf-8")
            for width in (375, 800):
                for dark in (False, True):
                    session = browser.open(html, width, dark)
                    png = out / f"{name}-{width}{'-dark' if dark else ''}.png"
                    shots.append(browser.screenshot(session, png))
    return shots


if __name__ == "__main__":
    for shot in write_samples(Path(sys.argv[1] if len(sys.argv) > 1 else "shots")):
        print(shot)
