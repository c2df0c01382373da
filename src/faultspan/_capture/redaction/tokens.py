"""Whether a token is a random credential: the shape test behind the generic token and prefix rules.

A token is a run of the characters credentials are written with (letters, digits, ``+/=_.~-``). It is judged
by what random strings have and written text lacks: length, several character classes, frequent changes of
class, many distinct characters; and by what it is *not*: a word or an identifier (camelCase, snake_case),
a path, a version, a placeholder (``xxxx``, ``1234...``), base64 of readable text, and, unless the context
says "secret", plain hex (git SHAs, digests, trace ids), a UUID or a number.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import math
import re
from collections import Counter

from faultspan._capture.redaction import keys as key_rules

# How much the surroundings say about a token: nothing, a public id (``sha``, ``trace id``), a vendor-style
# prefix before it, a secret word (or a secret key) before it.
NEUTRAL, PUBLIC, SECRET, PREFIXED = 0, -1, 2, 1

HEX = frozenset("0123456789abcdefABCDEF")
_B64_TEXT = re.compile(r"[A-Za-z0-9+/]{10,}={0,2}|[A-Za-z0-9_-]{10,}={0,2}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SEPARATORS = re.compile(r"[-_.~]+")
_PARTS = re.compile(r"[-_.~/+=]+")
_BASE64_SYMBOLS = frozenset("+/-_")  # slugs and names use one separator, base64 and base64url two of these
_VOWELS = frozenset("aeiouy")
_IDENTIFIER_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_FILE_SUFFIX = re.compile(
    r"\.(?:png|jpe?g|gif|svg|webp|ico|css|js|mjs|map|html?|json|ya?ml|xml|txt|md|pdf|zip|gz|tgz|tar|whl|"
    r"py|pyc|so|dll|exe|bin|log|csv|bfu|img|iso|jar|war|lock|toml|cfg|ini|pem|crt|cer|der|p12|key|keytab|"
    r"woff2?|ttf|otf|eot|wasm|tsx?|jsx|vue|rb|go|java|class|rs|sh|sql|db|sqlite|proto|pb|parquet|avro|orc|"
    r"snappy|zst|bz2|xz|mp[34]|wav|avif|bmp|docx?|xlsx?|pptx?|conda|egg|deb|rpm|apk|nupkg|gem|crate)$",
    re.IGNORECASE,
)
_PLACEHOLDER_WORDS = ("xxxx", "XXXX", "****", "####", "....", "your", "YOUR", "HERE", "redacted", "REDACTED")
_SEQUENCES = ("0123456789", "abcdefghij", "ABCDEFGHIJ", "qwerty", "QWERTY", "1234567890")


# The letter pairs that make up 97 % of the words in English text and code identifiers (measured on CPython's
# standard library, split at camelCase): random letters use the other pairs about 60 % of the time, words and
# identifiers about 3 %.
_PAIRS = """
    ab ac ad af ag ai ak al am an ap ar as at au av aw ax ay ba be bi bj bl bo br bu by ca cc ce ch
    ci ck cl co cr cs ct cu cy da dd de di dl do dr ds du ea eb ec ed ee ef eg ei el em en eo ep eq
    er es et ev ew ex ey fa fe ff fi fl fo fr ft fu ge gh gi gl gn gr gs gu ha he hi ho hr ht ia ib
    ic id ie if ig il im in io ip ir is it iv ix iz je ke ki ks kw la ld le lf li ll lo ls lt lu ly
    ma mb me mi mm mo mp ms mu na nc nd ne nf ng ni nk nl nn no np ns nt nu nv oa ob oc od of og oi
    ok ol om on oo op or os ot ou ov ow ox pa pe pi pl po pp pr pt pu py qu ra rc rd re rg ri rk rl
    rm rn ro rr rs rt ru rv ry sa sc se sg sh si sk sl sm so sp ss st su sy ta tc td te tf th ti tl
    to tp tr ts tt tu tw ty ua ub uc ue uf ug ui ul um un up ur us ut va ve vi wa we wh wi wn wo wr
    xc xe xi xp xt yp ys yt ze
"""
_COMMON_PAIRS = frozenset(_PAIRS.split())
_LETTER_RUNS = re.compile(r"[A-Za-z]{2,}")
_DIGIT_AMONG_LETTERS = re.compile(r"[A-Za-z][0-9]+[A-Za-z]")


def scrambled(token: str) -> tuple[float, int]:
    """(the share of neighbouring letters that words rarely put side by side, how many pairs were counted):
    ``jtgya`` 4 of 4, ``django`` 3 of 5, ``checkout`` 1 of 7."""
    rare = pairs = 0
    for run in _LETTER_RUNS.findall(token):
        low = run.lower()
        pairs += len(low) - 1
        rare += sum(low[i : i + 2] not in _COMMON_PAIRS for i in range(len(low) - 1))
    return (rare / pairs if pairs else 0.0), pairs


def _classes(token: str) -> tuple[int, int, int, int, int]:
    """(lowercase, uppercase, digits, other characters, changes of class between neighbours)."""
    lower = upper = digit = other = changes = 0
    previous = -1
    for char in token:
        if "a" <= char <= "z":
            lower += 1
            current = 0
        elif "A" <= char <= "Z":
            upper += 1
            current = 1
        elif "0" <= char <= "9":
            digit += 1
            current = 2
        else:
            other += 1
            current = 3
        if current != previous:
            changes += 1
            previous = current
    return lower, upper, digit, other, changes - 1


def entropy(token: str) -> float:
    """Shannon entropy in bits per character."""
    length = len(token)
    return -sum(count / length * math.log2(count / length) for count in Counter(token).values())


def placeholder(token: str) -> bool:
    """``xxxx``, ``<token>``, ``${VAR}``, ``1234567890``, a character repeated: not a credential."""
    if len(set(token)) <= 3 or token[:1] in "<$%{[" or token.endswith((">", "}", "%")):
        return True
    longest = max(_PARTS.split(token), key=len)
    if len(set(longest)) <= 2:
        return True  # ghp_0000..., xoxb-xxxx-xxxx
    return any(word in token for word in _PLACEHOLDER_WORDS) or any(seq in token for seq in _SEQUENCES)


def mixed_segment(token: str) -> bool:
    """Whether the last segment of ``token`` has digits between letters, as random bodies have and names
    (``foreignKey``, ``MantleAPI_version``, ``userId2``) have not."""
    return _DIGIT_AMONG_LETTERS.search(_SEPARATORS.split(token)[-1]) is not None


def _word_like(word: str) -> bool:
    """Pronounceable: vowels in proportion and no long consonant run, as words are and random letters not."""
    low = word.lower()
    if len(low) >= 7 and not word.isupper() and scrambled(low)[0] >= 0.5:
        return False  # vowels in place but letters in no word's order: ``jyvpuuyzliuf`` (acronyms aside)
    vowels = sum(char in _VOWELS for char in low)
    if not 0.1 <= vowels / len(low) <= 0.8:  # ``queue``, ``audio``
        return False
    run = longest = 0
    for char in low:
        run = 0 if char in _VOWELS else run + 1
        longest = max(longest, run)
    return longest <= 4


def _identifier(segment: str) -> bool:
    """A word, or words joined in camelCase/PascalCase with a number at most: ``TestSourcePassword``."""
    parts = _IDENTIFIER_WORDS.findall(segment)
    words = [part for part in parts if part.isalpha()]
    if sum(part.isdigit() for part in parts) > 1:
        return _versioned(segment, words)
    letters = sum(map(len, words))
    if letters < len(segment) * 0.75:
        return False
    share, pairs = scrambled(segment)
    if pairs >= 8 and share <= 0.2:  # random letters: 0.6 +- 0.13 at 15 pairs
        return True  # the letters in the order words have, whatever the pieces: ``LighttpdConfLexer``
    # Short pieces count as words, and so does one odd short piece (an abbreviation: ``Cql``, ``Pdf``); two or
    # more whose letters no word holds (``Zv``, ``Slw``), between few real words, are what random case changes
    # leave.
    odd = {word for word in words if len(word) < 5 and not word.isupper() and scrambled(word)[0] >= 0.5}
    # real words written as code writes them (``Verification``, not a capital run such as ``CYEXAMPLEKEY``)
    long_words = sum(
        len(word) for word in words if len(word) >= 5 and not word.isupper() and _word_like(word)
    )
    odd = odd if len(odd) >= 2 and long_words < letters * 0.5 else set()  # ``TokenVerificationSdJwt`` is code
    wordy = sum(len(word) for word in words if (len(word) < 5 and word not in odd) or _word_like(word))
    short = sum(len(word) < 4 for word in words)  # random case changes leave many short pieces
    few_short = short <= max(1, len(words) // 2) or long_words >= letters * 0.5  # ``TokenVerificationSd``
    return wordy >= letters * 0.9 and few_short


def _versioned(segment: str, words: list[str]) -> bool:
    """Words with a version or a date among them, as event and API names are written (``ProcessRollup2V19``,
    ``UpdateFunctionCode20150331v2``, ``ProcessRollup2MacV9``): 60 % of the characters in capitalised words of
    4+ letters, one of 6+, two short pieces at most (``Mac``, the ``v``)."""
    long_words = [word for word in words if len(word) >= 4]
    return (
        sum(map(len, long_words)) >= len(segment) * 0.6
        and len(words) - len(long_words) <= 2
        and max(map(len, long_words), default=0) >= 6
        and all(word.istitle() and _word_like(word) and scrambled(word)[0] < 0.4 for word in long_words)
    )


_FIELD_PIECES = re.compile(r"[A-Z]{2,}s(?![a-z])|[A-Z]?[a-z]+|[A-Z]+(?![a-z])")  # ``ARNs`` is one acronym


def field_name(value: str) -> bool:
    """Letters as a field's name is spelled: a word (``password``), or words and acronyms in camelCase with
    one odd abbreviation at most (``KmsKeyId``, ``TapeARNs``); random case changes leave several pieces that
    no word holds (``qXzRtWpL``: Xz, Rt, Wp)."""
    pieces = _FIELD_PIECES.findall(value)
    if len(pieces) == 1:
        return _word_like(value)
    odd = 0
    for piece in pieces:
        if piece.isupper():
            odd += not 2 <= len(piece) <= 4  # an acronym: ``ACL``, ``ARN``
        else:
            odd += (
                len(piece) == 1 or scrambled(piece)[0] >= 0.5 or (len(piece) >= 4 and not _word_like(piece))
            )
    return odd <= 1 and len(pieces) <= 5


def _titled(part: str) -> bool:
    """A word as titles and slugs write it, not a vendor's capitals (``NRJS``)."""
    return not part.isupper() and _identifier(part)


