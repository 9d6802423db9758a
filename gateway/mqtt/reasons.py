"""MQTT 5.0 reason codes, the 3.1.1 CONNACK return codes, and the one error type of the codec.

Connection-fatal problems are raised as `MQTTError(reason)` and caught only at the connection
boundary, which turns them into a DISCONNECT (5.0) or a close (3.1.1).
"""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    SUCCESS = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    RE_AUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


# Reason codes each 5.0 packet type may carry ([MQTT-3.x.2-*] tables), used by the decoder.
VALID_CONNACK = frozenset({0x00, *range(0x80, 0xA0)} - {0x8B, 0x8D, 0x8E, 0x8F, 0x91, 0x92,
                                                        0x93, 0x94, 0x96, 0x98, 0x9E})
VALID_PUBACK = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})
VALID_PUBREL = frozenset({0x00, 0x92})
VALID_SUBACK = frozenset({0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E,
                          0xA1, 0xA2})
VALID_UNSUBACK = frozenset({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91})
VALID_DISCONNECT = frozenset({0x00, 0x04, *range(0x80, 0xA3)} - {0x84, 0x85, 0x86, 0x88, 0x8A,
                                                                  0x8C, 0x91, 0x92})
VALID_AUTH = frozenset({0x00, 0x18, 0x19})

# 3.1.1 CONNACK return codes, and how 5.0 reasons map onto them (MQTT 3.1.1 §3.2.2.3).
V311_ACCEPTED = 0
V311_UNACCEPTABLE_PROTOCOL = 1
V311_IDENTIFIER_REJECTED = 2
V311_SERVER_UNAVAILABLE = 3
V311_BAD_CREDENTIALS = 4
V311_NOT_AUTHORIZED = 5

_CONNACK_V311 = {
    Reason.SUCCESS: V311_ACCEPTED,
    Reason.UNSUPPORTED_PROTOCOL_VERSION: V311_UNACCEPTABLE_PROTOCOL,
    Reason.CLIENT_IDENTIFIER_NOT_VALID: V311_IDENTIFIER_REJECTED,
    Reason.BAD_USER_NAME_OR_PASSWORD: V311_BAD_CREDENTIALS,
    Reason.NOT_AUTHORIZED: V311_NOT_AUTHORIZED,
    Reason.BANNED: V311_NOT_AUTHORIZED,
}


def connack_code_v311(reason: int) -> int:
    """The 3.1.1 CONNACK return code closest to a 5.0 reason code."""
    return _CONNACK_V311.get(Reason(reason), V311_SERVER_UNAVAILABLE)


def suback_code_v311(reason: int) -> int:
    """3.1.1 SUBACK knows only the granted QoS or 0x80 (failure)."""
    return reason if reason < 0x80 else 0x80


class MQTTError(Exception):
    """A connection-fatal protocol problem, carrying the reason code to report."""

    def __init__(self, reason: Reason, message: str = "") -> None:
        super().__init__(message or reason.name.replace("_", " ").lower())
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.args[0]} (0x{self.reason:02X})"


def malformed(message: str) -> MQTTError:
    return MQTTError(Reason.MALFORMED_PACKET, message)


def protocol_error(message: str) -> MQTTError:
    return MQTTError(Reason.PROTOCOL_ERROR, message)
