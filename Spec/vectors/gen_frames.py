#!/usr/bin/env python3
"""Generates Spec/vectors/frames.json: QKDWire frame format version 1 (Spec/wire.md).

An independent implementation of Spec/wire.md in pure Python (standard library only): the frame
layout, the decoder's check order and error codes, and both Wegman-Carter suites' MAC
construction (Spec/wire.md section 6, Spec/crypto.md "Hash input"):

  poly1305-otp: Poly1305 (RFC 8439 section 2.5) with key r || s over
                pad16(D) || pad16(M) || le64(len D) || le64(len M)   (RFC 8439 section 2.8 layout)
  gf128-otp:    GHASH_H(A = D, C = M) (GCM, McGrew and Viega 2005; be64 bit lengths) XOR s

It shares no code with the Swift package, so the Swift tests that decode, re-encode and verify
these frames check the Swift code against the Spec, not against itself.

Usage:
  python3 Spec/vectors/gen_frames.py            # rewrite Spec/vectors/frames.json
  python3 Spec/vectors/gen_frames.py --example  # print the worked example of Spec/wire.md
  python3 Spec/vectors/gen_frames.py --check    # exit 1 if frames.json is not what this script makes
"""
import hashlib
import json
import os
import struct
import sys

# ----------------------------------------------------------------------------------------------
# Universal hashes, written from their specifications.

P1305 = (1 << 130) - 5
R_CLAMP = 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF


def poly1305(key32, msg):
    """RFC 8439 section 2.5: Poly1305 with key r || s (r clamped), tag = (acc + s) mod 2^128."""
    assert len(key32) == 32
    r = int.from_bytes(key32[:16], "little") & R_CLAMP
    s = int.from_bytes(key32[16:], "little")
    acc = 0
    for i in range(0, len(msg), 16):
        block = msg[i:i + 16]
        n = int.from_bytes(block + b"\x01", "little")
        acc = (acc + n) * r % P1305
    return ((acc + s) % (1 << 128)).to_bytes(16, "little")


GCM_R = 0xE1 << 120


def gf128_mul(x, y):
    """GCM specification, Algorithm 1: the product in GF(2^128), bit 0 = MSB of byte 0."""
    z, v = 0, y
    for i in range(127, -1, -1):
        if (x >> i) & 1:
            z ^= v
        v = (v >> 1) ^ GCM_R if v & 1 else v >> 1
    return z


def ghash(h16, data):
    """GHASH_H over whole 16-byte blocks: Y_i = (Y_{i-1} XOR X_i) * H."""
    assert len(data) % 16 == 0
    h = int.from_bytes(h16, "big")
    y = 0
    for i in range(0, len(data), 16):
        y = gf128_mul(y ^ int.from_bytes(data[i:i + 16], "big"), h)
    return y.to_bytes(16, "big")


def pad16(b):
    return b + bytes(-len(b) % 16)


SUITES = {"poly1305-otp": 1, "gf128-otp": 2}


def wegman_carter(suite, hash_key, pad, domain, message):
    """The tag of `message` in domain `domain` (QKDCrypto WegmanCarter.authenticationTag)."""
    assert len(hash_key) == 16 and len(pad) == 16
    if suite == "poly1305-otp":
        mac_data = pad16(domain) + pad16(message) + struct.pack("<QQ", len(domain), len(message))
        return poly1305(hash_key + pad, mac_data)
    if suite == "gf128-otp":
        ghash_data = pad16(domain) + pad16(message) + struct.pack(">QQ", 8 * len(domain), 8 * len(message))
        digest = ghash(hash_key, ghash_data)
        return bytes(a ^ b for a, b in zip(digest, pad))
    raise ValueError(suite)