def _base64_text(token: str) -> str | None:
    """The readable text a token is base64 of (``c3VwZXIgc2VjcmV0IHZhbHVl`` is "super secret value"), or None
    when it is not base64 of text."""
    if not _B64_TEXT.fullmatch(token):
        return None
    body = token.rstrip("=")
    padded = body + "=" * (-len(body) % 4)
    try:
        raw = binascii.a2b_base64(padded.replace("-", "+").replace("_", "/"))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 6 or not _readable(raw):
        return None
    return raw.decode("latin-1")


def _readable(raw: bytes) -> bool:
    """Bytes that are text, 95 % printable: random bytes are all printable one time in 400 at 6 bytes, and
    rarer after."""
    return sum(32 <= byte < 127 or byte in (9, 10, 13) for byte in raw) >= len(raw) * 0.95


# What HTTP Basic authentication encodes: ``user:password`` (a user name or e-mail, then characters, a few
# of them maybe beyond ASCII as ``_readable`` allows), not ``scheme://...`` nor JSON (``{"alg":"HS256"}``).
_BASIC_PAIR = re.compile(r"\w[\w.@+-]{0,63}:(?!//)[!-~\x80-\xff][ -~\x80-\xff]{0,127}", re.ASCII)


def _basic_pair(text: str) -> bool:
    """``user:password``, not a GraphQL/Relay global id (``User:123``, ``Order:<uuid>``, GitHub's
    ``04:User583231``): a user starting with a digit is a long client id, the password is not a number, nor
    hex or a UUID after a type's capitalised name (``deploy:<uuid>`` is a login with an API key, as
    Heroku's are)."""
    if not _BASIC_PAIR.fullmatch(text):
        return False
    user, _, password = text.partition(":")
    if user[0].isdigit() and (len(user) < 8 or len(password) < 8):
        return False  # GitHub's ``04:User583231``; a client id and secret (``<hex>:<hex>``) are long
    return not (password.isdigit() or (hex_like(password) and user[0].isupper()))


# Base64 of a JSON object that holds a random value or a value under a secret key: Grafana's ``eyJrIjoi...``
# (``{"k":"<key>","n":...}``), a Docker config (``{"auths":{"<registry>":{"auth":"<user:password>"}}}``), not
# a pagination cursor (``{"offset":20}``) nor a JWT header (``{"alg":"HS256"}``)
_JSON_STRING = re.compile(r'"([^"\\]{1,64})"\s*:\s*"([^"\\]{1,512})"')
_LOGIN = re.compile(r"\w[\w.@+-]{0,63}", re.ASCII)


def _json_secret(text: str) -> bool:
    """Also after a login, as Docker's ``_json_key:{...}`` logs in with a key file; a Google service account's
    key file is one whatever its keys (a prefix of it encoded shows only its ``type``)."""
    if not text.startswith("{"):
        user, _, text = text.partition(":")
        if not (text.startswith("{") and _LOGIN.fullmatch(user)):
            return False
    for key, value in _JSON_STRING.findall(text):
        if key == "type" and value == "service_account":
            return True
        kind = key_rules.classify(key, frozenset(), frozenset())
        if (kind and kind not in key_rules.WEAK_TERMS and len(value) >= 4) or (
            len(value) >= 16 and looks_random(value)
        ):
            return True
    return False


_PASSWORD_WORD = re.compile(r"passw|pwd|secret|token|api_?key", re.I)


def _encoded_word(text: str) -> bool:
    """Base64 of one word that names or reads as a password (``bXlwYXNzd29yZA==`` is "mypassword") or is a
    vendor-style key (``private_<random>``): text that was encoded has spaces, and a bare word is what a
    config's obfuscated password or a vendor's wrapped key holds."""
    return (
        len(text) <= 64
        and not any(map(str.isspace, text))
        and (_PASSWORD_WORD.search(text) is not None or password_like(text) or prefixed_random(text))
    )


