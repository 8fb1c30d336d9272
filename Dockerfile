# syntax=docker/dockerfile:1
# satcheld on a slim, non-root runtime image. The satchel CLI ships beside it
# so `docker exec` can drive the daemon.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p satcheld -p satchel-cli \
 && strip target/release/satcheld target/release/satchel

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/satchel --create-home satchel
COPY --from=build /src/target/release/satcheld /src/target/release/satchel /usr/local/bin/
USER 10001:10001
# The socket lives on a volume so other containers can share it.
ENV XDG_RUNTIME_DIR=/var/lib/satchel/run \
    SATCHEL_ADDR=unix:///var/lib/satchel/run/satchel/satcheld.sock
VOLUME ["/var/lib/satchel"]
ENTRYPOINT ["/usr/local/bin/satcheld"]