def self_test():
    """Published answers: a wrong hash here must never reach frames.json."""
    # RFC 8439 section 2.5.2.
    tag = poly1305(bytes.fromhex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b"),
                   b"Cryptographic Forum Research Group")
    assert tag.hex() == "a8061dc1305136c6c22b8baf0c0127a9", "poly1305 RFC 8439 2.5.2"
    # RFC 8452 Appendix A: GHASH(H, X_1, X_2).
    g = ghash(bytes.fromhex("25629347589242761d31f826ba4b757b"),
              bytes.fromhex("4f4f95668c83dfb6401762bb2d01a262d1a24ddd2721d006bbe45f20d3c9f362"))
    assert g.hex() == "bd9b3997046731fb96251b91f9c99d7a", "GHASH RFC 8452 Appendix A"
    # GCM specification, Test Case 2: X_1 after the ciphertext block, then GHASH(H, {}, C) with
    # the length block.
    h = bytes.fromhex("66e94bd4ef8a2c3b884cfa59ca342b2e")
    c = bytes.fromhex("0388dace60b6a392f328c2b971b2fe78")
    assert ghash(h, c).hex() == "5e2ec746917062882c85b0685353deb7", "GHASH GCM test case 2, X_1"
    g = ghash(h, c + struct.pack(">QQ", 0, 128))
    assert g.hex() == "f38cbb1ad69223dcc3457ae5b6b0f885", "GHASH GCM test case 2"


# ----------------------------------------------------------------------------------------------
# The frame layout (Spec/wire.md section 2).

VERSION = 1
TYPES = {"handshake": 1, "alert": 2, "control": 3, "data": 4}
FLAG_ROUND_CLOSE = 0x01
KIND_NONE, KIND_PAD_SLOT, KIND_ROUND = 0, 1, 2
HEADER = 32               # bytes from offset 0 through the payload length field
AFTER_LENGTH = HEADER - 4  # header bytes counted by the length field
MAX_FRAME = 1 << 20       # default limit: bytes on the wire, length field included

FRAME_LABEL = b"QKDChannel/1 frame"
ROUND_LABEL = b"QKDChannel/1 round"


def tag_length(kind, flags):
    return 16 if kind == KIND_PAD_SLOT or (kind == KIND_ROUND and flags & FLAG_ROUND_CLOSE) else 0


def header_bytes(ftype, flags, kind, seq, epoch, slot, payload_len, tag_len, version=VERSION, length=None):
    if length is None:
        length = AFTER_LENGTH + payload_len + tag_len
    return struct.pack(">IBBBBQIQI", length, version, ftype, flags, kind, seq, epoch, slot, payload_len)


def frame_domain(suite, direction, session):
    return FRAME_LABEL + bytes([SUITES[suite], direction]) + session


def round_domain(suite, direction, session, round_number):
    return ROUND_LABEL + bytes([SUITES[suite], direction]) + session + struct.pack(">Q", round_number)


# ----------------------------------------------------------------------------------------------
# Deterministic bytes (so the file is reproducible): SHA-256 in counter mode.

def det_bytes(label, n):
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(label.encode() + struct.pack(">I", i)).digest()
        i += 1
    return out[:n]


# Keys of the examples. The hash key and pad of the worked example are RFC 8439 2.5.2's r and s.
EXAMPLE_HASH_KEY = bytes.fromhex("85d6be7857556d337f4452fe42d506a8")
EXAMPLE_PAD = bytes.fromhex("0103808afb0db2fd4abff6af4149f51b")
EXAMPLE_SESSION = bytes.fromhex("5e551011000000000000000000000001")


def valid_case(name, ftype, kind, seq, epoch, slot, payload, auth=None, flags=0, limit=None):
    tag_len = tag_length(kind, flags)
    head = header_bytes(TYPES[ftype], flags, kind, seq, epoch, slot, len(payload), tag_len)
    tag = b""
    auth_json = None
    if tag_len:
        assert auth is not None and kind == KIND_PAD_SLOT
        suite, direction, session, hash_key, pad = auth
        tag = wegman_carter(suite, hash_key, pad, frame_domain(suite, direction, session), head + payload)
        auth_json = {"suite": suite, "direction": direction, "sessionID": session.hex(),
                     "hashKey": hash_key.hex(), "pad": pad.hex()}
    case = {
        "name": name, "kind": "valid", "frame": (head + payload + tag).hex(),
        "header": {"version": VERSION, "type": TYPES[ftype], "flags": flags, "keyKind": kind,
                   "sequenceNumber": seq, "epoch": epoch, "slot": slot, "payloadLength": len(payload)},
        "payload": payload.hex(), "tag": tag.hex() if tag else None, "auth": auth_json,
    }
    if limit is not None:
        case["limit"] = limit
    return case