# Groups of capitals and digits joined by dashes, as license and account keys are written
# (``A3-ASWWYB-798JRY-LJVD4-23DC2-86TVM-H43EB``, ``VK7JG-NPHTM-C97JM-9MPGT-3V66T``), or a UUID's layout in
# letters beyond hex (``9jyxkwvk-rjnp-7eo1-1gtc-ruj6rqmiyapo``: no UUID is); cipher suites and codes have
# shorter groups or no digits among the letters.
_LETTER_UUID = r"[a-z0-9]{8}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{12}"
_GROUPED = re.compile(r"[A-Z0-9]{2,8}(?:-[A-Z0-9]{4,8}){3,}|" + _LETTER_UUID)
# the same layout ending a token after a prefix: PubNub's ``pub-c-<it>``, Figma's ``<digits>-<it>``
_LETTER_UUID_TAIL = re.compile(r"(?<![A-Za-z0-9])" + _LETTER_UUID + r"\Z")


def letter_uuid(token: str) -> bool:
    """Whether ``token`` ends in a UUID's layout written with letters beyond hex, random in its groups."""
    found = _LETTER_UUID_TAIL.search(token) if "-" in token else None
    return found is not None and not hex_like(found[0]) and _grouped_random(found[0])


def _grouped_random(token: str) -> bool:
    groups = token.split("-")
    mixed = sum(any(char.isdigit() for char in group) and not group.isdigit() for group in groups)
    return mixed * 2 >= len(groups) and len(set(token)) >= 12 and not placeholder(token)


_NEED = {SECRET: 8, PREFIXED: 10, NEUTRAL: 16, PUBLIC: 24}  # the random part's length, by context
# In a public-id context only the length test below can say yes (base64 and hex say no there), so nothing
# shorter than its ``need`` is random: URL segments (``sessions``, ``shop.example.com``) are judged at once.
_SHORTEST = {PUBLIC: _NEED[PUBLIC]}


# The directories of a path: words as directories are named, dates, numbers, the two-character fan-out of
# content-addressed stores (``.git/objects/4b/...``, ``cache/d8/...``); base64's ``/`` cuts random pieces.
_DIRECTORY = re.compile(r"(?:\.{1,2}|~)?(?:[A-Za-z0-9][a-z0-9_.@+-]{0,39})?")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}\Z")  # ``.woff2``, ``.c000.snappy.parquet``, ``-zlib-1.3.1``
_FAN_OUT = re.compile(r"[0-9a-f]{2}")
_HASH_NAME = re.compile(r"[0-9a-z]{20,64}-[a-z][\w.+-]*")  # Nix's ``<hash>-curl-8.6.0-bin``


def file_path(token: str) -> bool:
    """A file's path: 3+ pieces, the directories named as directories are, the last piece ending in an
    extension, under a content-addressed fan-out or a hash and a name. That last piece, random as it may be
    (a Nix store hash, a git object, an export's UUID), names a file; a random last piece without any of
    these (``/reset/<token>``) is still judged."""
    pieces = token.split("/")
    if len(pieces) < 3:
        return False
    last = pieces[-1]
    named = _EXTENSION.search(last) or _FAN_OUT.fullmatch(pieces[-2]) or _HASH_NAME.fullmatch(last)
    if not (named or (len(last) in (32, 40, 64) and hex_like(last))):  # also a container's or a blob's digest
        return False  # the cheaper test first: most paths with an id end in a word (``/orders/<id>/items``)
    return any(pieces[:-1]) and all(
        _DIRECTORY.fullmatch(piece) or _HASH_NAME.fullmatch(piece) for piece in pieces[:-1]
    )  # ``/nix/store/<hash>-python3-3.12.1/bin/python3.12``


