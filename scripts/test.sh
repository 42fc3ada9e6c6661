#!/usr/bin/env bash
# Runs the whole test suite in release mode (the reference backend is too slow unoptimised).
# Tests that need the real CIFAR-10 use COHORT_CIFAR10_DIR and skip when it is unset.
# After a protocol gains a requirement (Backend, Communicator), build clean (rm -rf .build/release):
# incremental builds here have kept modules compiled against the old witness table, and the
# binary then crashed or called the wrong method (2026-11-28; CI's fresh clone is unaffected).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${COHORT_CIFAR10_DIR:-}" ]; then
    COHORT_CIFAR10_DIR="$(scripts/prepare-cifar10.sh || true)"
    export COHORT_CIFAR10_DIR
fi
swift build -c release --build-tests
# XCTest only: no Swift Testing suites here, and its "0 tests" closing line would read as an empty run.
swift test -c release --skip-build --disable-swift-testing "$@"
