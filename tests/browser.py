"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`): messages are JSON
separated by NUL bytes on file descriptors 3 (commands in) and 4 (answers and events out). No websocket client, no
npm; only Debian's `chromium` package, which `ensure_chromium` installs when it is missing (as CI's root can).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-pipe")


def ensure_chromium() -> str:
    """The path of `chromium`, installed with apt-get first if it is missing."""
    found = shutil.which("chromium")
    if found is None:
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
            done = subprocess.run(step, capture_output=True, text=True, env=environment)
            if done.returncode:
                raise RuntimeError(f"chromium is missing and `{' '.join(step)}` failed (root on Debian needed): "
                                   f"{done.stderr.strip()[-500:]}")
        found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("apt-get installed chromium but it is not on PATH")
    return found


class DevToolsError(RuntimeError):
    pass


class Chromium:
    """One headless browser process; `page(url)` opens a tab. Use as a context manager."""

    def __init__(self, executable: str | None = None, *, timeout: float = 60.0):
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="treecredit-chromium-")
        commands_read, self._commands = os.pipe()
        self._answers, answers_write = os.pipe()
        # Chromium reads commands on fd 3 and writes on fd 4. bash moves the pipe ends there just before exec (no
        # preexec_fn, which is unsafe with threads); the ends are copied above fd 9 first so that no move clobbers.
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands_read, answers_write)]
        self._log = Path(self._profile) / "chromium.log"
        with open(self._log, "wb") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", f'exec "$0" "$@" 3<&{ends[0]} 4>&{ends[1]} {ends[0]}<&- {ends[1]}>&-',
                 executable or ensure_chromium(), *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
                pass_fds=ends, stdout=log, stderr=log)
        for fd in (*ends, commands_read, answers_write):
            os.close(fd)
        self._next_id = 0
        self._lock = threading.Lock()
        self._waiting: dict[int, queue.SimpleQueue] = {}
        self._events: dict[str, queue.SimpleQueue] = {}
        self.events: list[dict] = []  # every event received, in order
        self._reader = threading.Thread(target=self._read, daemon=True, name="chromium-devtools")
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._answers, 1 << 20):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    self._waiting.pop(message["id"]).put(message)
                else:
                    self.events.append(message)
                    self._event_queue(message["method"], message.get("sessionId")).put(message)

    def _event_queue(self, method: str, session: str | None) -> queue.SimpleQueue:
        with self._lock:
            return self._events.setdefault(f"{session}/{method}", queue.SimpleQueue())

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its result."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            answer = self._waiting[ident] = queue.SimpleQueue()
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._commands, json.dumps(message).encode() + b"\0")
            reply = answer.get(timeout=self.timeout)
        except (BrokenPipeError, queue.Empty):
            raise DevToolsError(f"{method}: no answer; chromium exit status {self.process.poll()}, its log ends: "
                                f"{self._log.read_text(errors='replace')[-2000:]}") from None
        if "error" in reply:
            raise DevToolsError(f"{method}: {reply['error']}")
        return reply["result"]

    def wait_event(self, method: str, session: str | None = None) -> dict:
        return self._event_queue(method, session).get(timeout=self.timeout)

    def page(self, url: str, *, width: int = 1400, height: int = 900) -> Page:
        """A new tab of `width` x `height` CSS pixels showing `url`, once its load event has fired."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Network"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        page.navigate(url)
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (DevToolsError, OSError):
            self.process.kill()
        self.process.wait(timeout=self.timeout)
        os.close(self._commands)
        self._reader.join(timeout=self.timeout)
        os.close(self._answers)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    """One tab, attached with a flat session."""

    def __init__(self, browser: Chromium, session: str):
        self.browser, self.session = browser, session

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def navigate(self, url: str) -> None:
        """Go to `url` and wait for its load event (every inline script has run by then)."""
        self.send("Page.navigate", {"url": url})
        self.browser.wait_event("Page.loadEventFired", self.session)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (promises awaited), as JSON."""
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in reply:
            raise DevToolsError(f"{expression[:80]}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout_ms: int = 10000):
        """Poll a JavaScript expression once per animation frame until it is truthy; its value."""
        return self.evaluate(f"""new Promise((resolve, reject) => {{
            const until = performance.now() + {timeout_ms};
            const poll = () => {{
                const value = ({expression});
                if (value) resolve(value);
                else if (performance.now() > until) reject(new Error("timed out waiting for: " + {json.dumps(expression)}));
                else requestAnimationFrame(poll);
            }};
            poll();
        }})""")

    def hover(self, x: float, y: float) -> None:
        """Move the mouse to (x, y) in CSS pixels of the viewport, as a person would."""
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.browser.events
                if e["method"] == "Network.requestWillBeSent" and e.get("sessionId") == self.session]

    def screenshot(self, path: str | Path, *, full_page: bool = False) -> None:
        params: dict = {"format": "png"}
        if full_page:
            width, height = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params.update(clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                          captureBeyondViewport=True)
        Path(path).write_bytes(base64.b64decode(self.send("Page.captureScreenshot", params)["data"]))
