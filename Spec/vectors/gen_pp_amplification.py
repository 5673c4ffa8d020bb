#!/usr/bin/env python3
"""Generates Spec/vectors/pp-amplification.json: privacy amplification (Spec/postprocessing.md
section 7), Dietzfelbinger's multiply-add-shift hash, computed with Python integers.

    W = n + l - 1
    h_{a,b}(x) = ((a * x + b) mod 2^W) >> (n - 1)        (l bits)

Bit strings are integers with bit i of weight 2^i, written as bitmaps (bit i in byte i >> 3 at
position i & 7, least significant first; Spec/postprocessing.md section 2.1) in hex.

"small" cases give x, a, b and the output in full. "large" cases (sizes where GMP multiplies by
FFT) derive x, a, b from a SplitMix64 stream (state += 0x9E3779B97F4A7C15, then the
Stafford variant-13 mixer; 64-bit words: x's words, then a's, then b's, bits past each length
cleared) and give the BLAKE2b-256 (RFC 7693, unkeyed) of the output bitmap.

Shares no code with the Swift package.

Usage:
  python3 Spec/vectors/gen_pp_amplification.py           # rewrite pp-amplification.json
  python3 Spec/vectors/gen_pp_amplification.py --check   # exit 1 if the file differs
"""
import hashlib
import json
import os
import random
import sys

M64 = (1 << 64) - 1


def mas(x, a, b, n, l):
    w = n + l - 1
    return ((a * x + b) & ((1 << w) - 1)) >> (n - 1)


def bitmap(v, bits):
    return v.to_bytes((bits + 7) // 8, "little").hex()


class SplitMix64:
    def __init__(self, state):
        self.state = state & M64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def integer(self, bits):
        words = [self.next() for _ in range((bits + 63) // 64)]
        v = 0
        for i, word in enumerate(words):
            v |= word << (64 * i)
        return v & ((1 << bits) - 1)


def small_cases():
    rng = random.Random(20261127)
    sizes = [(1, 1), (2, 1), (1, 5), (8, 8), (63, 1), (64, 64), (65, 63), (100, 37), (127, 129),
             (128, 1), (500, 499), (1000, 333), (4099, 2048), (20000, 12000)]
    cases = []
    for n, l in sizes:
        w = n + l - 1
        for variant in range(2):
            if variant == 0:
                x, a, b = rng.getrandbits(n), rng.getrandbits(w), rng.getrandbits(w)
            else:
                # Extremes: all-ones operands exercise every carry.
                x, a, b = (1 << n) - 1, (1 << w) - 1, (1 << w) - 1
            cases.append({"n": n, "l": l, "x": bitmap(x, n), "a": bitmap(a, w), "b": bitmap(b, w),
                          "out": bitmap(mas(x, a, b, n, l), l)})
    return cases


def large_cases():
    cases = []
    for seed, n, l in [(1, 1 << 18, 1 << 18), (2, 300_000, 1), (3, (1 << 20) + 17, 600_001)]:
        g = SplitMix64(seed)
        w = n + l - 1
        x, a, b = g.integer(n), g.integer(w), g.integer(w)
        out = mas(x, a, b, n, l)
        digest = hashlib.blake2b(out.to_bytes((l + 7) // 8, "little"), digest_size=32).hexdigest()
        cases.append({"seed": seed, "n": n, "l": l, "blake2b256": digest})
    return cases


def build():
    return {
        "algorithm": "multiply-add-shift privacy amplification: ((a*x + b) mod 2^(n+l-1)) >> (n-1)",
        "source": "Spec/vectors/gen_pp_amplification.py (Python integers; Dietzfelbinger 1996)",
        "cases": small_cases(),
        "large": large_cases(),
    }


def main():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pp-amplification.json")
    text = json.dumps(build(), indent=1) + "\n"
    if "--check" in sys.argv:
        with open(path) as f:
            sys.exit(0 if f.read() == text else 1)
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
