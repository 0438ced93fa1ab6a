"""Exceptions: every failure of the library raises an Error carrying its status and message."""

# ckpt_status values (ckpt.h), stable across releases
OK, ARG, FORMAT, UNSUPPORTED, LIMIT, NOT_FOUND, READ, WRITE, EXISTS, NOMEM, MISMATCH, CANCELLED = range(12)


class Error(Exception):
    """A libckpt call failed: `status` is the ckpt_status code, `status_name` its name ("format error"),
    `message` the library's one line naming the file and the problem."""

    def __init__(self, status, status_name, message):
        super().__init__(message)
        self.status, self.status_name, self.message = status, status_name, message

    def __repr__(self):
        return f"{type(self).__name__}({self.status}, {self.status_name!r}, {self.message!r})"


class ArgumentError(Error, ValueError):
    """An invalid argument or option."""


class FormatError(Error):
    """The input is malformed or hostile."""


class UnsupportedError(Error):
    """The input is valid but uses something libckpt does not handle."""


class LimitError(Error):
    """The input exceeds a resource limit."""


class NotFoundError(Error, LookupError):
    """A named file or tensor does not exist."""


class ReadError(Error, OSError):
    """Reading the input failed."""


class WriteError(Error, OSError):
    """Writing the output failed."""


class ExistsError(Error):
    """The output already exists (force=True replaces it)."""


class OutOfMemoryError(Error, MemoryError):
    """The library ran out of memory."""


class MismatchError(Error):
    """A check found a difference."""


class CancelledError(Error):
    """A callback asked to stop."""


_BY_STATUS = {ARG: ArgumentError, FORMAT: FormatError, UNSUPPORTED: UnsupportedError, LIMIT: LimitError,
              NOT_FOUND: NotFoundError, READ: ReadError, WRITE: WriteError, EXISTS: ExistsError,
              NOMEM: OutOfMemoryError, MISMATCH: MismatchError, CANCELLED: CancelledError}


def error_for(status, status_name, message):
    return _BY_STATUS.get(status, Error)(status, status_name, message)
