"""Key rules: whether a key's *name* says that its value is secret, through one word model.

A key is split into lowercase words (``dbPassword`` -> db password, ``X-Api-Key`` -> x api key,
``password_b64`` -> password b64) and is secret when its words *end* with a secret term, possibly followed by
words that still hold the same value (``password_confirmation``, ``token_sha256``, ``password2``). Any other
trailing word makes it metadata about a secret (``password_policy``, ``token_count``). Weak terms (``key``,
``login``, ``aws``) make a key secret only for values that look like credentials. The same words tell a key
that names an id or a digest (``messaging.message.id``, ``content-md5``), whose value is judged as one.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Letters glued to digits that form one word rather than a word and a counter (``base64``, ``sha256``).
_GLUED_STEMS = frozenset(
    {"b", "base", "sha", "md", "crc", "hmac", "aes", "rsa", "ed", "x", "s", "k", "oauth"}
)

# Secret names, as the concatenation of their words.
SECRET_TERMS = frozenset(
    {
        "password", "passwords", "passwd", "pwd", "pw", "pswd", "pass", "passphrase", "passcode",
        "secret", "secrets", "token", "jwt", "auth", "authorization", "credential", "credentials",
        "creds", "apikey", "apikeys", "privatekey", "secretkey", "accesskey", "signingkey", "encryptionkey",
        "masterkey", "sessionkey", "licensekey", "accountkey", "sharedkey", "appkey", "authkey", "adminkey",
        "rootkey", "deploykey", "hmackey", "writekey", "subscriptionkey", "functionkey", "functionskey",
        "clientkey", "serverkey", "userkey", "jwtkey", "aeskey", "cryptokey", "cipherkey", "privkey",
        "cookie", "cookies", "session", "sessionid", "sessid", "csrf",
        "xsrf", "ssn", "socialsecurity", "creditcard", "cardnumber", "ccnumber", "cvv", "cvc", "securitycode",
        "pin", "otp", "totp", "dsn", "connectionstring", "connstring", "connstr",
        # what restores an account or a wallet
        "mnemonic", "seedphrase", "recoverycode", "recoverycodes", "backupcode", "backupcodes", "mfacode",
        "totpseed", "otpseed",
        # a Wi-Fi or VPN pre-shared key; Redis's and Kickstart's password settings
        "psk", "presharedkey", "requirepass", "masterauth", "rootpw", "sshpass",
        # "password" with letters left out, as names get abbreviated
        "psswd", "pswrd", "psword", "psswrd", "pssword", "paswd", "paswrd", "pasword", "passwrd", "pword",
        # and in other languages (German, Spanish, Portuguese, French, Dutch, Polish, Swedish, Finnish,
        # Czech and Slovak, Norwegian, Danish, Turkish), spelt in ASCII as code spells them
        "passwort", "kennwort", "contrasena", "senha", "motdepasse", "wachtwoord", "haslo", "losenord",
        "salasana", "heslo", "passord", "adgangskode", "sifre",
    }
)  # fmt: skip
# Names that often, not always, hold a credential: their value is masked when it looks like one.
# ``sid`` and ``symfony`` are session cookies (``connect.sid`` of Express, Symfony's default name); a
# ``secret_id`` is Vault's AppRole secret (a UUID) or names a stored secret (``prod/db``, an ARN).
WEAK_TERMS = frozenset(
    {
        "key", "keys", "aws", "login", "accessid", "accesskeyid", "privatekeyid", "sid", "symfony",
        "secretid", "salt",  # WordPress's ``AUTH_SALT``; a salt beside its hash is no secret
    }
)  # fmt: skip
# Words before a weak term that make the key an identifier of something public (``cache_key``).
_PUBLIC_QUALIFIERS = frozenset(
    {
        "cache", "primary", "foreign", "message", "object", "partition", "sort", "idempotency",
        "dedup", "dedupe", "public", "pub", "row", "lookup", "map", "sequence", "seq", "schema", "bucket",
        "group", "index", "unique", "shard", "kafka", "redis", "translation", "storage", "file", "config",
        "setting", "settings", "dict", "hash", "composite", "natural", "surrogate", "hotkey", "shortcut",
        "keyboard", "press", "down", "up", "entry", "kms", "issuer", "ssh", "gpg", "pgp", "region", "name",
        "publishable", "site", "rsa", "dsa", "ecdsa", "eddsa", "ed25519", "s3", "gcs", "blob",
        "flag",
    }
)  # fmt: skip
# Words before ``token`` that make it a cursor or a signal, not a credential
_PAGING = frozenset(
    {"page", "next", "continuation", "pagination", "paging", "sync", "resume", "cancellation"}
)
# Terms distinctive enough to be found at the end of a glued lowercase word (``dbpassword``, ``jsessionid``).
_SUFFIX_TERMS = frozenset(
    {
        "password", "passwords", "passwd", "pwd", "passphrase", "passcode", "secret", "secrets", "token",
        "jwt", "authorization", "credential", "credentials", "creds", "apikey", "apikeys", "privatekey",
        "secretkey", "accesskey", "signingkey", "encryptionkey", "masterkey", "sessionkey", "sessionid",
        "sessid", "cookie", "cookies", "creditcard", "cardnumber", "connectionstring", "dsn",
    }
)  # fmt: skip
# What a glued ``...pass`` is the password of
_PASS_OWNERS = frozenset(
    {
        "db", "mysql", "pg", "postgres", "redis", "mongo", "smtp", "mail", "imap", "pop", "ftp", "sftp",
        "ssh", "user", "admin", "root", "ldap", "bind", "proxy", "vnc", "rdp", "wifi", "wpa", "store",
        "keystore", "truststore", "key", "api", "app", "sa", "sys", "master", "default", "auth", "login",
        "my", "your", "new", "old", "web", "http", "basic", "db2", "oracle", "mssql", "sql", "rabbit",
        "amqp", "mq", "kafka", "es", "elastic", "jks", "p12", "pfx", "cert", "zip", "rar", "vault", "client",
        "server",
    }
)  # fmt: skip
# The same value written another way: ``password_b64``, ``file.hash.sha256_b64``
_ENCODINGS = frozenset({"b64", "base64", "b32", "base32", "hex", "encoded"})
_SAME_VALUE_WORDS = _ENCODINGS | frozenset(
    {
        "value", "values", "val", "str", "string", "text", "raw", "plain", "plaintext", "clear", "cleartext",
        "confirm", "confirmation", "again", "repeat", "new", "old", "current", "prev", "previous", "orig",
        "original", "enc", "encrypted", "bytes", "hash",
        "hashed", "digest", "sha1", "sha256", "sha512", "md5", "hmac", "code", "header", "headers", "input",
        "env", "var", "data", "json", "yaml", "yml", "pem", "number", "num", "no", "nr",
        # which deployment, lifetime or scope the same secret is for: ``API_KEY_PROD``, ``..._LONG_LIVED``
        "prod", "production", "dev", "development", "stage", "staging", "test", "testing", "qa", "uat",
        "live", "sandbox", "local", "primary", "secondary", "backup", "fallback", "default", "main", "alt",
        "temp", "tmp", "long", "short", "lived", "readonly", "ro", "rw", "admin", "const", "constant",
        # the private half of a pair, a secret's base (Mailjet's ``MJ_APIKEY_PRIVATE``, ``secret_key_base``)
        "private", "base",
    }
)  # fmt: skip
# Secrets that are short digit strings: ``pin 1234`` is worth masking, ``session 1234`` is not.
NUMERIC_TERMS = frozenset(
    {"pin", "otp", "totp", "cvv", "cvc", "ssn", "cardnumber", "creditcard", "ccnumber", "passcode", "mfacode"}
)
# Header-like keys whose unquoted value runs to the end of the line (``Cookie: a=1; b=2``).
LINE_TERMS = frozenset({"cookie", "cookies", "authorization"})
# Query parameters that carry a credential although the name alone would not make a secret key.
QUERY_TERMS = frozenset(
    {
        "sig", "signature", "key", "xamzsignature", "xamzcredential", "xgoogsignature", "appid", "hmac",
        "oauthsignature",  # OpenWeather's ``appid=<key>``, a request's ``hmac=``, OAuth 1.0's signature
    }
)  # fmt: skip
# Substrings that every secret key name contains, used to find candidate keys in free text quickly.
KEY_HINTS = (
    "pass", "pwd", "pw", "secret", "token", "jwt", "auth", "cred", "key", "cookie", "sess", "csrf", "xsrf",
    "ssn", "card", "cvv", "cvc", "pin", "otp", "dsn", "conn", "security", "number", "login", "aws", "access",
    "mnemonic", "phrase", "recovery", "backup", "mfa", "symfony", "bundle_", "psk", "salt",
    "psw", "pssw", "pasw", "pword", "kennw", "contrasen", "senha", "wachtw", "haslo", "losenord", "salasana",
    "heslo", "adgang", "sifre",
)  # fmt: skip
MAX_KEY_WORDS = 12
_BARE_IDS = frozenset({"id", "ids"})  # a ``uid`` is one whatever it names (Zeek's connection uids, a user's)
# What telemetry gives ids to: ``messaging.message.id``, ``dd.trace_id``, ``k8s.pod.uid``, ``BUILD_ID``
_PUBLIC_OBJECTS = frozenset(
    {
        "trace", "span", "parent", "request", "req", "response", "message", "msg", "event", "correlation",
        "causation", "build", "run", "job", "task", "step", "pipeline", "workflow", "execution",
        "invocation", "deployment", "release", "artifact", "commit", "container", "image", "pod", "node",
        "instance", "host", "vm", "cluster", "resource", "doc", "document", "object", "record", "row",
        "entity", "item", "order", "user", "customer", "transaction", "txn", "payment", "invoice", "charge",
        "cart", "product", "file", "upload", "blob", "query", "device", "tenant", "org", "organization",
        "project", "workspace", "team", "group", "thread", "conversation", "chat", "channel", "ray", "cf",
        "amz", "batch", "stream", "partition", "shard", "replica", "snapshot", "volume", "subnet", "vpc",
        "region", "zone", "test", "case", "ticket", "issue", "incident", "alert", "visitor", "page",
        "video", "post", "comment", "model", "game",
        # cloud resources (not a role: Vault's AppRole pairs ``role_id`` with ``secret_id``)
        "address", "archive", "lock", "capacity", "certificate", "cert", "environment", "env", "location",
        "endpoint", "vault", "bundle", "reservation", "backup", "table", "database", "queue", "topic",
        "subscription", "rule", "policy", "distribution", "function", "layer", "gateway", "listener",
        "target", "filter", "set", "ipset", "domain", "hosted", "registry", "repository", "connection",
        "repo", "branch", "pr", "merge", "change", "download", "attachment", "community", "flow",
    }
)  # fmt: skip
# Words of a key that make an id a credential's part: a client id goes with its secret, as scanners find it
_CREDENTIAL_WORDS = SECRET_TERMS | WEAK_TERMS | {
    "client", "app", "application", "api", "access", "consumer", "merchant", "license", "not", "private",
}  # fmt: skip
# The last word of a key that names an id or a digest: its value is one, whatever its shape
_ID_WORDS = frozenset(
    {
        "id", "ids", "uid", "uuid", "guid", "ulid", "sha", "sha1", "sha256", "sha384", "sha512", "md5",
        "hash", "digest", "checksum", "etag", "revision", "rev", "commit", "fingerprint", "cursor", "ray",
        "uids", "uuids", "guids", "hashes", "digests", "checksums", "etags", "revisions", "commits",
        "integrity", "challenge", "nonce",  # PKCE's code_challenge is a hash; a nonce is public by protocol
        # ad click ids in landing-page query strings
        "gclid", "fbclid", "msclkid", "dclid", "gbraid", "wbraid", "yclid", "ttclid", "twclid",
    }
)  # fmt: skip


def words(key: str) -> list[str]:
    """The lowercase words of a key; ``base64``, ``sha256`` and their kin stay one word."""
    found: list[str] = []
    end = -1
    for match in _WORD.finditer(key):
        word = match[0].lower()
        if found and match.start() == end and word.isdigit() and found[-1] in _GLUED_STEMS:
            found[-1] += word
        else:
            found.append(word)
        end = match.end()
    return found


def canonical(key: str) -> str:
    return "".join(words(key))


def last_word(key: str) -> str:
    """The last alphabetic word of a key, which the key contains however it is spelled."""
    alphabetic = [word for word in words(key) if word.isalpha()]
    return alphabetic[-1] if alphabetic else ""


# Public qualifiers of ``key`` that make it an identifier; not where the name of a key goes (``hotkey``), a
# store that may hold a credential (``storage_key``, ``ssh_key``, ``config_key``), nor a cache's key, which
# holds a session id as often as not (``sess:<id>`` of express-session)
_ID_QUALIFIERS = _PUBLIC_QUALIFIERS - {
    "storage", "config", "setting", "settings", "hotkey", "shortcut", "keyboard", "press", "down", "up",
    "ssh", "cache", "redis",
}  # fmt: skip


def names_id(key: str) -> bool:
    """Whether ``key``'s field names an id or a digest (``messaging.message.id``, ``dd.trace_id``,
    ``http.request.header.content-md5``, ``REQUEST_ID``, ``cache_key``, ``messaging.kafka.message.key``),
    and not an id that goes with a credential (``client_id``, ``token_id``, ``api_key_id``) nor a sentence
    (``secret_do_not_commit``)."""
    all_words = words(key)
    if len(all_words) >= 2 and all_words[-1] in ("key", "keys") and all_words[-2] in _ID_QUALIFIERS:
        return True
    field_words = words(field(key))
    if field_words and field_words[-1] in _ENCODINGS:  # the same digest written another way:
        field_words = all_words  # ``file.hash.sha256_b64``, ``artifact.digest.hex``
        while len(field_words) > 1 and field_words[-1] in _ENCODINGS:
            field_words = field_words[:-1]
    if not field_words or field_words[-1] not in _ID_WORDS or not _CREDENTIAL_WORDS.isdisjoint(field_words):
        return False
    if field_words[-1] not in _BARE_IDS:
        return True
    # ``id`` alone says little (``dwolla_id`` is half of a key pair): the id of what telemetry names, or a
    # dotted attribute's own ``.id`` field (``enduser.id``, ``gen_ai.tool.call.id``, ``k8s.statefulset.uid``),
    # as semantic conventions name one, not a credential's (``azure.client.id``)
    if len(all_words) < 2:
        return False
    namespace, _, last = key.rpartition(".")
    if namespace and last in _BARE_IDS and _DOTTED_NAME.fullmatch(key):
        return _CREDENTIAL_WORDS.isdisjoint(words(field(namespace))) or all_words[-2] == "app"
    return all_words[-2] in _PUBLIC_OBJECTS


_DOTTED_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")


def names_collection(segment: str) -> bool:
    """A URL path's segment naming a collection of what telemetry gives ids to (``orgs``, ``events``), whose
    next segment is an object's id; not downloads, which are shared by a capability in their link."""
    low = segment.lower()
    return low.endswith("s") and low[:-1] in _PUBLIC_OBJECTS and low != "downloads"