def invalid_case(name, stream, error, frames_before=0, limit=None, why=""):
    case = {"name": name, "kind": "invalid", "frame": stream.hex(), "error": error,
            "framesBefore": frames_before, "why": why}
    if limit is not None:
        case["limit"] = limit
    return case


def raw_frame(ftype=1, flags=0, kind=0, seq=0, epoch=0, slot=0, payload=b"", tail=b"", version=VERSION,
              length=None, payload_len=None):
    """Any frame, well-formed or not: header fields as given, then payload, then `tail`."""
    plen = len(payload) if payload_len is None else payload_len
    if length is None:
        length = AFTER_LENGTH + len(payload) + len(tail)
    return struct.pack(">IBBBBQIQI", length, version, ftype, flags, kind, seq, epoch, slot, plen) + payload + tail


def round_case(name, suite, direction, session, round_number, hash_key, pad, epoch, frames_spec, first_kind=KIND_ROUND):
    """frames_spec: list of (type, seq, payload, slot); the last one closes the round with its
    slot. `first_kind` = KIND_NONE makes the first frame an untagged hello (the handshake,
    Spec/session.md section 3)."""
    domain = round_domain(suite, direction, session, round_number)
    transcript = b""
    encoded = []
    for i, (ftype, seq, payload, slot) in enumerate(frames_spec):
        closing = i == len(frames_spec) - 1
        flags = FLAG_ROUND_CLOSE if closing else 0
        kind = first_kind if i == 0 and not closing else KIND_ROUND
        head = header_bytes(TYPES[ftype], flags, kind, seq, epoch if kind else 0, slot if closing else 0,
                            len(payload), tag_length(kind, flags))
        transcript += head + payload
        encoded.append(head + payload)
    tag = wegman_carter(suite, hash_key, pad, domain, transcript)
    encoded[-1] += tag
    return {"name": name, "kind": "round",
            "round": {"suite": suite, "direction": direction, "sessionID": session.hex(),
                      "roundNumber": round_number, "hashKey": hash_key.hex(), "pad": pad.hex(),
                      "frames": [f.hex() for f in encoded], "closingTag": tag.hex()}}


