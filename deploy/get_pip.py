"""Bootstrap pip into a virtualenv made with --without-pip (Debian without python3-venv): fetch pip's wheel
from PyPI and run pip from inside it to install itself. Standard library only."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

INDEX = "https://pypi.org/pypi/pip/json"


def main() -> int:
    with urllib.request.urlopen(INDEX, timeout=60) as resp:
        release = json.load(resp)
    wheel = next(f for f in release["urls"] if f["filename"].endswith(".whl"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / wheel["filename"]
        with urllib.request.urlopen(wheel["url"], timeout=120) as resp:
            path.write_bytes(resp.read())
        return subprocess.call([sys.executable, f"{path}/pip", "install", "-q", str(path)])


if __name__ == "__main__":
    sys.exit(main())
