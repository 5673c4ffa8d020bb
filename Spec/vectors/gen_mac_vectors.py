#!/usr/bin/env python3
"""Independent reference for QKDChannel's Wegman-Carter suites (Spec/crypto.md).

Writes, next to this script:
  poly1305-rfc8439.json  RFC 8439 section 2.5.2 and appendix A.3 (raw Poly1305), each case
                         checked against the pure-Python Poly1305 below before it is written;
  mac-suites.json        our own vectors for poly1305-otp and gf128-otp: domain separation,
                         explicit length block, pads; plus RFC 8439 section 2.8.2 (the AEAD MAC
                         layout that poly1305-otp uses, with the AAD as domain).
Pure Python, no dependencies: it shares no code with the Swift implementation.
"""
import json, os, random

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- Poly1305 (RFC 8439 section 2.5) -------------------------------------------------------
def poly1305(key: bytes, msg: bytes) -> bytes:
    r = int.from_bytes(key[:16], "little") & 0x0ffffffc0ffffffc0ffffffc0fffffff
    s = int.from_bytes(key[16:32], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(msg), 16):
        n = int.from_bytes(msg[i:i + 16] + b"\x01", "little")
        acc = (acc + n) * r % p
    return ((acc + s) % (1 << 128)).to_bytes(16, "little")

def pad16(b: bytes) -> bytes:
    return b + bytes(-len(b) % 16)

def poly1305_otp(r: bytes, s: bytes, domain: bytes, message: bytes) -> bytes:
    data = pad16(domain) + pad16(message) + len(domain).to_bytes(8, "little") + len(message).to_bytes(8, "little")
    return poly1305(r + s, data)

# ---- GF(2^128), GHASH convention (GCM spec, Algorithm 1) ------------------------------------
R = 0xE1 << 120

def gf_mul(x: int, y: int) -> int:
    z, v = 0, y
    for i in range(127, -1, -1):
        if (x >> i) & 1:
            z ^= v
        v = (v >> 1) ^ R if v & 1 else v >> 1
    return z

def ghash(h: bytes, a: bytes, c: bytes) -> bytes:
    hh = int.from_bytes(h, "big")
    y = 0
    data = pad16(a) + pad16(c) + (8 * len(a)).to_bytes(8, "big") + (8 * len(c)).to_bytes(8, "big")
    for i in range(0, len(data), 16):
        y = gf_mul(y ^ int.from_bytes(data[i:i + 16], "big"), hh)
    return y.to_bytes(16, "big")

def gf128_otp(h: bytes, s: bytes, domain: bytes, message: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(ghash(h, domain, message), s))

# ---- RFC 8439 raw Poly1305 vectors ---------------------------------------------------------
IETF = (b"Any submission to the IETF intended by the Contributor for publication as all or "
        b"part of an IETF Internet-Draft or RFC and any statement made within the context "
        b"of an IETF activity is considered an \"IETF Contribution\". Such statements "
        b"include oral statements in IETF sessions, as well as written and electronic "
        b"communications made at any time or place, which are addressed to")
JABBER = (b"'Twas brillig, and the slithy toves\nDid gyre and gimble in the wabe:\n"
          b"All mimsy were the borogoves,\nAnd the mome raths outgrabe.")
H = bytes.fromhex
rfc_cases = [
    ("2.5.2", H("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b"), b"Cryptographic Forum Research Group", H("a8061dc1305136c6c22b8baf0c0127a9")),
    ("A.3 #1", bytes(32), bytes(64), bytes(16)),
    ("A.3 #2", bytes(16) + H("36e5f6b5c5e06070f0efca96227a863e"), IETF, H("36e5f6b5c5e06070f0efca96227a863e")),
    ("A.3 #3", H("36e5f6b5c5e06070f0efca96227a863e") + bytes(16), IETF, H("f3477e7cd95417af89a6b8794c310cf0")),
    ("A.3 #4", H("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0"), JABBER, H("4541669a7eaaee61e708dc7cbcc5eb62")),
    ("A.3 #5", H("02") + bytes(31), H("ff" * 16), H("03") + bytes(15)),
    ("A.3 #6", H("02") + bytes(15) + H("ff" * 16), H("02") + bytes(15), H("03") + bytes(15)),
    ("A.3 #7", H("01") + bytes(31), H("ff" * 16 + "f0" + "ff" * 15 + "11" + "00" * 15), H("05") + bytes(15)),
    ("A.3 #8", H("01") + bytes(31), H("ff" * 16 + "fb" + "fe" * 15 + "01" * 16), bytes(16)),
    ("A.3 #9", H("02") + bytes(31), H("fd" + "ff" * 15), H("fa" + "ff" * 15)),
    ("A.3 #10", H("0100000000000000040000000000000000000000000000000000000000000000"),
     H("e33594d7505e43b900000000000000003394d7505e4379cd01000000000000000000000000000000000000000000000001000000000000000000000000000000"),
     H("14000000000000005500000000000000")),
    ("A.3 #11", H("0100000000000000040000000000000000000000000000000000000000000000"),
     H("e33594d7505e43b900000000000000003394d7505e4379cd010000000000000000000000000000000000000000000000"),
     H("13000000000000000000000000000000")),
]
for name, key, msg, tag in rfc_cases:
    assert poly1305(key, msg) == tag, f"RFC 8439 {name}: reference disagrees"

