"""Which containers we decode, told from their first bytes, and an MP4's sample tables checked before FFmpeg
reads them.

FFmpeg, left to probe, picks among every demuxer it has, some of which open sockets or other files (an SDP
text binds a UDP port; an ffconcat text reads files beside the working directory; HLS fetches playlists).
So the container is decided here from magic bytes, from a short allow-list, and FFmpeg is told which demuxer
to use; anything else is a 415. Protocols are irrelevant: bytes reach FFmpeg through a file object, and a
local path is opened as a file.

An MP4's sample tables say how many samples a track holds; FFmpeg allocates its index for that many when the
file is opened (a 1 KB file claiming 20 million samples costs ~700 MB). A sample takes at least one byte of
the file (constant-size ones take that size each), so a track that claims more than the file can hold is
refused here, by walking the box headers (microseconds; no decoding).
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from aurora_serve.errors import MediaTooLargeError, UnsupportedMediaError

# FFmpeg demuxer names, and what the error messages call them.
NAMES = {"mov": "MP4/MOV", "matroska": "Matroska/WebM", "avi": "AVI", "mpegts": "MPEG-TS", "mpeg": "MPEG-PS",
         "flv": "FLV", "asf": "ASF/WMV", "ogg": "Ogg", "h264": "raw H.264", "hevc": "raw HEVC"}
_ASF = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_MP4_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"edts", b"mvex"}
# Tables whose entry count is their first field after version/flags, and each entry's size in bytes.
_TABLES = {b"stts": 8, b"ctts": 8, b"stsc": 12, b"stco": 4, b"co64": 8, b"stss": 4, b"elst": 12}
_MAX_BOXES = 100_000  # a real file has a few hundred; bounds the walk of a hostile one


def sniff_container(head: bytes) -> str | None:
    """The FFmpeg demuxer for a file starting with ``head`` (64 bytes are plenty), or None if we don't decode it."""
    if head[4:8] in _MP4_FIRST_BOXES:
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:3] == b"FLV":
        return "flv"
    if head[:16] == _ASF:
        return "asf"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x00\x00\x01\xba":
        return "mpeg"
    if len(head) > 0 and head[0] == 0x47 and _ts_synced(head):
        return "mpegts"
    start = 4 if head[:4] == b"\x00\x00\x00\x01" else 3 if head[:3] == b"\x00\x00\x01" else 0
    if start and len(head) > start:
        nal = head[start]
        if nal & 0x80 == 0 and nal & 0x1F in (6, 7, 9):  # SEI, SPS, access-unit delimiter
            return "h264"
        if nal & 0x81 == 0 and (nal >> 1) & 0x3F in (32, 35, 39):  # VPS, AUD, SEI
            return "hevc"
    return None


def _ts_synced(head: bytes) -> bool:
    return len(head) < 189 or head[188] == 0x47


def demuxer_for(fileobj: BinaryIO, size: int) -> str:
    """The demuxer to force for this file; a 415 for containers outside the allow-list, a 413 for an MP4 whose
    sample tables claim more samples than ``size`` bytes can hold."""
    fileobj.seek(0)
    head = fileobj.read(512)
    fileobj.seek(0)
    name = sniff_container(head)
    if name is None:
        raise UnsupportedMediaError("the data is not a video container this server decodes "
                                    f"({', '.join(sorted(set(NAMES.values())))}) nor an image format it reads")
    if name == "mov":
        check_mp4_tables(fileobj, size)
        fileobj.seek(0)
    return name


def check_mp4_tables(fileobj: BinaryIO, size: int) -> None:
    """Refuse an MP4 whose tracks claim more samples than ``size`` bytes can hold (see the module docstring)."""
    for kind, count, each in _sample_claims(fileobj, size):
        if count * max(each, 1) > size:
            raise MediaTooLargeError(
                f"the MP4's {kind} box claims {count} samples{f' of {each} bytes' if each > 1 else ''}, more than "
                f"its {size} bytes can hold; the file is corrupt or hostile", code="implausible_container")


def _sample_claims(f: BinaryIO, size: int):
    """``(box, samples claimed, bytes each)`` for every stsz / stz2 / stts / trun box in the file."""
    stack, seen = [(0, size)], 0
    while stack:
        offset, end = stack.pop()
        while offset + 8 <= end:
            seen += 1
            if seen > _MAX_BOXES:
                raise MediaTooLargeError("the MP4 has implausibly many boxes", code="implausible_container")
            f.seek(offset)
            box_size, kind = struct.unpack(">I4s", f.read(8))
            header = 8
            if box_size == 1:
                box_size, header = struct.unpack(">Q", f.read(8))[0], 16
            elif box_size == 0:
                box_size = end - offset  # to the end of the enclosing box
            if box_size < header or offset + box_size > end:
                break  # truncated or corrupt: FFmpeg reports it when it reads that far
            body = offset + header
            if kind in _CONTAINERS:
                stack.append((body, offset + box_size))
            elif kind in _TABLES:
                _check_table_fits(f, kind, body, offset + box_size)
            if kind in (b"stsz", b"stz2", b"stts", b"trun"):
                yield from _claims_of(f, kind, body)
            offset += box_size


def _check_table_fits(f: BinaryIO, kind: bytes, body: int, end: int) -> None:
    """A table's entry count may not claim more entries than its own box holds."""
    f.seek(body)
    raw = f.read(8)
    if len(raw) < 8:
        return
    entries = struct.unpack(">I", raw[4:8])[0]
    each = 20 if kind == b"elst" and raw[0] == 1 else _TABLES[kind]  # version 1 edit lists: 64-bit fields
    if entries * each > end - body - 8:
        raise MediaTooLargeError(f"the MP4's {kind.decode('ascii')} box claims {entries} entries but holds room "
                                 f"for {max(end - body - 8, 0) // each}; the file is corrupt or hostile",
                                 code="implausible_container")


def _claims_of(f: BinaryIO, kind: bytes, body: int):
    f.seek(body)
    raw = f.read(16)
    if len(raw) < 12:
        return
    version_flags, a, b = struct.unpack(">III", raw[:12])
    name = kind.decode("ascii")
    if kind == b"stsz":  # sample_size (a; 0 = a table follows), sample_count (b)
        yield name, b, a
    elif kind == b"stz2":  # reserved+field_size (a), sample_count (b)
        yield name, b, 1
    elif kind == b"trun":  # sample_count (a)
        yield name, a, 1
    else:  # stts: entry_count (a), then (sample_count, delta) entries
        yield name, _stts_samples(f, body + 8, a), 1


def _stts_samples(f: BinaryIO, at: int, entries: int) -> int:
    f.seek(at)
    total = 0
    for _ in range(min(entries, _MAX_BOXES)):
        raw = f.read(8)
        if len(raw) < 8:
            break
        total += struct.unpack(">I", raw[:4])[0]
    return total


def file_size(fileobj: BinaryIO) -> int:
    fileobj.seek(0, os.SEEK_END)
    size = fileobj.tell()
    fileobj.seek(0)
    return size
