# The rtsa engine: built in a Rust image, run from a slim Debian with only the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY dataflows dataflows
COPY src src
COPY benches benches
COPY tests tests
RUN cargo build --release --bin rtsa

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/rtsa /usr/local/bin/rtsa
COPY config /etc/rtsa
ENTRYPOINT ["rtsa"]
CMD ["run", "--config", "/etc/rtsa/compose.yaml"]
