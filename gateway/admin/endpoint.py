"""What the admin API and its client agree on: the URL prefix, the connection file the gateway
writes into its data directory, and the error a client reports. Standard library only and
nothing else, so that `edgeq serve` can import it without the HTTP client."""

from __future__ import annotations

PREFIX = "/api/v1"
CONNECTION_FILE = "admin.json"


class AdminError(Exception):
    """The gateway could not be reached or refused the request; the message says which.
    `status` is the HTTP status of a refusal (401: wrong credentials), None when unreachable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
