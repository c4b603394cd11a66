# agentcore-local in a container. Sessions still run as containers of the host's Docker (through
# its socket), so run the image as the README's "In a container" section says.
#
#   docker build -t agentcore-local .                      # from source (rust:1-bookworm, debian:bookworm-slim)
#   docker build -t agentcore-local --target prebuilt .    # packages target/release/agentcore-local as built
#
# Build args: BASE, the image the emulator runs on (its glibc must be at least the build's);
# BINARY, the binary the prebuilt stage packages (a path in the build context).
# The prebuilt stage comes first because Docker's legacy builder (no BuildKit) builds every stage up
# to the target: so it can package a binary with no Rust image at hand, but then the source build
# needs BuildKit (`docker buildx build`), or it too looks for the binary.

ARG BASE=debian:bookworm-slim

FROM ${BASE} AS prebuilt
ARG BINARY=target/release/agentcore-local
COPY ${BINARY} /usr/local/bin/agentcore-local
ENTRYPOINT ["agentcore-local"]
CMD ["serve", "--listen", "127.0.0.1:4599", "--data-dir", "/var/lib/agentcore-local"]

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# The release link's hot-text order (ARCHITECTURE.md, "Release builds").
COPY .cargo .cargo
COPY tools/hot-text tools/hot-text
COPY src src
COPY benches benches
COPY docker docker
RUN cargo build --release --locked --bin agentcore-local \
 && cp target/release/agentcore-local /usr/local/bin/agentcore-local

FROM ${BASE} AS release
COPY --from=build /usr/local/bin/agentcore-local /usr/local/bin/agentcore-local
ENTRYPOINT ["agentcore-local"]
CMD ["serve", "--listen", "127.0.0.1:4599", "--data-dir", "/var/lib/agentcore-local"]