def build_cases():
    s2 = det_bytes("session 2", 16)
    k2, p2 = det_bytes("hash key 2", 16), det_bytes("pad 2", 16)
    cases = [
        valid_case("worked example: handshake, per-frame tag, poly1305-otp", "handshake", KIND_PAD_SLOT,
                   0, 1, 0, b"hello, bob", ("poly1305-otp", 0, EXAMPLE_SESSION, EXAMPLE_HASH_KEY, EXAMPLE_PAD)),
        valid_case("worked example's frame under gf128-otp", "handshake", KIND_PAD_SLOT,
                   0, 1, 0, b"hello, bob", ("gf128-otp", 0, EXAMPLE_SESSION, EXAMPLE_HASH_KEY, EXAMPLE_PAD)),
        valid_case("control, no key, empty payload", "control", KIND_NONE, 0, 0, 0, b""),
        valid_case("alert, no key", "alert", KIND_NONE, 3, 0, 0, b"\x00\x01bye"),
        valid_case("data in a round transcript (no tag)", "data", KIND_ROUND, 41, 7, 0, det_bytes("p40", 40)),
        valid_case("empty payload with tag, poly1305-otp, bob->alice", "control", KIND_PAD_SLOT, 9, 2, 17, b"",
                   ("poly1305-otp", 1, s2, k2, p2)),
        valid_case("17-byte payload, gf128-otp, bob->alice", "handshake", KIND_PAD_SLOT, 10, 2, 18,
                   det_bytes("p17", 17), ("gf128-otp", 1, s2, k2, p2)),
        valid_case("maximum counters, poly1305-otp", "data", KIND_PAD_SLOT, 2**64 - 1, 2**32 - 1, 2**64 - 1,
                   det_bytes("p33", 33), ("poly1305-otp", 0, s2, k2, p2)),
        valid_case("1000-byte payload, poly1305-otp", "data", KIND_PAD_SLOT, 123456789, 5, 1 << 40,
                   det_bytes("p1000", 1000), ("poly1305-otp", 0, s2, k2, p2)),
        valid_case("1000-byte payload, gf128-otp", "data", KIND_PAD_SLOT, 123456790, 5, (1 << 40) + 1,
                   det_bytes("p1000", 1000), ("gf128-otp", 0, s2, k2, p2)),
        valid_case("exactly at a lowered limit of 100 bytes", "data", KIND_NONE, 1, 0, 0, det_bytes("p68", 68),
                   limit=100),
    ]
    ok = raw_frame(ftype=3, payload=b"ok")  # a well-formed unauthenticated frame (34 bytes)
    inv = [
        invalid_case("version 0", raw_frame(version=0), "wire.bad-version"),
        invalid_case("version 2", raw_frame(version=2, payload=b"future"), "wire.bad-version"),
        invalid_case("type 0", raw_frame(ftype=0), "wire.unknown-type"),
        invalid_case("type 5", raw_frame(ftype=5), "wire.unknown-type"),
        invalid_case("type 255", raw_frame(ftype=255), "wire.unknown-type"),
        invalid_case("flags bit 1", raw_frame(flags=0x02), "wire.reserved-bits-set"),
        invalid_case("flags bit 7 with round close", raw_frame(flags=0x81, kind=2, slot=1, tail=bytes(16)),
                     "wire.reserved-bits-set"),
        invalid_case("key kind 3", raw_frame(kind=3), "wire.unknown-key-kind"),
        invalid_case("key kind 255", raw_frame(kind=255), "wire.unknown-key-kind"),
        invalid_case("no key but an epoch", raw_frame(kind=0, epoch=1), "wire.key-reference-mismatch"),
        invalid_case("no key but a slot", raw_frame(kind=0, slot=1), "wire.key-reference-mismatch"),
        invalid_case("round close on a pad-slot frame", raw_frame(kind=1, flags=1, tail=bytes(16)),
                     "wire.key-reference-mismatch"),
        invalid_case("round close without a key", raw_frame(kind=0, flags=1, tail=bytes(16)),
                     "wire.key-reference-mismatch"),
        invalid_case("open round frame with a slot", raw_frame(kind=2, slot=5), "wire.key-reference-mismatch"),
        invalid_case("length 0xffffffff: oversize from the first 4 bytes", struct.pack(">I", 0xFFFFFFFF),
                     "wire.oversize", why="the limit is checked before the rest of the frame arrives"),
        invalid_case("1 MiB + 1 byte", struct.pack(">I", MAX_FRAME - 3) + bytes(16), "wire.oversize"),
        invalid_case("101 bytes under a limit of 100", raw_frame(ftype=4, payload=bytes(69)), "wire.oversize",
                     limit=100),
        invalid_case("length shorter than a header", struct.pack(">I", 27) + bytes(27), "wire.truncated"),
        invalid_case("length 0", struct.pack(">I", 0), "wire.truncated"),
        invalid_case("payload length past the end of the frame", raw_frame(payload=b"abc", payload_len=4),
                     "wire.truncated"),
        invalid_case("payload length 0xffffffff", raw_frame(payload=b"abc", payload_len=0xFFFFFFFF),
                     "wire.truncated"),
        invalid_case("tag cut to 8 bytes", raw_frame(kind=1, payload=b"abc", tail=bytes(8)), "wire.truncated"),
        invalid_case("stream ends inside the header", raw_frame(payload=b"abc")[:20], "wire.truncated",
                     why="end of stream (FrameDecoder.finish) with a partial frame buffered"),
        invalid_case("stream ends inside the payload", raw_frame(payload=b"abcdef")[:35], "wire.truncated"),
        invalid_case("stream ends after a frame and 3 bytes", ok + b"\x00\x00\x00", "wire.truncated",
                     frames_before=1),
        invalid_case("5 bytes after the payload of an untagged frame", raw_frame(payload=b"abc", tail=bytes(5)),
                     "wire.trailing-garbage"),
        invalid_case("20 bytes after the payload of a tagged frame", raw_frame(kind=1, payload=b"abc",
                     tail=bytes(20)), "wire.trailing-garbage"),
        invalid_case("a 16-byte tag on a frame without a key", raw_frame(payload=b"abc", tail=bytes(16)),
                     "wire.tag-length-mismatch"),
        invalid_case("a 16-byte tag on an open round frame", raw_frame(kind=2, payload=b"abc", tail=bytes(16)),
                     "wire.tag-length-mismatch"),
        invalid_case("no tag on a pad-slot frame", raw_frame(kind=1, payload=b"abc"), "wire.tag-length-mismatch"),
        invalid_case("no tag on a round-closing frame", raw_frame(kind=2, flags=1, slot=3, payload=b"abc"),
                     "wire.tag-length-mismatch"),
        invalid_case("two good frames, then version 9", ok + ok + raw_frame(version=9), "wire.bad-version",
                     frames_before=2),
        invalid_case("first failing check wins: bad version and unknown type", raw_frame(version=3, ftype=9),
                     "wire.bad-version"),
        invalid_case("first failing check wins: oversize before bad version",
                     struct.pack(">I", 200) + bytes(200), "wire.oversize", limit=100),
    ]
    rounds = [
        round_case("round of three frames, poly1305-otp, alice->bob", "poly1305-otp", 0, EXAMPLE_SESSION, 1,
                   EXAMPLE_HASH_KEY, EXAMPLE_PAD, 1,
                   [("data", 5, det_bytes("r1", 100), 0), ("data", 6, b"", 0), ("data", 7, det_bytes("r3", 31), 42)]),
        round_case("round of three frames, gf128-otp, bob->alice", "gf128-otp", 1, s2, 2**64 - 1, k2, p2, 9,
                   [("data", 0, det_bytes("r4", 48), 0), ("control", 1, det_bytes("r5", 3), 0),
                    ("data", 2, det_bytes("r6", 16), 7)]),
        round_case("round closed by its only frame, poly1305-otp", "poly1305-otp", 1, s2, 0, k2, p2, 3,
                   [("data", 77, det_bytes("r7", 200), 1000)]),
        round_case("handshake as round 0: untagged hello, then the closing Finished, gf128-otp", "gf128-otp", 0,
                   EXAMPLE_SESSION, 0, EXAMPLE_HASH_KEY, EXAMPLE_PAD, 1,
                   [("handshake", 0, b"\x01" + det_bytes("hello", 60), 0), ("handshake", 1, b"\x03", 1)],
                   first_kind=KIND_NONE),
    ]
    return cases + inv + rounds


