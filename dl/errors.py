"""User-facing errors. Each carries one line that names the cause (and, for data, how to fix it)."""


class DLError(Exception):
    """Base class: the entry point prints `error: <message>` and exits with status 2."""


class ConfigError(DLError):
    """An unknown name, a bad value or an inconsistent combination in the config."""


class DataError(DLError):
    """A missing, unreadable or malformed dataset/trace file, or a data root that does not exist."""
