"""Reading a plant file: TOML, secrets from the environment or files, relative paths, errors `FILE: key.path: why`."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from plantfile.secrets import resolve_secrets


class PlantFileError(ValueError):
    """A plant file that cannot be read or whose section does not validate: the message names file, key and why."""


@dataclass(frozen=True)
class PlantFile:
    """A read plant file: where it came from and its tables (secrets already taken from where they were named)."""

    path: Path
    data: dict[str, Any]

    @property
    def source(self) -> str:
        return str(self.path)


def read_plant_file(path: Path | str, error: type[Exception] = PlantFileError,
                    environ: Mapping[str, str] | None = None) -> PlantFile:
    """Read and parse a plant file; `error` (a part's own ConfigError) is raised naming the file and why.

    Keys `<secret>_env` and `<secret>_file` (password, token, secret) are replaced by the secret they name
    (plantfile.secrets); a relative secret file is taken against the plant file's folder.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from exc
    problems = resolve_secrets(data, str(path), path.parent, os.environ if environ is None else environ)
    if problems:
        raise error("\n".join(problems))
    return PlantFile(path, data)


def resolve_path(base_dir: Path, name: str | Path) -> Path:
    """A path from the plant file: absolute as written, else taken against `base_dir` (the working directory)."""
    p = Path(name)
    return p if p.is_absolute() else base_dir / p


_UNION_TAGS = ("union_tag_invalid", "union_tag_not_found")


def validate_section(data: Mapping[str, Any], key: str, model: type[BaseModel] | TypeAdapter[Any], source: str,
                     error: type[Exception] = PlantFileError, tags: tuple[str, ...] = ()) -> Any:
    """The `[key]` table (empty when absent) validated by `model`; `error` names `FILE: key.path: why` per problem.

    `tags` are the discriminator values of a tagged union, left out of the key paths (a bad tag is `key.kind`).
    """
    raw = data.get(key, {})
    if not isinstance(raw, dict):
        raise error(f"{source}: {key}: must be a table")
    try:
        return model.validate_python(raw) if isinstance(model, TypeAdapter) else model.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"] if p not in tags]
            if err["type"] in _UNION_TAGS:
                loc = ["kind"]
            lines.append(f"{source}: {'.'.join([key, *loc])}: {err['msg']}")
        raise error("\n".join(lines)) from exc


Section = TypeVar("Section", bound=BaseModel)


def with_mqtt_url(mqtt: Section, url: str | None, error: type[Exception] = PlantFileError) -> Section:
    """`[mqtt]` as validated from the file, with a command line's `--mqtt-url` (when given) as its `url`.

    The merged table is validated again by the same model, so a bad URL is named `--mqtt-url: mqtt.url: why`.
    """
    if not url:
        return mqtt
    merged: Section = validate_section({"mqtt": {**mqtt.model_dump(), "url": url}}, "mqtt", type(mqtt),
                                       "--mqtt-url", error)
    return merged
