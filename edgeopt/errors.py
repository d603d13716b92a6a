"""One exception family; each class carries the exit code a CI pipeline can branch on.

The codes are documented in README.md ("Exit codes"); keep the two in step.
"""


class EdgeoptError(Exception):
    """A user-facing failure: printed as one paragraph, no traceback."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message

    def to_json(self) -> dict:
        return {"kind": self.kind, "exit_code": self.exit_code, "message": self.message,
                "hint": self.hint, "details": self.details}


class UsageError(EdgeoptError):
    """Bad flags, config file, unknown or invalid device profile."""

    exit_code = 2
    kind = "usage"


class ModelError(EdgeoptError):
    """The model file cannot be read, is of an unknown format, or is refused (pickle)."""

    exit_code = 3
    kind = "model"


class UnsupportedOpError(EdgeoptError):
    """An operator the chosen target or pass cannot handle."""

    exit_code = 4
    kind = "unsupported-op"


class BudgetExceededError(EdgeoptError):
    """The artefact does not fit the device profile's storage or RAM budget."""

    exit_code = 5
    kind = "budget"


class AccuracyGateError(EdgeoptError):
    """Verification found a larger drop than --max-drop allows."""

    exit_code = 6
    kind = "accuracy-gate"


class CompileError(EdgeoptError):
    """The backend's compiler or converter failed."""

    exit_code = 7
    kind = "compile"


class BoardError(EdgeoptError):
    """The smoke test on a board failed: bundle unusable, runner crashed, outputs differ."""

    exit_code = 8
    kind = "board"


class DataError(EdgeoptError):
    """Calibration or evaluation data that cannot be used for this model."""

    exit_code = 9
    kind = "data"


EXIT_CODES = {cls.exit_code: cls for cls in EdgeoptError.__subclasses__()}