def worked_example():
    c = build_cases()[0]
    frame = bytes.fromhex(c["frame"])
    d = frame_domain("poly1305-otp", 0, EXAMPLE_SESSION)
    m = frame[:32 + 10]
    mac_data = pad16(d) + pad16(m) + struct.pack("<QQ", len(d), len(m))
    lines = ["frame (%d bytes):" % len(frame)]
    for i in range(0, len(frame), 16):
        lines.append("  %04x  %s" % (i, " ".join("%02x" % b for b in frame[i:i + 16])))
    lines.append("D (%d bytes): %s" % (len(d), d.hex()))
    lines.append("M (%d bytes): %s" % (len(m), m.hex()))
    lines.append("Poly1305 input (%d bytes):" % len(mac_data))
    for i in range(0, len(mac_data), 16):
        lines.append("  %s" % mac_data[i:i + 16].hex())
    lines.append("tag: %s" % c["tag"])
    lines.append("gf128-otp tag of the same frame: %s" % build_cases()[1]["tag"])
    return "\n".join(lines)


def main():
    self_test()
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "frames.json")
    doc = {
        "algorithm": "QKDWire frame format version 1 (Spec/wire.md)",
        "source": "Spec/vectors/gen_frames.py: independent pure-Python implementation of Spec/wire.md "
                  "(Poly1305 per RFC 8439 2.5, GHASH per the GCM specification), self-checked against "
                  "RFC 8439 2.5.2, RFC 8452 Appendix A and GCM test case 2",
        "cases": build_cases(),
    }
    text = json.dumps(doc, indent=1) + "\n"
    if "--example" in sys.argv:
        print(worked_example())
    elif "--check" in sys.argv:
        with open(path) as f:
            if f.read() != text:
                print("frames.json is stale: run python3 Spec/vectors/gen_frames.py")
                sys.exit(1)
        print("frames.json is up to date")
    else:
        with open(path, "w") as f:
            f.write(text)
        print("wrote %s (%d cases)" % (path, len(doc["cases"])))


if __name__ == "__main__":
    main()
