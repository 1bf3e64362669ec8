# syntax=docker/dockerfile:1
# The operator image: built with the Rust toolchain, run from a distroless base as a non-root
# numeric user on a read-only root filesystem (the chart sets readOnlyRootFilesystem).
#
#   docker build -t aws-auth-operator .
#
# `--build-arg BINARY=prebuilt` packages a binary built elsewhere instead (the build context is then
# a directory holding `aws-auth-operator`, built for Debian 12); hack/image.sh does that where no
# Rust image can be pulled.
ARG BINARY=build

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# Packed relocations (DT_RELR): built and run on Debian 12 (see hack/shipped-build.sh).
ENV RUSTFLAGS="-C link-arg=-Wl,-z,pack-relative-relocs"
RUN cargo build --release --locked --bin aws-auth-operator \
 && mkdir /out \
 && strip -o /out/aws-auth-operator target/release/aws-auth-operator

FROM scratch AS prebuilt
COPY aws-auth-operator /out/aws-auth-operator

FROM ${BINARY} AS binary

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=binary /out/aws-auth-operator /usr/local/bin/aws-auth-operator
USER 65532:65532
EXPOSE 8080 9443
ENTRYPOINT ["/usr/local/bin/aws-auth-operator"]
CMD ["run"]
