# The closing line of scripts/test.sh over a `cargo test` log:
#   tests: N passed, N failed, N skipped
# passed and failed from libtest's "test result:" lines; skipped = #[ignore]d tests plus
# the tests that printed "skipped: <test>: <why>" (a missing prerequisite outside CI),
# which libtest had counted as passed. Test with: bash scripts/summary_test.sh
/^test result:/ {
    for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed/) p += $i
        if ($(i+1) ~ /^failed/) f += $i
        if ($(i+1) ~ /^ignored/) s += $i
    }
}
# Anywhere on the line: with one test thread, libtest's "test x ... " precedes it.
/(^|[ .])skipped: [^ ]+: / { k++ }
END {
    if (k > p) k = p
    printf "tests: %d passed, %d failed, %d skipped\n", p - k, f, s + k
}
