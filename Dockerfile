# touchstream: one static-ish binary on a small Debian base.
#   docker build -t touchstream .
#   docker run -p 8080:8080 -p 9464:9464 -v touchstream-state:/var/lib/touchstream touchstream
#                                                                # serve, without Kafka
#   docker run -e TOUCHSTREAM_KAFKA_BROKERS=kafka:9092 touchstream engine
# Not built on the project's CI machine (it has no Docker engine); tests/deploy.rs checks this
# file against the code.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# gcc and make (both in the rust image) build rdkafka's bundled librdkafka.
COPY Cargo.toml Cargo.lock ./
# The workspace's other member (the load generator) must be present for cargo to resolve it.
COPY loadtests/Cargo.toml ./loadtests/Cargo.toml
COPY loadtests/src ./loadtests/src
COPY src ./src
COPY benches ./benches
COPY js-snippet/dist ./js-snippet/dist
COPY js-snippet/demo ./js-snippet/demo
RUN cargo build --release --locked --bin touchstream

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home touchstream \
 && install -d -o 10001 -g 10001 /var/lib/touchstream
COPY --from=build /src/target/release/touchstream /usr/local/bin/touchstream
USER 10001
# Listen on every interface inside the container; publish only the public port to the internet.
# The state directory of `serve` without Kafka: mount a volume there so it outlives the
# container.
ENV TOUCHSTREAM_LISTEN=0.0.0.0:8080 \
    TOUCHSTREAM_ADMIN_LISTEN=0.0.0.0:9464 \
    TOUCHSTREAM_STATE_DIR=/var/lib/touchstream \
    RUST_LOG=info
VOLUME /var/lib/touchstream
EXPOSE 8080 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/touchstream"]
CMD ["serve"]
