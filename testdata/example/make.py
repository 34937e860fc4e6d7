#!/usr/bin/env python3
"""Builds the bundled example releases: four versions of a small program image,
each a realistic edit of the one before (code whose pointers shift when something
is inserted, a string table that gains entries, a zero-filled section, a moved block).

Deterministic: `python3 testdata/example/make.py` rewrites the same bytes.
"""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
WORDS = [b"update", b"patch", b"release", b"device", b"verify", b"signature",
         b"manifest", b"install", b"rollback", b"firmware", b"config", b"error"]


def code(rng, n, base):
    """Pseudo machine code: opcodes with little-endian 4-byte absolute pointers."""
    out = bytearray()
    while len(out) < n:
        op = rng.choice([0x48, 0x8B, 0xE8, 0xFF, 0x89, 0x0F])
        out += bytes([op, rng.randrange(256)]) + struct.pack("<I", base + rng.randrange(1 << 16) * 4)
    return out[:n]


def strings(rng, n):
    out = bytearray()
    while len(out) < n:
        out += b" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7))) + b"\0"
    return out[:n]


def release(version):
    rng = random.Random(2026)
    text = code(rng, 96 << 10, 0x400000)
    rodata = strings(rng, 48 << 10)
    bss = bytes(32 << 10)
    tail = rng.randbytes(16 << 10)
    if version >= 1:
        # 1.1: a function is inserted, so every pointer past it moves by 0x40
        at = 40 << 10
        text = text[:at] + code(random.Random(11), 2048, 0x400000) + text[at:]
        text = bytearray(text)
        for i in range(0, len(text) - 6, 6):
            (p,) = struct.unpack_from("<I", text, i + 2)
            if p > 0x400000 + at:
                struct.pack_into("<I", text, i + 2, p + 0x40)
        rodata = rodata + strings(random.Random(12), 1024)
    if version >= 2:
        # 1.2: a block moves, a few bytes are patched, and the tail changes
        blk = text[10 << 10:14 << 10]
        text = text[:10 << 10] + text[14 << 10:60 << 10] + blk + text[60 << 10:]
        text = bytearray(text)
        for i in range(0, len(text), 4099):
            text[i] ^= 0x5A
        tail = random.Random(13).randbytes(16 << 10)
    if version >= 3:
        # 1.3: a hotfix: a few bytes of one function, one new string
        text = bytearray(text)
        for i in range(20 << 10, (20 << 10) + 64, 8):
            text[i] ^= 0x21
        rodata = rodata + b"hotfix applied\0"
    header = b"\x7fEXAMPLE" + struct.pack("<HHI", 1, version, len(text))
    return header + bytes(text) + rodata + bss + tail


for v in range(4):
    with open(os.path.join(HERE, f"app-1.{v}.bin"), "wb") as f:
        f.write(release(v))
