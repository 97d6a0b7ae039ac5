"""The exceptions that mean "the user must fix something" (as opposed to bugs).

The CLI turns an :class:`LmmclfError` into one clear sentence on stderr and exit code 1,
never a traceback. Everything else is a bug and keeps its traceback.
"""


class LmmclfError(Exception):
    """A failure the user can fix: a missing file, a bad value, a missing artifact."""


class ConfigError(LmmclfError):
    """The experiment config has an unknown key, a wrong type or a bad value."""


class DatasetError(LmmclfError):
    """A dataset root, split file or image is missing or malformed."""


class MissingArtifactError(LmmclfError):
    """An input artifact is not in the cache; the message names the command that makes it."""


class CorruptArtifactError(LmmclfError):
    """An artifact file exists but cannot be trusted (truncated, no completion marker)."""