def looks_random(token: str, context: int = NEUTRAL) -> bool:
    """Whether ``token`` reads as a random credential, given what its surroundings say about it.

    Without context, a token needs a random-looking part of 16+ characters with letters and digits (or both
    cases) that changes class often, and is neither hex, a UUID, a number nor base64 of text. With secret
    context (a key word before it, a vendor-style prefix) 8 characters suffice, and hex, UUIDs and long
    numbers count; a public-id context (``sha``, ``trace``, ``commit``) asks for more.
    """
    length = len(token)
    if length < _SHORTEST.get(context, 8) or ("/" in token and file_path(token)):
        return False
    if _UUID.fullmatch(token):
        return context == SECRET or hex_verdict(token, context)
    text = _base64_text(token)
    encoded = text is not None and (
        _basic_pair(text) or text.startswith("-----BEGIN") or _json_secret(text) or _encoded_word(text)
    )
    # A Kubernetes name or a UUID inside is decided before the slower placeholder test: in either order the
    # answer is no, unless the token is base64 of a credential (``LS0tLS1CRUdJTi...<uuid>``).
    if not encoded and (_k8s_name(token) or (context != SECRET and _UUID.search(token.replace("_", "-")))):
        return False
    if placeholder(token) or _FILE_SUFFIX.search(token):
        # where a key or word says "secret", a test value stands for one as after a vendor prefix
        return context == SECRET and _dummy(token) and not any(word in token for word in _PLACEHOLDER_WORDS)
    if encoded:
        return context != PUBLIC  # ``YWRtaW46cGFzc3dvcmQ=`` (a Basic credential), ``LS0tLS1CRUdJTi...`` (PEM)
    if hex_like(token):
        if context != SECRET:
            return hex_verdict(token, context)
        return length >= 16 and len(set(token)) >= 5 if token.isdigit() else length >= 12
    if _GROUPED.fullmatch(token) or letter_uuid(token):
        return context != PUBLIC and _grouped_random(token)
    # The longest run between separators carries the randomness: ``ORD-2024-000183`` and ``v1.2.3`` have none.
    parts = [part for part in _PARTS.split(token) if part]
    cut = False  # base64 cut by its symbols into pieces of one random run
    if "/" in token:
        pieces = token.split("/")
        cut = _random_pieces(pieces) or (  # ``wJalrXUtnFEMI/K7MDENG/bPxRfiCY...``, not ``/services/T0/B0/..``
            not _NAMED_DIRECTORY.fullmatch(next(filter(None, pieces), "")) and _scattered(token, parts)
        )
        if len(pieces) >= 3 and length / len(pieces) < 12 and not cut:
            return False  # a path
        if not cut and _NAMED_DIRECTORY.fullmatch(pieces[0]) and not any(map(looks_random, pieces[1:])):
            return False  # a resource's path, none of its names random alone: ``app/<lb name>/<16 hex>``
    parts = [part for part in parts if not part.isdigit()] or parts
    body = max(parts, key=len) if parts else ""
    if cut or (
        context == SECRET and len(body) < _NEED[SECRET] and len(_BASE64_SYMBOLS.intersection(token)) >= 2
    ):
        body = _PARTS.sub("", token)  # with secret context, two of its symbols: ``u+Lyhd2_N2MCy+ZoH-S5``
        parts = [body]
    elif context == NEUTRAL and (
        (len(body) < 12 and _random_halves(parts))  # a short password cut by a symbol: ``pk0D6j_67XR2Fwu``
        or (len(body) < _NEED[NEUTRAL] and _scattered(token, parts))  # base64url: ``1I3-UUoOm-Ex5kUtX_iR``
    ):
        body = "".join(parts)
        parts = [body]
    if len(parts) > 1 and context <= PREFIXED and hex_like(body) and _named_with_hash(parts, body, context):
        return False  # a slug and its id: ``Release-Notes-1bc826ecc0994dd8915be97fc3489cde``, a worker's name
    if context < SECRET and any(map(_epoch, parts)):
        return False  # an id that starts from the time: ``operation-1706619154623-610293c7a6a25-...``
    need = _NEED[context]
    lower, upper, digit, _, changes = _classes(token)
    kinds = (lower > 0) + (upper > 0) + (digit > 0)
    share, pairs = scrambled(body)
    # Both cases and digits with letters in an order no word has (``pdBJLN7xxuYq``) are random at 12
    # characters. Without capitals they are not: host names are coded that way (``sjc2prdkfk04``), and so is a
    # word with a number (``manylinux2014``); nor are alternating classes alone (``glTexImage2D``).
    # Scrambled letters also stand in for frequent changes of class (``jyvpuuyzliuf3819``).
    short_random = kinds == 3 and share >= 0.4 and pairs >= 4
    if context == NEUTRAL and len(body) >= 12 and _DIGIT_AMONG_LETTERS.search(body) and short_random:
        need = 12
    jumbled = (share >= 0.4 and pairs >= 10) or (share >= 0.3 and pairs >= 20)
    random_parts = [
        part
        for part in parts
        if len(part) >= max(8, need * 0.6) and len(set(part)) >= len(part) * 0.5 and not _identifier(part)
    ]
    spread = len(random_parts) >= 2 and sum(map(len, random_parts)) >= need + 4  # randomness in several parts
    if len(body) < need and not spread:
        return False
    letters = lower + upper
    if letters == 0 or (kinds < 2 and context < PREFIXED):
        return False
    if lower == 0 and context == NEUTRAL and length < 24:
        return False  # serials, tracking numbers, order codes: ``1Z999AA10123456784``
    long_parts = [part for part in parts if len(part) >= 5]
    if (_identifier(body) and not spread) or (long_parts and all(map(_identifier, long_parts))):
        return False
    if context < PREFIXED and text is not None:
        return False
    if changes < length * (0.12 if context >= PREFIXED else 0.2) and not jumbled:
        return False
    # 3.3 bits per character, or what a random string of this length reaches anyway (repeats are likely
    # within 12 characters: at most log2(12) = 3.58 bits)
    bits = min(2.8 if context >= PREFIXED else 3.3, math.log2(length) - 0.5)
    return entropy(token) >= bits and len(set(token)) >= min(10, length // 2)


_NAMED_DIRECTORY = re.compile(r"[a-z]{3,}(?:[-_][a-z]+)*")


def _random_halves(parts: list[str]) -> bool:
    """Two or three pieces of 12-24 characters in all, each of 3+ mixing classes as no name's words do."""
    if not 2 <= len(parts) <= 3 or not 12 <= sum(map(len, parts)) <= 24:
        return False
    for part in parts:
        lower, upper, digit, _, _ = _classes(part)
        if len(part) < 3 or (lower > 0) + (upper > 0) + (digit > 0) < 2 or _identifier(part):
            return False
    return True


def _named_with_hash(parts: list[str], body: str, context: int) -> bool:
    """Whether the hex ``body`` is the id or hash in a name: a slug of titled words (with a prefix, named
    ones), or 3+ fields of words and short codes (``Package_for_KB2656356~31bf3856ad364e35~amd64~~6.1``)."""
    others = [part for part in parts if part is not body]
    if all(map(_titled, others)) and (context <= NEUTRAL or _named_parts(parts, body)):
        return True
    return (
        len(others) >= 3
        and any(map(_titled, others))
        and all(_titled(part) or len(part) <= 10 or hex_like(part) for part in others)
        and not any(word in part.lower() for part in others for word in _CREDENTIAL_WORDS)
    )


def _scattered(token: str, parts: list[str]) -> bool:
    """Base64 or base64url whose own symbols cut it into pieces shorter than a random run: 16+ letters and
    digits in all, of both cases and digits, letters in no word's order, and under 40 % of its letters in
    pieces that are words or names (as a slug's are: ``Release-Notes-v2``, ``my_app-Prod``)."""
    joined = "".join(parts)
    if len(parts) < 2 or len(joined) < _NEED[NEUTRAL] or not _BASE64_CHARS.fullmatch(token):
        return False
    lower, upper, digit, _, _ = _classes(joined)
    share, pairs = scrambled(joined)
    if not (lower and upper and digit) or share < 0.3 or pairs < 8:
        return False
    named = sum(len(part) for part in parts if len(part) >= 4 and part.isalpha() and _identifier(part))
    return named < (lower + upper) * 0.4


_BASE64_CHARS = re.compile(r"[-_+/]*[A-Za-z0-9]+(?:[-_+/]+[A-Za-z0-9]+)+[-_+/]*=*")


def _random_pieces(pieces: list[str]) -> bool:
    """Pieces of base64 cut at its ``/`` (``wJalrXUtnFEMI/K7MDENG/bPxRfiCY``): all but one mix capitals, small
    letters and digits as no path segment does, or (8+ characters without a digit, as one in eight random
    pieces of ten are) both cases in no word's order (``xouijdLUDv``)."""
    mixed = 0
    pieces = [piece for piece in pieces if len(piece) >= 4]  # base64 can hold ``//`` and end in ``/j/t``
    for piece in pieces:
        lower, upper, digit, _, _ = _classes(piece)
        if lower and upper:
            scrambled_letters = len(piece) >= 8 and scrambled(piece)[0] >= 0.5
            mixed += (digit > 0 and not _identifier(piece)) or scrambled_letters
    return mixed >= max(2, len(pieces) - 1)


def password_like(value: str) -> bool:
    """A whole value that reads as a password: 8-64 characters without spaces mixing three or four of
    lowercase, uppercase, digits and symbols (``M0Xvq!ZjxTW3#57``, ``P@ssw0rd$1``)."""
    length = len(value)
    if not 8 <= length <= 64 or placeholder(value) or _NOT_PASSWORD.search(value) or len(set(value)) < 6:
        return False
    if _FILE_SUFFIX.search(value):  # ``runtime~main.03e0a9e3.js``
        return False
    if max(Counter(value).values()) > length * 0.3:
        return False
    symbols = sum(char in "!#$%^&*@~" for char in _FORMAT_PLACEHOLDER.sub("", value))
    lower, upper, digit, _, changes = _classes(value)
    joined = _NAME_JOINERS.split(value) if not digit and symbols == 1 else ()
    if len(joined) == 2 and all(map(_identifier, filter(None, joined))):
        return False  # names joined by a symbol: Ruby's ``TerminalController#status``, a URL's ``#SemConv``
    kinds = (lower > 0) + (upper > 0) + (digit > 0) + (symbols > 0)
    if kinds >= 3 and symbols > 0 and changes >= 4 and lower + upper >= 3:
        return True
    return _HUMAN_PASSWORD.fullmatch(value) is not None


# a regular expression's ranges and groups
_PATTERN_SYNTAX = re.compile(r"[a-zA-Z0-9]-[a-zA-Z0-9]\]|\(\?")


def generated_printable(value: str) -> bool:
    """A secret generated from all printable characters (WordPress's keys and salts:
    ``Q$:B]zZjN-x|:|g$-+E8:8``): 24+ characters of lowercase, uppercase and digits among four or more distinct
    symbols (a tenth of the characters), hardly a space, letters in no word's order, as dense as a
    generator makes them; code and prose have a class too few or words between their symbols."""
    length = len(value)
    if not 24 <= length <= 256 or value.count(" ") > 3 or not value.isascii() or "\\" in value:
        return False
    if len(_PATTERN_SYNTAX.findall(value)) >= 2 or any(seq in value for seq in _SEQUENCES):
        return False  # a regular expression, an alphabet
    lower, upper, digit, _, _ = _classes(value)
    symbols = [char for char in value if not char.isalnum() and char != " "]
    if not (lower and upper and digit) or len(symbols) < length * 0.1 or len(set(symbols)) < 4:
        return False
    share, pairs = scrambled(value)
    if pairs >= 6 and share < 0.3:
        return False  # words between the symbols: an ARN, a URL, a regular expression's group names
    return entropy(value) >= min(4.5, math.log2(length) - 0.3)


# What people pick when told to mix classes: words, a year or a number, a symbol last (``Maplevelvet1982#``,
# ``Falcon-nimbus2009!``); not a ticket (``Issue#1234``: the symbol before the number)
_HUMAN_PASSWORD = re.compile(
    r"[A-Z]{1,2}[a-z]{2,}(?:[-_.]?[A-Za-z][a-z]{2,}){0,3}[0-9]{1,4}[!#$%^&*@~?]{1,3}"
)


# Prefixes of ids that are public by design (Stripe-style object ids, publishable keys), of hashes, and of
# names built from a hash (images, builds, caches): a random body after them is not a secret.
PUBLIC_PREFIXES = frozenset(
    {
        "evt", "pi", "pm", "cus", "ch", "py", "re", "in", "ii", "sub", "si", "price", "prod", "plan", "txn",
        "acct", "ba", "card", "src", "req", "po", "tr", "cs", "seti", "pub", "usr", "user", "org",
        "team", "proj", "project", "job", "run", "task", "msg", "file", "img", "ord", "order", "inv",
        "invoice", "item", "sku", "cart", "trace", "span", "id", "uid", "ref", "tx", "sha", "sha1", "sha256",
        "sha384", "sha512", "md5", "git", "commit", "rev", "hash", "digest", "checksum", "etag", "cache",
        "build", "release", "image", "tag", "v", "node", "pod", "host", "vm", "i", "ami", "vpc", "subnet",
        "vol", "snap", "eni", "arn", "urn", "uuid", "guid", "x",
        # generative AI APIs' response, message, call and object ids; a correlation id; RabbitMQ's queue names
        "chatcmpl", "cmpl", "resp", "gen", "toolu", "call", "asst", "thread", "batch", "step", "vs", "ftjob",
        "corr", "amq",
        "nonce",  # a Content-Security-Policy's ``'nonce-<base64>'``
        "jid",  # Sidekiq's job ids
        # Stripe's other objects (invoice lines, webhook endpoints, credit notes, ...), Glue's job runs
        "il", "we", "cn", "du", "fee", "fr", "li", "prv", "iar", "trr", "sli", "jr",
    }
)  # fmt: skip
# The ids of Stripe's other objects in its API fixtures (not its secrets: ``ephkey``, ``*_secret``), public
# as Stripe writes them, with ``_``: Doppler's ``dp.pt.<token>`` is a credential
_STRIPE_PREFIXES = frozenset(
    {
        "apwc", "bpc", "bps", "ca", "cbtxn", "ccsbtxn", "climorder", "climsup", "cnli", "credrev", "debrev",
        "di", "dp", "ent", "fa", "fca", "fcaown", "fcaowns", "fctxn", "fctxnref", "feat", "frr", "iauth",
        "ibt", "ic", "ich", "idp", "ipi", "issfr", "mtr", "obp", "obt", "pmc", "pmd", "prodft", "promo",
        "pst", "qt", "rsl", "rsli", "setatt", "shr", "srcmn", "srctxn", "taxcalc", "taxreg", "tmc", "tml",
        "tmr", "trxn", "tu", "txi", "txr", "plink", "ipcd",
    }
)  # fmt: skip
HASH_NAMES = frozenset({"sha", "sha1", "sha256", "sha384", "sha512", "md5", "blake2b", "crc32", "xxh64"})
# not an e-mail, a path (also ``share$\tools\x.exe``) or glob, a URL, code, ``package@1.2.3`` or a page
# anchor (``2#section-3``); a leading ``@ $ % { #`` is a sigil (decorator, variable, comment: ``#Set-Item``)
_NAME_JOINERS = re.compile(r"[#@&]")
_NOT_PASSWORD = re.compile(
    r"@[A-Za-z0-9-]+\.[A-Za-z]|^[@/$%{#]|://|[()\[\]{}<>\"':]|@v?[0-9]+(?:\.[0-9]+)+|#[a-z]+(?:-[a-z0-9]+)+$"
    r"|\\[^\\]*\\|/|^[*~]"  # paths and globs: ``pypa/distutils#130``, ``~/Documents``, ``*.xml.j2``
    r"|^[A-Z]{2,16}(?:_[A-Z]{1,16})*#[A-Za-z0-9_-]{8,}$"  # a DynamoDB key: ``ORDER#01HF8Z3K...``
    r"|^(?:[a-z_][a-z0-9_]*\.)+[A-Z]\w*\$[\w$]*$"  # a JVM inner class: ``com.shop.Order$HibernateProxy``
    r"|^[\w.-]+@[0-9]+$"  # a name at an offset or a line: Kafka's ``orders.dlq-37@5956``, ``Main.cc@117``
    r"|^[a-z0-9][a-z0-9.-]{2,}@[a-z][a-z0-9.-]*(?:@[a-z0-9.-]+)?$"  # a user or process at a host: ``ana@db1``
    r"|^!?(?:[A-Za-z_$][\w$]*\.){2,}[A-Za-z_$][\w$]*$"  # code's member chain, negated: ``!app.browser.isOk``
    r"|[0-9a-f]{16}"  # a name built with a hash: ``Package_for_KB2656356~31bf3856ad364e35~amd64``
    r"|^[A-Z][A-Za-z_]*[a-z][A-Z][A-Za-z_]*[*&]+$"  # a C++ pointer or reference type: ``BglCtlPavTrace*``
    r"|^(?:[A-Za-z_$][\w$]*\.)*[A-Z][\w$]*@(?=[0-9]*[a-f])[0-9a-f]{5,8}$"  # Java's: ``Keyguard@712d093``
)
# a format string's placeholder is no password symbol (``QuerySet.%s``); ``%d1`` is a percent-escape
_FORMAT_PLACEHOLDER = re.compile(r"%(?:\.[0-9]+)?[sdifrx](?![A-Za-z0-9])")
_DNS_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")
_K8S_PART = re.compile(r"[bcdfghjklmnpqrstvwxz2456789]{5}|[bcdfghjklmnpqrstvwxz2456789]{8,10}")


def _k8s_name(token: str) -> bool:
    """Kubernetes generated names end in a 5-character suffix and maybe an 8-10 character template hash, both
    from an alphabet without vowels and confusable digits (``web-7d4b9c8f6d-x2k9p``); like every Kubernetes
    name they are lowercase DNS labels."""
    if "_" in token:  # the kubelet's ``<pod>_<namespace>``
        token, _, namespace = token.rpartition("_")
        if _DNS_NAME.fullmatch(namespace) is None:
            return False
    name, dash, suffix = token.rpartition("-")
    lowercase = _DNS_NAME.fullmatch(token) is not None
    return bool(dash and name) and lowercase and _K8S_PART.fullmatch(suffix) is not None


_SSH_KEY_TYPES = (b"ssh-", b"ecds", b"sk-s", b"sk-e")

# Bitcoin addresses: base58 with a version byte and a checksum (``1...``, ``3...``), or bech32 (``bc1...``)
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_ADDRESS = re.compile(f"[13][{_BASE58}]{{25,34}}")
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
# A human-readable part, ``1`` and 11+ data characters: a Bitcoin address (``bc1...``), an age recipient
# (``age1...``), a Nostr public key (``npub1...``), a Cosmos address; not what names a secret (``nsec1``,
# ``AGE-SECRET-KEY-1``)
_BECH32_ADDRESS = re.compile(f"(?P<hrp>[a-z][a-z0-9]{{1,19}})1[{_BECH32}]{{11,90}}")
_SECRET_PARTS = ("sec", "priv", "key")


def _base58_checked(token: str) -> bool:
    """Whether ``token`` decodes to 25 bytes whose last 4 are the double SHA-256 of the rest: an address (a
    random string passes one time in 4 billion)."""
    number = 0
    for char in token:
        number = number * 58 + _BASE58.index(char)
    raw = number.to_bytes(25, "big") if number.bit_length() <= 200 else b""
    return len(raw) == 25 and hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4] == raw[21:]


