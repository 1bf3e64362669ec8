# Sourced by hack/image.sh and hack/bench.sh: the release build the image ships, so the benchmark
# measures what runs. Debian 12 builds it and runs it (glibc 2.36, binutils 2.40), so its
# relocations are packed (DT_RELR): the loader then writes ~1.5 MB fewer relocation entries into
# pages of the binary at start, and those pages stay shared with the file. A binary built this
# way needs glibc 2.36 or newer where it runs, which is why plain `cargo build` does not do it.
# A target directory of its own keeps these flags from rebuilding everything else.
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C link-arg=-Wl,-z,pack-relative-relocs"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/shipped"