def field(key: str) -> str:
    """The segment of a dotted key that names the field: ``http.request.header.x-api-key`` -> x-api-key."""
    for segment in reversed(key.split(".")):
        if any(char.isalpha() for char in segment):
            return segment
    return key


def match_tail(words_: list[str], terms: frozenset[str], suffixes: frozenset[str]) -> str:
    """The longest term the words end with (before same-value words), or ""."""
    end = len(words_)
    while end:
        joined = "".join(words_[:end])
        for term in suffixes:
            if joined.endswith(term):
                return term
        tail = found = ""
        for word in reversed(words_[:end]):
            tail = word + tail
            if tail in terms:
                found = tail
        if found:
            return found
        last = words_[end - 1]
        if not (last.isdigit() or last in _SAME_VALUE_WORDS):
            return ""
        end -= 1
    return ""


# Bundler's credentials for a gem source, one setting per host with its dots as ``__``
# (``BUNDLE_GEMS__EXAMPLE__COM=user:password``); its other ``__`` settings name a gem or a mirror.
_BUNDLER_CREDENTIALS = re.compile(r"BUNDLE_(?!(?:BUILD|MIRROR|LOCAL)__)[A-Z0-9-]+(?:__[A-Z0-9-]+){2,}")


_PUBLIC_KEY_TOKEN = ["public", "key", "token"]


