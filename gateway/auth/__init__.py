"""Authentication and authorisation: the password file, the ACL file, and `edgeq passwd`.

* `passwords`: the `user:hash` file (argon2id), read and written;
* `authenticator`: `Authenticator.authenticate(username, password) -> AuthOutcome` for CONNECT;
* `acl`: `Acl.can_publish / can_subscribe / can_receive / can_consume`, cached decisions;
* `passwd`: the `edgeq passwd` command (`passwd_main(argv) -> int`), like mosquitto_passwd.

Nothing here touches sockets or MQTT packets: the broker asks, maps answers to reason codes.
"""

from gateway.auth.acl import Acl, AclError, load_acl
from gateway.auth.authenticator import Authenticator, AuthOutcome
from gateway.auth.passwords import PasswordFileError

__all__ = ["Acl", "AclError", "AuthOutcome", "Authenticator", "PasswordFileError", "load_acl"]
