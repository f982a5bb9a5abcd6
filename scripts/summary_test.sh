#!/usr/bin/env bash
# Checks scripts/summary.awk on a fixed cargo test log: skips are counted apart from passes.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cat >"$log" <<'LOG'
running 3 tests
skipped: health::tests::checks_a_real_apache: apache2 not installed (apt-get install -y apache2)
test health::tests::checks_a_real_apache ... ok
test a ... ok
test b ... FAILED
test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s
running 2 tests
test v2_1s ... skipped: v2_1s: keepalived is not installed (apt-get install -y keepalived)
ok
test c ... ok
test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
a line about SKIP and "skipped" that is no test's: not counted
LOG
got=$(awk -f scripts/summary.awk "$log")
want="tests: 2 passed, 1 failed, 3 skipped"
if [ "$got" != "$want" ]; then
    echo "summary.awk: got '$got', want '$want'" >&2
    exit 1
fi
echo "summary.awk: ok ($got)"
