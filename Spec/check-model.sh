#!/usr/bin/env bash
# Model-checks Spec/handshake.pml with spin: the model must satisfy every assertion and the
# noDowngrade LTL claim, and each seeded mutant (a deliberately broken protocol rule) must be
# caught, which shows the model can fail. Exit non-zero otherwise.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/handshake.pml" "$work/"
cd "$work"
run() {  # run NAME DEFINES PAN_CC_FLAGS PAN_FLAGS -> prints "errors: N"
    rm -f pan pan.c *.trail
    spin $2 -a handshake.pml >/dev/null
    cc -O2 -w $3 -o pan pan.c
    ./pan -m500000 $4 > "$1.out" 2>&1 || true
    grep -o 'errors: [0-9]*' "$1.out" | head -1
}
status=0
safety=$(run safety "" "-DSAFETY -DNOCLAIM" "")
ltl=$(run ltl "" "" "-a")
echo "model: assertions and end states: $safety; LTL noDowngrade: $ltl"
[ "$safety" = "errors: 0" ] && [ "$ltl" = "errors: 0" ] || { echo "MODEL VIOLATED"; cat safety.out ltl.out; status=1; }
if sed -n '/unreached in proctype/,$p' safety.out | grep -q 'assert('; then
    echo "an assertion is unreachable: the model is vacuous"; sed -n '/unreached in proctype/,$p' safety.out; status=1
fi
for mutant in BUG_NO_TRANSCRIPT_CHECK BUG_VOLATILE_WATERMARK BUG_NO_REPLAY_CHECK BUG_IGNORE_VALIDATION BUG_PREAUTH_SKIP; do
    s=$(run "$mutant" "-D$mutant" "-DSAFETY -DNOCLAIM" "")
    l=$(run "$mutant-ltl" "-D$mutant" "" "-a")
    if [ "$s" = "errors: 0" ] && [ "$l" = "errors: 0" ]; then
        echo "mutant $mutant: NOT caught (the model is too weak)"; status=1
    else
        echo "mutant $mutant: caught ($s / LTL $l)"
    fi
done
exit $status