def classify(key: str, allow: frozenset[str], extra_terms: frozenset[str]) -> str:
    """The secret term a key ends with ("" when none); a weak term only without a public qualifier."""
    field_words = words(field(key))
    if not field_words or canonical(key) in allow or "".join(field_words) in allow:
        return ""
    if key.startswith("BUNDLE_") and _BUNDLER_CREDENTIALS.fullmatch(key):
        return "credentials"
    if field_words[-3:] == _PUBLIC_KEY_TOKEN:
        return ""  # .NET's ``PublicKeyToken=31bf3856ad364e35``: the last 8 bytes of a public key's hash
    tail = field_words[-MAX_KEY_WORDS:]
    kind = match_tail(tail, SECRET_TERMS | WEAK_TERMS, _SUFFIX_TERMS)
    if kind in WEAK_TERMS and _PUBLIC_QUALIFIERS.intersection(words(key)):
        kind = ""
    elif kind == "key" and tail[-1] in ("code", "codes"):
        kind = ""  # a keyboard's: ``keyCode``, ``event.key_code``
    elif kind == "token" and len(tail) >= 2 and tail[-2] in _PAGING and tail[-1] == "token":
        kind = ""  # a cursor: ``nextPageToken``, S3's ``ContinuationToken``, .NET's ``cancellationToken``
    if not kind and field_words[-1].endswith("pass") and field_words[-1][:-4] in _PASS_OWNERS:
        kind = "pass"  # ``dbpass``, ``smtppass``; not ``bypass``, ``compass``, ``renderpass``
    if not kind and extra_terms:
        kind = match_tail(words(key)[-MAX_KEY_WORDS:], extra_terms, frozenset())
    return kind
