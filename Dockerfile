# sellerdesk: multi-stage build. The build stage needs only crates.io; the runtime image is
# Debian slim with the binary, CA certificates and curl (for HEALTHCHECK), run as a non-root user.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so that code changes do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/sellerdesk --create-home sellerdesk
COPY --from=build /src/target/release/sellerdesk /usr/local/bin/sellerdesk
USER sellerdesk
WORKDIR /var/lib/sellerdesk
ENV HOST=0.0.0.0 \
    PORT=8000 \
    LOG_FORMAT=json \
    DATABASE_URL=sqlite:///var/lib/sellerdesk/sellerdesk.db
EXPOSE 8000
VOLUME ["/var/lib/sellerdesk"]
# Plain HTTP, or HTTPS with the container's own certificate (-k: it names the public host).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT}/health" || curl -fsSk "https://127.0.0.1:${PORT}/health" || exit 1
ENTRYPOINT ["/usr/local/bin/sellerdesk"]
CMD ["serve"]
