"""The plant file (TOML), read once the same way by every part and the runner: `read_plant_file`, `validate_section`.

Each part validates its own sections with its own pydantic models; this package only reads the file, takes
secrets from environment variables or files (`password_env`, `password_file`, ...) and names file and key in errors.
"""

from plantfile.loader import (
    PlantFile,
    PlantFileError,
    read_plant_file,
    resolve_path,
    validate_section,
    with_mqtt_url,
)
from plantfile.secrets import SECRET_KEYS, resolve_secrets

__all__ = ["SECRET_KEYS", "PlantFile", "PlantFileError", "read_plant_file", "resolve_path", "resolve_secrets",
           "validate_section", "with_mqtt_url"]
