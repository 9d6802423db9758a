"""The one place the broker decides who may do what: connect, publish, subscribe, receive.

Every path asks here: a client's PUBLISH and its will (`publish_reason`), SUBSCRIBE of plain,
`$share`, `$q/` and `$queue/` filters and the re-check of stored subscriptions when a session
resumes (`subscription_reason`), and every message about to be written to a client, whatever
brought it (live, retained, offline backlog, queue, resumed in-flight): `Reader.allows`, asked
by the connection's single outbound path. Topics beginning with `$` are written only by the
broker itself. Decisions are cached per client in its `Reader`; a reload starts a new
generation, so cached answers never outlive the rules they came from.

Anonymous access on/off, the password file and the ACL file; `reload()` re-reads both
(SIGHUP) without touching connected clients. A reload with a broken file keeps the previous
users and rules in force and logs why.
"""

from __future__ import annotations

import logging

from gateway.auth import Acl, AclError, Authenticator, AuthOutcome, PasswordFileError, load_acl
from gateway.config import AuthSettings, MqttSettings
from gateway.mqtt.reasons import Reason

log = logging.getLogger(__name__)

_CONNACK = {
    AuthOutcome.ACCEPTED: 0,
    AuthOutcome.BAD_CREDENTIALS: Reason.BAD_USER_NAME_OR_PASSWORD,
    AuthOutcome.NOT_AUTHORIZED: Reason.NOT_AUTHORIZED,
}
_READER_CACHE = 4096  # topics remembered per client before its cache starts over


class Access:
    def __init__(self, settings: AuthSettings, limits: MqttSettings) -> None:
        """Raises PasswordFileError / AclError (messages name file and line) at startup."""
        self.settings = settings
        self.limits = limits
        self.authenticator, self.acl = self._load(settings)
        self.generation = 0

    @staticmethod
    def _load(settings: AuthSettings) -> tuple[Authenticator, Acl]:
        return (Authenticator(allow_anonymous=settings.allow_anonymous,
                              password_file=settings.password_file),
                load_acl(settings.acl_file))

    def reload(self, settings: AuthSettings | None = None,
               limits: MqttSettings | None = None) -> None:
        settings = settings or self.settings
        try:
            self.authenticator, self.acl = self._load(settings)
        except (PasswordFileError, AclError) as e:
            log.error("auth reload refused, keeping the previous users and rules: %s", e)
            return
        self.settings = settings
        self.limits = limits or self.limits
        self.generation += 1

    # -- connecting --------------------------------------------------------------------------

    def is_slow(self, username: str | None, password: bytes | None) -> bool:
        """Whether `authenticate` will hash a password (run it off the event loop then)."""
        return (username is not None and password is not None
                and self.authenticator.password_file is not None)

    def authenticate(self, username: str | None, password: bytes | None, client_id: str) -> int:
        """0, or the CONNACK reason code refusing the client. Blocks ~tens of ms (argon2)."""
        return _CONNACK[self.authenticator.authenticate(username, password)]

    # -- publishing ---------------------------------------------------------------------------

    def topic_error(self, topic: str) -> str | None:
        """Why a topic name or filter exceeds the configured depth or length, or None."""
        limits = self.limits
        if len(topic) > limits.max_topic_length:
            return f"longer than mqtt.max_topic_length ({limits.max_topic_length})"
        if topic.count("/") >= limits.max_topic_levels:
            return f"deeper than mqtt.max_topic_levels ({limits.max_topic_levels})"
        return None

    def publish_reason(self, username: str | None, client_id: str, topic: str) -> int:
        """0, or why a client may not publish to `topic` (also its will): 0x90 too deep or
        long, 0x87 a `$` topic (only the broker writes those) or no ACL grant."""
        if self.topic_error(topic):
            return Reason.TOPIC_NAME_INVALID
        if topic.startswith("$") or not self.acl.can_publish(username, client_id, topic):
            return Reason.NOT_AUTHORIZED
        return 0

    # -- subscribing --------------------------------------------------------------------------

    def subscription_reason(self, username: str | None, client_id: str, topic_filter: str,
                            binding: tuple[str, bool] | None = None) -> int:
        """0, or the SUBACK reason refusing `topic_filter` (without its `$share/<group>/`).

        For a queue subscription, `binding` is (the filter its messages come through, whether
        subscribing would create the queue): consuming needs the queue's `consume` grant and
        read access to that filter; creating needs a `create` grant as well."""
        if self.topic_error(topic_filter):
            return Reason.TOPIC_FILTER_INVALID
        acl = self.acl
        if binding is None:
            allowed = acl.can_subscribe(username, client_id, topic_filter)
        else:
            bound, creates = binding
            allowed = (acl.can_create_queue(username, client_id, bound) if creates
                       else acl.can_consume(username, client_id, topic_filter)
                       and acl.can_read_queue_filter(username, client_id, bound))
        return 0 if allowed else Reason.NOT_AUTHORIZED

    # -- delivering ---------------------------------------------------------------------------

    def reader(self, username: str | None, client_id: str) -> Reader:
        """The delivery check of one client, with its own cache."""
        return Reader(self, username, client_id)


class Reader:
    """Whether one client may be sent a message on a topic, asked for every outbound PUBLISH.

    Without an ACL file the answer is yes at the cost of one comparison; with one, each topic
    is decided once per client and rule generation."""

    __slots__ = ("_access", "_cache", "_client_id", "_generation", "_open", "_username")

    def __init__(self, access: Access, username: str | None, client_id: str) -> None:
        self._access = access
        self._username = username
        self._client_id = client_id
        self._generation = -1
        self._open = True
        self._cache: dict[str, bool] | None = None  # made when an ACL is enforced

    def allows(self, topic: str) -> bool:
        if self._generation != self._access.generation:
            self._restart()
        if self._open:
            return True
        cache = self._cache
        if cache is None:
            cache = self._cache = {}
        decision = cache.get(topic)
        if decision is None:
            if len(cache) >= _READER_CACHE:
                cache.clear()
            decision = cache[topic] = self._access.acl.can_receive(
                self._username, self._client_id, topic)
        return decision

    def _restart(self) -> None:
        self._generation = self._access.generation
        self._open = not self._access.acl.enforced
        self._cache = None