def _bech32_checked(hrp: str, data: str) -> bool:
    """BIP 173/350's checksum over the human-readable part and the data: bech32 or bech32m."""
    check = 1
    expanded = [ord(char) >> 5 for char in hrp] + [0] + [ord(char) & 31 for char in hrp]
    for value in expanded + [_BECH32.index(char) for char in data]:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            check ^= generator if top >> bit & 1 else 0
    return check in (1, 0x2BC830A3)


_PUBLIC_SHAPE = re.compile(
    r"0[0-7][0-9A-HJKMNP-TV-Z]{24}"  # a ULID: 48-bit time (10 Crockford characters) + 80 random bits
    r"|v?[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,6}[-+.].*"  # a version, then a pre-release or a build
    r"|[a-z2-7]{56}\.onion"  # a Tor v3 onion service's address (its public key)
    r"|(?:[A-Z][a-z]{2,}[0-9]*){2,}[0-9A-F]{8}"  # a CDK logical id: its path in PascalCase, 8 hex of a hash
    r"|(?:PK|FK|UQ|DF|CK)__\w+__[0-9A-F]{16}"  # SQL Server's generated constraint names
    r"|h[0-9a-f]{16}"  # a Rust symbol's hash (``get::{{closure}}::h140289cd2cb0d453``)
    # a host name: lowercase labels under a top-level domain (``db-1.c8nccn957rgm.rds.amazonaws.com``)
    r"|(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){2,}(?:com|net|org|io|dev|app|cloud|ai|co|internal|local)"
    r"|[0-9a-f]{16}-[A-Z]{3}"  # a Cloudflare ray id
    r"|[0-9a-f]{32}-[0-9a-f]{16}"  # a trace and a span id: Sentry's ``sentry-trace`` without its flag
    r"|[A-Za-z_][\w.]*\+0x[0-9a-f]+/0x[0-9a-f]+"  # a kernel symbol at an offset (an oops trace)
    r"|Qm[1-9A-HJ-NP-Za-km-z]{44}|baf(?:ybei|krei)[a-z2-7]{52}"  # IPFS ids of a SHA-256 (v0, v1)
    # a public key as libp2p's peer id (Ed25519, secp256k1) and as a did:key (multibase Ed25519)
    r"|(?:12D3KooW|16Uiu2HAm|z6Mk)[1-9A-HJ-NP-Za-km-z]{44}"
    r"|(?:sk-)?ecdsa-sha2-nistp(?:256|384|521)(?:@openssh\.com)?"  # an SSH key's type
    r"|-*WebKitFormBoundary[A-Za-z0-9]{15,16}"  # a browser's multipart boundary
    # a CloudFormation physical id: ``<stack>-<LogicalId>-<12 or 13 capitals and digits>``
    r"|(?:[A-Za-z][A-Za-z0-9-]{0,64}-)?[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+-[A-Z0-9]{12,13}",
    re.DOTALL,
)
_DOTTED_CLASS = re.compile(r"(?:[a-z][a-z0-9_]{2,}\.)+[A-Z][A-Za-z0-9]*[A-Z][a-z]{3,}")
# How base64 of a binary file starts (PNG, JPEG, GIF, PDF, gzip, zip, RIFF/WebP, WOFF, WOFF2, Ogg, MP3, ELF):
# content, not a credential (an inlined image, an attachment)
_FILE_BASE64 = (
    "iVBORw0KGg", "/9j/", "R0lGOD", "JVBERi0", "H4sI", "UEsDB", "UklGR", "d09GR", "d09GMg", "T2dnUw",
    "SUQz", "f0VMRg",
)  # fmt: skip


