#!/usr/bin/env bash
# The whole test suite, as CI runs it. Prints go test's summary lines; exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
start=$(date +%s)
status=0
run() { echo "==> $*"; "$@" || status=1; }
run go vet ./...
run go test -count=1 ./internal/... ./pkg/...
echo "==> storage tests against an external etcd process"
SKIFF_TEST_ETCD=external SKIFF_ETCD_BINARY="$PWD/bin/etcd" go test -count=1 ./internal/storage/... || status=1
run go test -count=1 ./test/integration/...
run go test -count=1 -timeout 20m ./test/e2e/...
echo "==> tests finished in $(( $(date +%s) - start ))s"
exit $status
