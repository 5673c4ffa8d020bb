#!/usr/bin/env bash
# Build one libFuzzer target with AddressSanitizer and run it.
#   Fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags...]
#   Fuzz/run.sh --build-only TARGET
#   Fuzz/run.sh --list
# Corpus: Fuzz/Corpus/TARGET (committed seeds; new finds go to a scratch copy unless
# FUZZ_GROW_CORPUS=1). Dictionary: Fuzz/Dictionaries/TARGET.dict if present.
# Crashes are written to Fuzz/FailCases/TARGET/. Exit status non-zero on any crash.
# The C targets (CQKDKernels: Cascade step, sifting, GF(2^128)) get ASan and coverage too
# (-Xcc): -Xswiftc reaches Swift code only, and the Cascade engine's bookkeeping is C.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
targets=$(sed -n 's/^    ("\(Fuzz[A-Za-z0-9]*\)".*/\1/p' Package.swift)
if [ "${1:-}" = "--list" ]; then echo "$targets"; exit 0; fi
build_only=0
if [ "${1:-}" = "--build-only" ]; then build_only=1; shift; fi
target="${1:?usage: run.sh TARGET [SECONDS] (targets: $(echo $targets))}"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))
echo "$targets" | grep -qx "$target" || { echo "run.sh: unknown target '$target'; known: $(echo $targets)" >&2; exit 2; }

toolchain="$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")"
fuzzer_lib=$(ls "$toolchain"/lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a 2>/dev/null | head -1)
[ -n "$fuzzer_lib" ] || { echo "run.sh: libclang_rt.fuzzer_no_main not found under $toolchain/lib/clang" >&2; exit 2; }

swift build -c release --scratch-path "$here/.build-fuzz" --product "$target" \
    -Xswiftc -sanitize=address \
    -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
    -Xswiftc -parse-as-library \
    -Xcc -fsanitize=address -Xcc -fsanitize-coverage=inline-8bit-counters,pc-table,trace-cmp \
    -Xlinker "$fuzzer_lib" -Xlinker -lstdc++ >&2
binary="$here/.build-fuzz/release/$target"
[ "$build_only" = 1 ] && { echo "$binary"; exit 0; }

corpus_seed="$here/Corpus/$target"
mkdir -p "$corpus_seed" "$here/FailCases/$target"
work="${FUZZ_WORK_DIR:-$(mktemp -d)}"
if [ "${FUZZ_GROW_CORPUS:-0}" = 1 ]; then corpus="$corpus_seed"; else corpus="$work/corpus"; mkdir -p "$corpus"; cp -r "$corpus_seed/." "$corpus/" 2>/dev/null || true; fi
dict=()
[ -f "$here/Dictionaries/$target.dict" ] && dict=(-dict="$here/Dictionaries/$target.dict")
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}"
exec "$binary" "$corpus" "${dict[@]}" -max_total_time="$seconds" -artifact_prefix="$here/FailCases/$target/" \
    -print_final_stats=1 "$@"
