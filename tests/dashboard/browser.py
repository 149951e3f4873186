"""A small driver for Debian's headless Chromium over the DevTools protocol (no downloaded browser, no extra
package: `websockets` is already installed): open a page, evaluate, wait for a condition, click, type, screenshot.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
                  "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0")


# what Chromium answers when the document an evaluation ran in went away meanwhile (a reload, a navigation)
NAVIGATING = ("Inspected target navigated or closed", "Cannot find context with specified id",
              "Execution context was destroyed")


class BrowserError(AssertionError):
    """The page threw, a call failed, or a condition did not hold in time."""


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError("Debian's chromium is not installed (apt-get install chromium); the test command installs it")


class Browser:
    """One Chromium process with one page (tab), driven over a flat DevTools session."""

    def __init__(self, workdir: Path | None = None, width: int = 1600, height: int = 1000) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="cw-chromium-", dir=workdir))
        self.proc = subprocess.Popen([chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                                      f"--window-size={width},{height}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.ws = self._connect()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.page(f"{domain}.enable")
        self.viewport(width, height)

    def _connect(self, timeout_s: float = 30.0) -> ClientConnection:
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self.proc.returncode} at start")
            if port_file.exists():
                lines = port_file.read_text().split()
                if len(lines) >= 2:
                    return connect(f"ws://127.0.0.1:{lines[0]}{lines[1]}", max_size=None, open_timeout=10)
            time.sleep(0.05)
        raise BrowserError("chromium did not open its DevTools port")

    # --- protocol -------------------------------------------------------------------------------------
    def _send(self, method: str, params: dict[str, Any], session: str | None, timeout_s: float) -> Any:
        msg_id = next(self._ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer to {method} in {timeout_s} s")
            reply = json.loads(self.ws.recv(timeout=left))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _event(self, event: dict[str, Any]) -> None:
        method = event.get("method", "")
        params = event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        self.events.append(event)
        del self.events[:-500]

    def call(self, method: str, timeout_s: float = 30.0, **params: Any) -> Any:
        return self._send(method, params, None, timeout_s)

    def page(self, method: str, timeout_s: float = 30.0, **params: Any) -> Any:
        return self._send(method, params, self.session, timeout_s)

    def pump(self, duration_s: float = 0.05) -> None:
        """Read pending events for a moment (console errors, requests)."""
        deadline = time.monotonic() + duration_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                self._event(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                return

    # --- page -----------------------------------------------------------------------------------------
    def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=mobile)

    def goto(self, url: str) -> None:
        """Navigate and wait until the new document has loaded."""
        self.page("Page.navigate", url=url)
        base = url.split("#", 1)[0]
        self.wait(f"{base} to load", f"location.href.startsWith({json.dumps(base)}) && "
                  "document.readyState === 'complete'")

    def eval(self, expression: str) -> Any:
        result = self.page("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression!r} threw: {details.get('exception', {}).get('description', details)}")
        return result["result"].get("value")

    def wait(self, what: str, expression: str, timeout_s: float = 30.0) -> Any:
        """Poll a JS expression until it is truthy; its value is returned."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.eval(expression)
            except BrowserError as exc:
                if not any(m in str(exc) for m in NAVIGATING):
                    raise
                last = f"(the page was navigating: {exc})"  # the document went away under the call: ask the next one
                self.pump(0.1)
                continue
            if last:
                return last
            self.pump(0.1)
        raise BrowserError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r}; page errors: "
                           f"{self.errors[-5:]})")

    def click(self, selector: str, timeout_s: float = 15.0) -> None:
        """A real mouse click in the middle of the element (scrolled into view first), once it is there and
        visible (a page may still be drawing it: waits up to `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while True:
            box = self.eval(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
                if (!e) return null; e.scrollIntoView({{block: "center"}}); const r = e.getBoundingClientRect();
                return [r.left + r.width / 2, r.top + r.height / 2, r.width * r.height]; }})()""")
            if box and box[2] > 0:
                break
            if time.monotonic() > deadline:
                raise BrowserError(f"nothing visible to click at {selector!r} after {timeout_s} s")
            time.sleep(0.05)
        for kind in ("mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type(self, selector: str, text: str) -> None:
        self.click(selector)
        self.page("Input.insertText", text=text)

    def press_enter(self) -> None:
        self.page("Input.dispatchKeyEvent", type="keyDown", key="Enter", code="Enter", windowsVirtualKeyCode=13,
                  text="\r")
        self.page("Input.dispatchKeyEvent", type="keyUp", key="Enter", code="Enter", windowsVirtualKeyCode=13)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.page("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def allow_downloads(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(folder))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
