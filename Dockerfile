# syntax=docker/dockerfile:1
# The operator image: built with the Rust toolchain, run from a distroless base as a non-root user
# on a read-only root filesystem (the chart sets readOnlyRootFilesystem).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin aws-auth-operator \
 && strip target/release/aws-auth-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/aws-auth-operator /usr/local/bin/aws-auth-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/aws-auth-operator"]
CMD ["run"]
