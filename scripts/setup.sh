#!/usr/bin/env bash
# Installs what Cohort needs on Debian 12 / Ubuntu (idempotent: installs only what is missing).
#   oneDNN (libdnnl-dev)  the fast CPU backend; Cohort still runs without it, on the slow reference backend
#   Open MPI (libopenmpi-dev, openmpi-bin)  the CPU communicator and mpirun; single-process runs work without it
#   iproute2              `ip netns`, for the test that trains on two "hosts" in network namespaces (skipped without it)
#   chromium              headless, for the test that renders the experiments' HTML report (skipped without it)
#   numpy, Pillow         the CIFAR-10 JPEG-to-binary converter used with the shared dataset copy
#   jsonschema            the test that validates results.json against docs/results-schema.json (skipped without it)
set -euo pipefail
packages=(libdnnl-dev libopenmpi-dev openmpi-bin iproute2 chromium)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! python3 -c "import numpy, PIL" 2>/dev/null; then
    echo "setup: installing numpy and Pillow for the CIFAR-10 converter"
    python3 -m pip install -q numpy pillow || echo "setup: pip failed; the shared CIFAR-10 copy cannot be converted (synthetic data still works)"
fi
if ! python3 -c "import jsonschema" 2>/dev/null; then
    echo "setup: installing jsonschema for the results schema test"
    python3 -m pip install -q jsonschema || echo "setup: pip failed; the Python schema check will be skipped"
fi
echo "setup: done"