def write(name, obj):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")

write("poly1305-rfc8439.json", {
    "algorithm": "poly1305",
    "source": "RFC 8439 (ChaCha20 and Poly1305 for IETF Protocols), section 2.5.2 and appendix A.3; checked by gen_mac_vectors.py",
    "cases": [{"name": n, "key": k.hex(), "message": m.hex(), "tag": t.hex()} for n, k, m, t in rfc_cases],
})

# ---- Our own suite vectors -----------------------------------------------------------------
rng = random.Random(20261127)
def rb(n): return bytes(rng.getrandbits(8) for _ in range(n))

cases = []
def add(name, suite, r, s, domain, message):
    tag = poly1305_otp(r, s, domain, message) if suite == "poly1305-otp" else gf128_otp(r, s, domain, message)
    cases.append({"name": name, "suite": suite, "hash_key": r.hex(), "pad": s.hex(),
                  "domain": domain.hex(), "message": message.hex(), "tag": tag.hex()})

# RFC 8439 2.8.2: the AEAD's Poly1305 over AAD and ciphertext is poly1305-otp with D = AAD.
aead_key = H("7bac2b252db447af09b67a55a4e955840ae1d6731075d9eb2a9375783ed553ff")
aad = H("50515253c0c1c2c3c4c5c6c7")
ct = H("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116")
assert poly1305_otp(aead_key[:16], aead_key[16:], aad, ct) == H("1ae10b594f09e26a7e902ecbd0600691")
add("RFC 8439 2.8.2 AEAD MAC (domain = AAD)", "poly1305-otp", aead_key[:16], aead_key[16:], aad, ct)

label = b"QKDChannel/1 frame"
for suite in ("poly1305-otp", "gf128-otp"):
    r, s = rb(16), rb(16)
    add(f"{suite}: empty domain, empty message", suite, r, s, b"", b"")
    add(f"{suite}: empty message", suite, r, s, label, b"")
    add(f"{suite}: one byte", suite, r, s, label, b"\x01")
    add(f"{suite}: trailing zero block appended (must differ from the previous)", suite, r, s, label, b"\x01" + bytes(16))
    add(f"{suite}: leading zero block prepended", suite, r, s, label, bytes(16) + b"\x01")
    add(f"{suite}: boundary shift, D=ab M=c", suite, r, s, b"ab", b"c")
    add(f"{suite}: boundary shift, D=a M=bc", suite, r, s, b"a", b"bc")
    add(f"{suite}: all-zero pad", suite, r, bytes(16), label, b"abc")
    add(f"{suite}: all-ones pad (poly1305: carry wraps mod 2^128)", suite, r, H("ff" * 16), label, b"abc")
    for n in (15, 16, 17, 31, 32, 33, 64, 255, 1000):
        add(f"{suite}: random {n}-byte message", suite, rb(16), rb(16), label + rb(18), rb(n))
# GHASH convention anchor: GCM spec test case 2 (H, C; A empty) with a zero pad gives GHASH itself.
add("gf128-otp: GCM spec test case 2 GHASH with zero pad", "gf128-otp",
    H("66e94bd4ef8a2c3b884cfa59ca342b2e"), bytes(16), b"", H("0388dace60b6a392f328c2b971b2fe78"))
assert cases[-1]["tag"] == "f38cbb1ad69223dcc3457ae5b6b0f885", cases[-1]["tag"]

tags = [c["tag"] for c in cases]
import collections
dups = [t for t, n in collections.Counter(tags).items() if n > 1]
assert not dups, [c["name"] for c in cases if c["tag"] in dups]

write("mac-suites.json", {
    "algorithm": "wegman-carter",
    "source": "QKDChannel Spec/crypto.md; generated by Spec/vectors/gen_mac_vectors.py (independent pure-Python reference)",
    "cases": cases,
})
print(f"wrote {len(rfc_cases)} RFC 8439 cases and {len(cases)} suite cases")
