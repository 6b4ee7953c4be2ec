"""One exception hierarchy for the whole service: each class knows its HTTP status and OpenAI error type.

Every failure a user can cause is one of these, raised where it is detected (media, limits, validation)
and rendered once by the API layer as ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations


class AuroraError(Exception):
    """Base class. ``status`` is the HTTP status; ``type``/``code``/``param`` follow OpenAI's error object."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers that go with the error: how to authenticate, or when to try again."""
        if self.status == 401:
            return {"WWW-Authenticate": "Bearer"}
        return {"Retry-After": "1"} if self.status in (429, 503) else {}


class InvalidRequestError(AuroraError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class MediaError(InvalidRequestError):
    """The media could not be used (corrupt, empty, undecodable)."""

    code = "invalid_media"


class UnsupportedMediaError(MediaError):
    status, code = 415, "unsupported_media"


class MediaTooLargeError(MediaError):
    status, code = 413, "media_too_large"


class MediaFetchError(MediaError):
    """A media URL could not be fetched (refused address, timeout, HTTP error, too many redirects)."""

    code = "media_fetch_failed"


class AuthenticationError(AuroraError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class PermissionDeniedError(AuroraError):
    """A key-less server refusing a request from an unknown Host or another site's page (api/hosts.py)."""

    status, type, code = 403, "permission_error", "forbidden"


class RequestTimeoutError(InvalidRequestError):
    """The request body did not arrive in time; the connection is closed after the answer."""

    status, code = 408, "request_timeout"


class NotFoundError(AuroraError):
    status, type, code = 404, "not_found_error", "not_found"


class RateLimitError(AuroraError):
    status, type, code = 429, "rate_limit_error", "too_many_requests"


class ServiceUnavailableError(AuroraError):
    status, type, code = 503, "service_unavailable", "not_ready"


class ModelLoadError(AuroraError):
    """A checkpoint is missing, malformed, or its weights do not match the model (names the keys)."""

    code = "model_load_failed"
