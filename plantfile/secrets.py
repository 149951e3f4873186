"""Secrets in a plant file given by reference: `password_env = "NAME"` or `password_file = "/run/secrets/x"`.

Any table of the file (arrays of tables too) may name a secret key's value (`password`, `token`, `secret`)
by an environment variable (`<key>_env`) or a file (`<key>_file`, its text without the trailing newline)
instead of writing it; the reference is replaced by the value before any part validates its sections, so
every part and `carbonwatch check-config` read the same. Giving a key and a reference to it is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

SECRET_KEYS = ("password", "token", "secret")
_KINDS = ("env", "file")


def resolve_secrets(data: dict[str, Any], source: str, base_dir: Path, environ: Mapping[str, str]) -> list[str]:
    """Replace every `<secret>_env` / `<secret>_file` key in `data` (in place) by `<secret>`; the problems found,
    one `FILE: key.path: why` line each (a variable not set, a file not readable, a secret given twice)."""
    problems: list[str] = []
    _walk(data, [], source, base_dir, environ, problems)
    return problems


def _walk(node: Any, at: list[str], source: str, base_dir: Path, environ: Mapping[str, str],
          problems: list[str]) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, [*at, str(i)], source, base_dir, environ, problems)
        return
    if not isinstance(node, dict):
        return
    for key in list(node):
        if isinstance(node[key], dict | list):
            _walk(node[key], [*at, key], source, base_dir, environ, problems)
    for secret in SECRET_KEYS:
        refs = [f"{secret}_{kind}" for kind in _KINDS if f"{secret}_{kind}" in node]
        if not refs:
            continue
        where = ".".join([*at, refs[0]])
        if len(refs) > 1 or secret in node:
            given = " and ".join(f"`{k}`" for k in ([secret] if secret in node else []) + refs)
            problems.append(f"{source}: {where}: {given} both given: write the secret one way")
            continue
        value, why = _read(refs[0], node.pop(refs[0]), base_dir, environ)
        if why is not None:
            problems.append(f"{source}: {where}: {why}")
        else:
            node[secret] = value


def _read(ref: str, name: Any, base_dir: Path, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(the secret, None), or ("", why it could not be had)."""
    if not isinstance(name, str) or not name:
        what = "an environment variable's name" if ref.endswith("_env") else "a file's path"
        return "", f"must be {what} (text), got {name!r}"
    if ref.endswith("_env"):
        if name not in environ:
            return "", f"environment variable {name} is not set"
        return environ[name], None
    path = Path(name) if Path(name).is_absolute() else base_dir / name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return "", f"cannot read secret file {path}: {exc.strerror or exc}"
    except UnicodeDecodeError:
        return "", f"secret file {path} is not UTF-8 text"
    return text.removesuffix("\n").removesuffix("\r"), None