def _mangled(token: str) -> bool:
    """A C++ (Itanium) or Rust symbol as the linker writes it: ``_ZN4core9panicking5panic17h...E``, names each
    after its length, which spell most of the symbol (a random token's digits rarely count their letters)."""
    spelled = names = 0
    for match in _LENGTH_PREFIX.finditer(token, 2):
        length = int(match[0])
        if length >= 3 and _NAME_PART.fullmatch(token, match.end(), match.end() + length):
            spelled += len(match[0]) + length
            names += 1
        elif length == 17 and _RUST_HASH.fullmatch(token, match.end(), match.end() + length):
            spelled += len(match[0]) + length  # Rust's legacy ``17h<16 hex>``
    return names >= 2 and spelled >= len(token) * 0.4


_LENGTH_PREFIX = re.compile(r"(?<![0-9])[1-9][0-9]?(?=[A-Za-z_])")
_RUST_HASH = re.compile(r"h[0-9a-f]{16}")
_NAME_PART = re.compile(r"[A-Za-z_][a-z_]+[0-9]{0,2}")  # a name in code: ``push_back``, ``panicking``


def public_material(token: str) -> bool:
    """An OpenSSH public key blob (``AAAAC3NzaC1lZDI1NTE5...``: a length, then ``ssh-ed25519``), a ULID
    (time-ordered: it starts with the time in ``0[0-7]``), a version (``v0.0.0-20200515034346-e8a3418e911e``,
    ``1.2.3+build.5f3a9c``), a Cloudflare ray id (``<16 hex>-IAD``), a Google OAuth client id (its secret is
    ``GOCSPX-...``), an IPFS content id, a Bitcoin address (its checksum verified), a CloudFormation physical
    id, base64 of a binary file (``iVBORw0KGgo...``, a PNG), a class in its module: random-looking, public by
    design."""
    if _PUBLIC_SHAPE.fullmatch(token) or token.endswith(".apps.googleusercontent.com"):
        return True
    if token[:2] in ("_Z", "_R") and _mangled(token):
        return True
    if len(token) >= 24 and (token.startswith(_FILE_BASE64) or (token[0] == "M" and _public_der(token))):
        return True
    first = token[0]
    if first.islower() and "." in token and _DOTTED_CLASS.fullmatch(token):
        return True  # a class in its module: ``isodate.isoerror.ISO8601Error``
    if first in "13" and _BASE58_ADDRESS.fullmatch(token):
        return _base58_checked(token)
    address = _BECH32_ADDRESS.fullmatch(token) if "1" in token else None
    if address and not any(part in address["hrp"] for part in _SECRET_PARTS):
        return _bech32_checked(address["hrp"], token[address.end("hrp") + 1 :])
    if not token.startswith("AAAA") or len(token) < 16:
        return False
    try:
        head = binascii.a2b_base64(token[:16])
    except (binascii.Error, ValueError):
        return False
    return head[4:8] in _SSH_KEY_TYPES


