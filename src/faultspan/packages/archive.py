"""ZIP archives: written directly, and read as untrusted input (names, types, sizes, ratios, counts)."""

from __future__ import annotations

import functools
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

MAX_MEMBERS = 16
# A bomb is refused by what it expands to, not by its ratio: a legitimate document of repeated spans
# compresses beyond 1000:1 too. Members are read with this bound whatever their headers claim.
MAX_TOTAL_SIZE = 64 * 1024 * 1024
# Deflate cannot expand beyond about 1032:1, so a smaller archive never exceeds MAX_TOTAL_SIZE.
_DEFLATE_MAX_RATIO = 1032
_SYMLINK = 0o120000
_FILE_TYPE_MASK = 0o170000
_DRIVE = re.compile(r"^[A-Za-z]:")
_END_OF_DIRECTORY = b"PK\x05\x06"
_END_OF_DIRECTORY_SIZE = 22
_MAX_COMMENT = 0xFFFF
_LOCAL_HEADER = "<4s5H3L2H"
_CENTRAL_HEADER = "<4s6H3L5H2L"
_END_RECORD = "<4s4H2LH"
_ZIP_VERSION = 20  # 2.0: deflate
_ZIP_MADE_BY = 3 << 8 | _ZIP_VERSION  # Unix, so that the mode in the external attributes counts
_ZIP_MODE = 0o100600 << 16
_ZIP_DATE = 0x21  # 1980-01-01, the earliest a ZIP header can hold
MAX_DIRECTORY_SIZE = 64 * 1024
# Level 1 takes less than half of level 6's time; a typical package gets about 10 % larger.
COMPRESS_LEVEL = 1
STORE_BELOW = 1024

_Read = TypeVar("_Read")


class PackageError(Exception):
    """A package that cannot be trusted or read; ``str()`` is a one-line reason."""


def _deflated(data: bytes) -> tuple[int, int, bytes]:
    """Compression method, CRC-32 and stored form of a member. Small members are stored: setting up a
    deflate stream costs more than the few bytes it would save."""
    if len(data) < STORE_BELOW:
        return zipfile.ZIP_STORED, zlib.crc32(data), data
    compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return zipfile.ZIP_DEFLATED, zlib.crc32(data), compressor.compress(data) + compressor.flush()


_cached_deflated = functools.lru_cache(maxsize=2)(_deflated)


def write_zip(named: Mapping[str, bytes], cached: str = "") -> bytes:
    """The ZIP file of ``named`` members, in order; the member named ``cached`` is deflated through a cache
    (a process writes the same bytes in every package).

    Written directly rather than through ``zipfile``, whose per-member bookkeeping cost more than deflating
    a typical package: regular files (mode 0600), deflated unless tiny, no directories, no ZIP64 (packages
    are far below 4 GiB), a fixed 1980-01-01 timestamp (the manifest holds the real time).
    """
    local: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for name, data in named.items():
        method, crc, compressed = (_cached_deflated if name == cached else _deflated)(data)
        encoded = name.encode("ascii")
        fields = (
            _ZIP_VERSION,
            0,
            method,
            0,
            _ZIP_DATE,
            crc,
            len(compressed),
            len(data),
            len(encoded),
        )
        local.append(struct.pack(_LOCAL_HEADER, b"PK\x03\x04", *fields, 0) + encoded + compressed)
        central.append(
            struct.pack(_CENTRAL_HEADER, b"PK\x01\x02", _ZIP_MADE_BY, *fields, 0, 0, 0, 0, _ZIP_MODE, offset)
            + encoded
        )
        offset += len(local[-1])
    directory = b"".join(central)
    end = struct.pack(_END_RECORD, _END_OF_DIRECTORY, 0, 0, len(named), len(named), len(directory), offset, 0)
    return b"".join(local) + directory + end


def _check_name(name: str, seen: set[str]) -> None:
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise PackageError(f"absolute member name {name!r}")
    if ".." in re.split(r"[/\\]", name):
        raise PackageError(f"member name {name!r} escapes the archive")
    if name in seen:
        raise PackageError(f"duplicate member {name!r}")
    seen.add(name)


def expands_within_limit(data: bytes) -> bool:
    """Whether the members of an archive in memory expand to no more than a reader accepts."""
    if len(data) * _DEFLATE_MAX_RATIO <= MAX_TOTAL_SIZE:
        return True
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return sum(entry.file_size for entry in archive.infolist()) <= MAX_TOTAL_SIZE


def check_entries(entries: list[zipfile.ZipInfo]) -> None:
    if len(entries) > MAX_MEMBERS:
        raise PackageError(f"too many members ({len(entries)} > {MAX_MEMBERS})")
    seen: set[str] = set()
    total = 0
    for entry in entries:
        _check_name(entry.filename, seen)
        if (entry.external_attr >> 16) & _FILE_TYPE_MASK == _SYMLINK:
            raise PackageError(f"member {entry.filename!r} is a symlink")
        if entry.flag_bits & 0x1:
            raise PackageError(f"member {entry.filename!r} is encrypted")
        total += entry.file_size
        if total > MAX_TOTAL_SIZE:
            raise PackageError(f"uncompressed size exceeds {MAX_TOTAL_SIZE} bytes")


def _check_entry_count(path: Path, size: int) -> None:
    """Reads the member count and the central directory's size from the end-of-central-directory record
    before ``zipfile`` builds a ZipInfo for every entry (it trusts the size, not the count)."""
    with path.open("rb") as stream:
        tail_size = min(size, _END_OF_DIRECTORY_SIZE + _MAX_COMMENT)
        stream.seek(size - tail_size)
        tail = stream.read(tail_size)
    start = tail.rfind(_END_OF_DIRECTORY)
    if start < 0 or len(tail) < start + _END_OF_DIRECTORY_SIZE:
        raise PackageError("not a valid ZIP archive (no end of central directory)")
    count, directory_size = struct.unpack_from("<HI", tail, start + 10)
    if count > MAX_MEMBERS:
        raise PackageError(f"too many members ({count} > {MAX_MEMBERS})")
    if directory_size > MAX_DIRECTORY_SIZE:
        raise PackageError(f"central directory larger than {MAX_DIRECTORY_SIZE} bytes")


def read_member(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bytes:
    with archive.open(entry) as stream:
        data = stream.read(entry.file_size + 1)
    if len(data) != entry.file_size:
        raise PackageError(f"member {entry.filename!r} does not match its declared size")
    return data


def open_checked(path: Path, read: Callable[[zipfile.ZipFile], _Read]) -> _Read:
    """``read`` applied to the package at ``path``, every failure turned into a one-line ``PackageError``."""
    try:
        size = path.stat().st_size
        if size > MAX_TOTAL_SIZE:
            raise PackageError(f"file is larger than {MAX_TOTAL_SIZE} bytes")
        _check_entry_count(path, size)
        with zipfile.ZipFile(path) as archive:
            return read(archive)
    except PackageError:
        raise
    except OSError as error:
        raise PackageError(f"cannot read ({error.strerror or error})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise PackageError(f"not a valid ZIP archive ({error})") from None
    except (NotImplementedError, RuntimeError, ValueError) as error:
        raise PackageError(f"unreadable archive ({error})") from None
