"""Registry errors, each with the HTTP status and Confluent error code a stock client expects.

The lookup errors are also ``KeyError`` and the schema errors also ``SchemaError``, so code
written against the earlier store (``except KeyError``, ``except SchemaError``) keeps working.
"""

from __future__ import annotations

from typing import ClassVar

from hub.registry.schemas import SchemaError


class RegistryError(Exception):
    """A registry failure a client can act on."""

    status: ClassVar[int] = 500
    code: ClassVar[int] = 50001

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SubjectNotFound(RegistryError, KeyError):
    status, code = 404, 40401


class VersionNotFound(RegistryError, KeyError):
    status, code = 404, 40402


class SchemaNotFound(RegistryError, KeyError):
    status, code = 404, 40403


class SubjectSoftDeleted(RegistryError):
    status, code = 404, 40404


class SubjectNotSoftDeleted(RegistryError):
    status, code = 404, 40405


class VersionSoftDeleted(RegistryError):
    status, code = 404, 40406


class VersionNotSoftDeleted(RegistryError):
    status, code = 404, 40407


class SubjectConfigNotFound(RegistryError):
    status, code = 404, 40408


class IncompatibleSchema(RegistryError):
    status, code = 409, 409

    def __init__(self, message: str, messages: list[str]) -> None:
        super().__init__(message)
        self.messages = messages


class InvalidSchema(RegistryError, SchemaError):
    status, code = 422, 42201


class SchemaIdCollision(InvalidSchema):
    """Two different schemas hash to the same id; the one registered first keeps it."""


class InvalidVersion(RegistryError):
    status, code = 422, 42202


class InvalidCompatibilityLevel(RegistryError):
    status, code = 422, 42203


class OperationNotPermitted(RegistryError):
    status, code = 422, 42205


class MalformedRequest(RegistryError):
    status, code = 400, 400


class PayloadTooLarge(RegistryError):
    status, code = 413, 413


class UnsupportedMediaType(RegistryError):
    status, code = 415, 415


class RegistryUnavailable(RegistryError):
    """The registry log could not be written or read back in time."""

    status, code = 500, 50001


class Unauthenticated(RegistryError):
    status, code = 401, 40101


class Forbidden(RegistryError):
    status, code = 403, 40301