def _public_der(token: str) -> bool:
    """Base64 of DER that is public: a public key (``MIIBIjANBgkqhkiG9w0BAQEFAAOC...``, DKIM's ``p=``: an
    algorithm, then a BIT STRING) or a certificate (its signed part starts with its version, ``[0]``); not a
    private key (a version INTEGER first) nor an encrypted one (an OCTET STRING after the algorithm)."""
    try:
        der = binascii.a2b_base64(token[:4096])
    except (binascii.Error, ValueError):
        return False
    outer = _der_header(der, 0) if der[:1] == b"\x30" else None
    inner = _der_header(der, outer[0]) if outer and der[outer[0] : outer[0] + 1] == b"\x30" else None
    if inner is None:
        return False  # not a SEQUENCE in a SEQUENCE
    body, length = inner
    if der[body : body + 1] == b"\xa0":
        return True  # a certificate's TBSCertificate
    return der[body : body + 1] == b"\x06" and der[body + length : body + length + 1] == b"\x03"


def _der_header(der: bytes, at: int) -> tuple[int, int] | None:
    """(where the content of the DER element at ``at`` starts, its length), or None."""
    if len(der) < at + 2:
        return None
    first = der[at + 1]
    if first < 0x80:
        return at + 2, first
    size = first & 0x7F
    if not 1 <= size <= 2 or len(der) < at + 2 + size:
        return None
    return at + 2 + size, int.from_bytes(der[at + 2 : at + 2 + size], "big")


@functools.lru_cache(maxsize=4096)
def split_prefix(token: str) -> tuple[str, str]:
    """(vendor-style prefix, body) of ``sk-proj-<body>``, ``pscale_tkn_<body>``, ``hvs.<body>``; prefix ""
    when the token does not start with one or two short words and a separator."""
    match = _PREFIX.match(token)
    if match is None:
        return "", token
    return match["prefix"], token[match.end() :]


_PREFIX = re.compile(
    r"(?P<prefix>[A-Za-z][A-Za-z0-9]{0,11}(?:[_.~-][A-Za-z][A-Za-z0-9]{0,9}){0,3}?)[_.~-](?=.{8})"
)


def public_prefix(token: str) -> bool:
    """Whether the token starts like a public id (``evt_``, ``pk_live_``, ``sha256-``) or a hex id."""
    prefix, body = split_prefix(token)
    first = _SEPARATORS.split(prefix, 1)[0].lower()
    starts = _PUBLIC_ONLY_AS.get(first)
    if starts is not None:
        return token.startswith(starts)
    head, cut, tail = body.partition("_")
    if cut and tail and head != head.lower():
        return False  # a public id's body is one run: ``re_<a>_<b>`` (Resend), ``pi_<id>_secret_<secret>``
    if first in _STRIPE_PREFIXES:
        return token[len(first) : len(first) + 1] == "_"
    return bool(prefix) and (first in PUBLIC_PREFIXES or _hex_start(first))


# Prefixes public only as one vendor writes them: Stripe's and Clerk's publishable keys, Stripe's checkout
# sessions, AWS security groups; other vendors' ``pk_``/``pk.`` tokens, WooCommerce's ``cs_<hex>`` and
# SendGrid's ``SG.`` keys are credentials
_PUBLIC_ONLY_AS = {"pk": ("pk_live_", "pk_test_"), "cs": ("cs_live_", "cs_test_"), "sg": ("sg-",)}


def _hex_start(word: str) -> bool:
    """The first group of a UUID or a hex id (``3f2a9c1e-...``), not a short code such as ``A3``."""
    return len(word) >= 6 and all(char in HEX for char in word) and any(char.isdigit() for char in word)


_ALNUM_RUN = re.compile(r"[A-Za-z0-9]{8,}")


def candidate(token: str) -> bool:
    """A cheap first look: only a token with 8+ letters and digits in a row that is not a number nor a word
    (lowercase or capitalised), or a grouped key, can pass ``looks_random`` or ``prefixed_random``."""
    if "-" in token and _GROUPED.fullmatch(token):
        return True
    return any(
        not (run.isdigit() and len(run) < 16) and not (run.isalpha() and run[1:].islower())
        for run in _ALNUM_RUN.findall(token)
    )


def canonical_uuid(token: str) -> bool:
    """8-4-4-4-12 hex digits, as ``str(uuid4())`` writes a UUID (either case)."""
    return len(token) == 36 and token.isascii() and token.encode().translate(_HEX_AS_ZERO) == _UUID_SHAPE


_HEX_AS_ZERO = bytes.maketrans(b"0123456789abcdefABCDEF", b"0" * 22)  # a translation: half a regex's cost
_UUID_SHAPE = b"00000000-0000-0000-0000-000000000000"


def hex_verdict(token: str, context: int) -> bool:
    """The token rule's verdict on a hex-like token (a UUID, a digest, a trace id): a secret only where the
    words before it say so, or written as no digest or id is: in both cases, of a length no digest has, as a
    random fill of a UUID's layout, as groups joined, or after a word."""
    if context == SECRET:
        return candidate(token) and looks_random(token, SECRET)
    if context != NEUTRAL:
        return False
    if token.isalnum():  # one run of hex, as digests and trace ids are (the fast path's ids end here)
        length = len(token)
        odd = length > 32 and length not in _DIGEST_LENGTHS  # here: a call would cost what the test does
        return _mixed_case_hex(token) or (odd and _odd_length_hex(token))
    if len(token) == 36 and token[8] == "-":  # a UUID's layout: neither groups of 8+ nor a word first
        return _nonstandard_uuid(token)
    return _hex_composite(token) or _lettered_prefix(token)


# Hex lengths of digests and ids: MD5, trace ids and UUIDs without dashes (32), SHA-1 and Ethereum addresses
# (40), SHA-224 (56), SHA-256 and git's SHA-256 ids (64), SHA-384 (96), SHA-512 (128); trace ids printed
# without leading zeros are shorter than 32.
_DIGEST_LENGTHS = frozenset({40, 56, 64, 96, 128})


def _odd_length_hex(token: str) -> bool:
    """Whether hex of a length no digest or id has (33+ digits: ``hex_verdict`` tests the length) is a key, as
    Cloudflare's 37-digit global keys and ``token_hex(24)`` are: one case, digits with letters, 12+ distinct,
    not a filler, not hex of text (``48656c6c6f`` is "Hello")."""
    length = len(token)
    if not _PLAIN_HEX.fullmatch(token):
        return False
    digits = sum(char.isdigit() for char in token)
    if len(set(token)) < 12 or not 0 < digits < length or placeholder(token):
        return False  # random hex of 33+ digits shows 12 of the 16 almost surely
    return not _readable(binascii.unhexlify(token[: length - length % 2]))


_PLAIN_HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")


def _lettered_prefix(token: str) -> bool:
    """A vendor's prefix that happens to spell hex (Firecrawl's ``fc-<32 hex>``): a short word of the letters
    a-f alone, one separator, then 20+ hex digits mixing digits and letters; ids and digests carry no word."""
    if not _LETTERED_PREFIX.fullmatch(token):
        return False
    body = _SEPARATORS.split(token, 1)[1]
    return not body.isdigit() and not body.isalpha() and not placeholder(body)


_LETTERED_PREFIX = re.compile(r"[a-fA-F]{2,5}[-_.][0-9a-fA-F]{20,}")


def _nonstandard_uuid(token: str) -> bool:
    """A UUID's layout filled with random hex (``c48b5211-3183-b7d2-fca9-c88991ca50e7``), which no UUID
    library writes: RFC 9562 puts a version 1-8 in the 13th digit and a variant 8, 9, a or b in the 17th, as
    ``uuid4()``, databases and frameworks do. Seven in eight random fills break that; the nil and max UUIDs
    and fills with few distinct digits (``00000000-0000-0000-0000-000000000001``) are markers, not keys."""
    if len(token) != 36 or (token[14] in "12345678" and token[19] in "89abAB"):
        return False  # the usual answer, before the layout's check
    return canonical_uuid(token) and len(set(token.lower())) >= 10


