# Sourced by the scripts that run on the GPU machine (gpu-run.sh, gpu-parity.sh,
# gpu-dp.sh, gpu-ddp-check.sh, gpu-experiments.sh), from the repository root.
#
# The static binary travels xz-compressed in .gpu/ (build-static.sh) and is
# unpacked outside the checkout, so .gpu/ stays small; python3's lzma stands
# in where xz is missing. Sets $cohort.
cohort=/tmp/cohort-gpu-run/cohort

# unpack_cohort: makes $cohort from .gpu/cohort.xz unless it is there already;
# returns 1 (saying why) when .gpu/cohort.xz is missing.
unpack_cohort() {
    [ -x "$cohort" ] && return 0
    if [ ! -f .gpu/cohort.xz ]; then
        echo "$(basename "$0"): .gpu/cohort.xz is missing: run scripts/build-static.sh on the build machine and carry .gpu" >&2
        return 1
    fi
    mkdir -p "$(dirname "$cohort")"
    xz -dc .gpu/cohort.xz > "$cohort" 2>/dev/null \
        || python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
            .gpu/cohort.xz "$cohort"
    chmod +x "$cohort"
}

# convert_cifar <folder>: CIFAR-10's binary batches from the carried JPEGs, unless they are there.
convert_cifar() {
    [ -f "$1/cifar-10-batches-bin/test_batch.bin" ] && return 0
    python3 .gpu/jpeg_to_cifar_binary.py .gpu/cifar-10-jpeg.tar.xz "$1"
}
