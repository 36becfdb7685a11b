"""User-facing errors.

A :class:`UserError` is a mistake the user can fix (bad model name, bad path, bad size...). The CLI
prints its message as one line and exits with its code, never with a traceback.
"""


class UserError(Exception):
    """A problem with the user's input; the message names the problem and the fix."""

    exit_code = 2


class ParityFailure(Exception):
    """An artifact disagrees with PyTorch beyond its tolerance (exit code 1)."""

    exit_code = 1


class MissingDependency(UserError):
    """An optional runtime (OpenVINO, TensorRT, ...) is not installed."""

    def __init__(self, package: str, hint: str):
        super().__init__(f"{package} is not installed; {hint}")
