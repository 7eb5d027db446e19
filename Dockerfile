# syntax=docker/dockerfile:1
#
# The Flotilla operator image: one static binary (/flotilla) on distroless, running as 65532.
#
#   docker build -t ghcr.io/flotilla-dev/flotilla:dev .
#
# NOTE: this file cannot be built on the project's own machines (they have no Docker engine); it is
# kept correct by reading, and built by .github/workflows/e2e-kind.yaml on GitHub's runners.
#
# Static musl build: kube is used with rustls + ring (no OpenSSL). ring compiles a little C, hence
# musl-tools (musl-gcc). Dependencies are compiled in their own layer (cargo-chef), which is only
# rebuilt when a Cargo.toml or Cargo.lock changes.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

# --- toolchain: Rust + musl target + cargo-chef -----------------------------------------------
FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION=0.1.77
ENV CARGO_TARGET=x86_64-unknown-linux-musl \
    CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_REGISTRIES_CRATES_IO_PROTOCOL=sparse \
    CARGO_TERM_COLOR=never
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add "${CARGO_TARGET}" \
 && cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# --- planner: reduce the workspace to its manifests (recipe.json) -----------------------------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- builder: dependencies first (cached layer), then the operator -----------------------------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Builds only the dependencies of flotilla-operator, from a skeleton of the workspace. This layer
# is reused as long as recipe.json (manifests + lockfile) is unchanged.
RUN cargo chef cook --release --target "${CARGO_TARGET}" -p flotilla-operator --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --target "${CARGO_TARGET}" -p flotilla-operator --bin flotilla \
 && cp "target/${CARGO_TARGET}/release/flotilla" /flotilla \
 && /flotilla --help >/dev/null

# --- runtime ---------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="flotilla" \
      org.opencontainers.image.description="Flotilla multi-cluster Kubernetes federation operator" \
      org.opencontainers.image.source="https://github.com/flotilla-dev/flotilla" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /flotilla /flotilla
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/flotilla"]
CMD ["run"]