def _hex_composite(token: str) -> bool:
    """Hex groups of 8+ digits joined by single separators, two with letters, 40+ digits in all, maybe after
    a number (``<32>-<8>-<8>`` of Mailgun, ``1000.<32>.<32>`` of Zoho): one digest or id is one group; a
    traceparent ends in a short group; an X-Ray trace id has fewer than 40 digits; a git range has ``..``; a
    multipart ETag's count and a number before a hash have no letters."""
    if len(token) < 41:
        return False
    groups = _HEX_GROUP_SEPARATOR.split(token)
    if groups[0].isdigit():
        groups = groups[1:]
    if len(groups) < 2 or min(map(len, groups)) < 8 or sum(map(len, groups)) < 40:
        return False
    return sum(not group.isdigit() for group in groups) >= 2


_HEX_GROUP_SEPARATOR = re.compile(r"[._~-]")


def _mixed_case_hex(token: str) -> bool:
    """Hex digits in both cases throughout (``6d2FabeB6ADd229Bc199FabA28fD3efb57dF0bD3``): digests, ids and
    UUIDs are written in one case; an EIP-55 checksummed address, which mixes them, starts with ``0x``."""
    # ``lower() ==`` rather than ``islower()``: a fourth of its cost on ASCII, and this runs on every hex id
    one_case = token.lower() == token or token.upper() == token
    if len(token) < 24 or one_case or token[1:2] in "xX":
        return False
    upper = sum(char.isupper() for char in token)
    return upper >= 3 and sum(char.islower() for char in token) >= 3


def hex_like(token: str) -> bool:
    """Hex throughout, separators and ``=`` padding aside: a UUID, a digest, a trace id, Google's trace
    context (``<trace id>/<span id>``), a content-addressed path (``objects/ab/cdef...``'s tail)."""
    return _HEX_LIKE.fullmatch(token) is not None


_HEX_LIKE = re.compile(r"(?:0[xX])?[0-9a-fA-F._~/-]+=*")  # 0x... is hex too (ids in reprs)


def identifier_body(token: str) -> bool:
    """Whether what follows a token's prefix is a code identifier (``hf_requiredCharacteristicTypes``).

    Stricter than the randomness test's notion of an identifier, because it overrules a vendor pattern:
    every piece is a pronounceable lowercase or capitalised word of two letters or more, so the runs of
    capitals and single letters of a random body (``DWywNSZLI8Rfuj``: D, NSZLI) never pass."""
    prefix, body = split_prefix(token)
    if not prefix:
        return False
    for segment in _PARTS.split(body):
        pieces = _IDENTIFIER_WORDS.findall(segment)
        if "".join(pieces) != segment or not pieces:
            return False
        for piece in pieces:
            if not (piece.isalpha() and len(piece) >= 2 and piece[1:].islower() and _word_like(piece)):
                return False
    return True


def prefixed_random(token: str) -> bool:
    """A vendor-style prefix and a random body (``ntn_...``, ``glc_...``, ``PMAK-...``), not a public id."""
    prefix, body = split_prefix(token)
    if not prefix or _k8s_name(token) or public_prefix(token):  # the cheaper test first
        return False
    uuid = _UUID.search(body)
    if uuid:  # ``access-production-<uuid>``, ``px-api-<uuid>``; not ``job-<uuid>``
        if body.endswith(uuid[0]) and _nonstandard_uuid(uuid[0]):  # ``amzn.mws.<random fill>``
            return True
        return not _CREDENTIAL_WORDS.isdisjoint(_SEPARATORS.split(token[: token.index(uuid[0])].lower()))
    if body.replace("-", "").replace("_", "").isdigit():
        return _dummy(body)
    if any(map(_epoch, _SEPARATORS.split(body))):
        return False  # a time-ordered id: GCP's ``operation-<ms>-<hex>-...``, Vercel's ``<id>-<ms>-<hex>``
    if _counted_names(_SEPARATORS.split(body)):
        return False  # names with counters: ``aks-nodepool1-23105842-vmss000009``
    if all(char in HEX or char in "-_." for char in body):
        return len(body) >= 20 and (not placeholder(body) or _dummy(body))
    return looks_random(body, PREFIXED) or _dummy(body)


def _named_parts(parts: list[str], body: str) -> bool:
    """Two or more words of 3+ letters besides the hex, none a credential's (``ami-eks-worker-node-<hex>``
    names a host; ``sk_pr_mykey_<hex>`` and ``dd_secret_key-<hex>`` are keys)."""
    words = [part.lower() for part in parts if part is not body]
    return len(words) >= 2 and all(
        len(word) >= 3 and not any(term in word for term in _CREDENTIAL_WORDS) for word in words
    )


def _epoch(piece: str) -> bool:
    """Unix time in seconds or milliseconds between 2001 and 2039, as time-ordered ids begin."""
    return len(piece) in (10, 13) and piece.isdigit() and 1_000_000_000 <= int(piece[:10]) <= 2_200_000_000


_CREDENTIAL_WORDS = frozenset({"api", "key", "token", "secret", "access", "auth", "pat", "sk"})
_COUNTED_NAME = re.compile(r"[a-z]{0,12}[0-9]*")


def _counted_names(pieces: list[str]) -> bool:
    """Words with counters and numbers (``nodepool1``, ``23105842``, ``vmss000009``), one a word with its
    counter; not a credential's words (``access-key-...``) nor a qualifier of a test key (``live_1111``)."""
    counted = False
    for piece in pieces:
        if not _COUNTED_NAME.fullmatch(piece) or piece in _CREDENTIAL_WORDS:
            return False
        counted = counted or (piece[:1].isalpha() and piece[-1:].isdigit())
    return counted


def sequence_beside_random(token: str) -> bool:
    """A test number beside a random key (``xoxb-123456789012-Xw937qtWSXJss1lFaKe``): the sequence is a part
    of its own and another part is random, so the filler does not stand for the whole token."""
    if any(word in token for word in _PLACEHOLDER_WORDS):
        return False
    parts = _PARTS.split(token)
    filled = [any(seq in part for seq in _SEQUENCES) for part in parts]
    return any(filled) and any(
        len(part) >= 16 and looks_random(part, PREFIXED)
        for part, filler in zip(parts, filled, strict=True)
        if not filler
    )


def _dummy(body: str) -> bool:
    """A test value in a credential's place: a sequence (``NRAK-123456788ABCDEFGH...``) or one character
    repeated (``sk-AAAA...``, ``shippo_live_1111...``, ``AGE-SECRET-KEY-1QQQ...``) after a vendor prefix
    stands for a key, where a filler (``ghp_xxxx``, ``ghp_0000``) says that none is there."""
    longest = max(_SEPARATORS.split(body), key=len)
    if len(longest) < 20 or len(set(body)) >= 62 >= len(body) - 4:  # each letter and digit once: an alphabet
        return False
    char, count = Counter(longest).most_common(1)[0]
    if count >= len(longest) - 1:
        return char.isalnum() and char not in "xX0"
    if longest.isdigit() or longest.isalpha() or len(set(longest)) < 8:
        return False
    return any(seq in longest for seq in _SEQUENCES) and not _FILE_SUFFIX.search(body)
