#!/usr/bin/env bash
# Runs fuzz targets one after another under libFuzzer (after `cargo fuzz build -s none`).
#   fuzz/run.sh SECONDS [RUNS] [TARGET...]
# Each target stops after SECONDS or RUNS executions (default 10 million), whichever comes first.
# The grown corpus goes to fuzz/run/corpus/<target> (not committed), crashes to
# fuzz/artifacts/<target>/, the log to fuzz/run/<target>.log.
set -uo pipefail
cd "$(dirname "$0")"
seconds=${1:?seconds per target}
runs=${2:-10000000}
shift 2 2>/dev/null || shift $#
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(sigv4_canonical sigv4_verify aws_chunked s3_xml s3_headers restjson_input query code_zip runtime_headers eventstream)
fi
bin=target/x86_64-unknown-linux-gnu/release
for t in "${targets[@]}"; do
    mkdir -p "run/corpus/$t" "artifacts/$t"
    extra=()
    # The chunk decoder's line limit (4 KiB) is only reached by inputs longer than libFuzzer's
    # default maximum length.
    [ "$t" = aws_chunked ] && extra=(-max_len=8192)
    nice -n 10 "$bin/$t" "run/corpus/$t" "corpus/$t" -runs="$runs" -max_total_time="$seconds" -timeout=10 "${extra[@]}" \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" > "run/$t.log" 2>&1
    echo "$t exit $? $(grep -E '^(Done|==)' "run/$t.log" | tail -1)"
done
