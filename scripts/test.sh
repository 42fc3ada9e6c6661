#!/usr/bin/env bash
# Runs the whole test suite in release mode (the reference backend is too slow unoptimised).
# Tests that need the real CIFAR-10 use COHORT_CIFAR10_DIR and skip when it is unset.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${COHORT_CIFAR10_DIR:-}" ]; then
    COHORT_CIFAR10_DIR="$(scripts/prepare-cifar10.sh || true)"
    export COHORT_CIFAR10_DIR
fi
swift build -c release --build-tests
# XCTest only: no Swift Testing suites here, and its "0 tests" closing line would read as an empty run.
swift test -c release --skip-build --disable-swift-testing "$@"
