//! The dashboard's last row: ingest and engine health.

use super::json::J;
use super::panels::{
    FAILED, INGEST, LOOK, Look, RATE, SITE, STACKED, quantile, rate, stat, target, timeseries,
};

/// Per minute, summed (by `by` when given).
fn per_minute(metric: &str, labels: &str, by: &str) -> String {
    rate(metric, labels, by, RATE, " * 60")
}

fn zero(look: Look) -> Look {
    Look {
        no_value: Some("0"),
        ..look
    }
}

/// Events per second of a site by reason, stacked.
fn by_reason(title: &str, description: &str, metric: &str) -> J {
    let expr = rate(metric, SITE, "reason", RATE, "");
    timeseries(
        title,
        description,
        vec![target(expr, "{{reason}}")],
        STACKED,
    )
}

pub(super) fn health() -> Vec<J> {
    let seconds = Look { unit: "s", ..LOOK };
    vec![
        timeseries(
            "Events per second",
            "Received = accepted + rejected; filtered events are accepted but kept out of the funnel.",
            ["received", "accepted", "rejected", "filtered"]
                .iter()
                .map(|kind| {
                    let metric = format!("touchstream_events_{kind}_total");
                    target(rate(&metric, SITE, "", RATE, ""), *kind)
                })
                .collect(),
            LOOK,
        ),
        by_reason(
            "Rejected events by reason",
            "Events the collector refused (see the README for each reason).",
            "touchstream_events_rejected_total",
        ),
        by_reason(
            "Filtered events by reason",
            "Accepted events kept out of the funnel: bot, consent, duplicate.",
            "touchstream_events_filtered_total",
        ),
        timeseries(
            "Ingest latency",
            "Time to answer a batch on /v1/events (over Kafka: until every event is delivered).",
            [("0.5", "p50"), ("0.99", "p99"), ("0.999", "p99.9")]
                .iter()
                .map(|(q, p)| {
                    let expr =
                        quantile(q, "touchstream_http_request_duration_seconds", INGEST, "le");
                    target(expr, *p)
                })
                .collect(),
            seconds,
        ),
        timeseries(
            "Ingest responses by status",
            "503 means the transport could not take the batch; clients retry.",
            vec![target(
                rate(
                    "touchstream_http_requests_total",
                    INGEST,
                    "status",
                    RATE,
                    "",
                ),
                "{{status}}",
            )],
            Look {
                unit: "reqps",
                ..STACKED
            },
        ),
        stat(
            "Failing ingest requests",
            "Share of /v1/events requests answered 5xx; IngestErrors warns above 1 %.",
            vec![target(
                format!(
                    "{} / {}",
                    rate("touchstream_http_requests_total", FAILED, "", RATE, ""),
                    rate("touchstream_http_requests_total", INGEST, "", RATE, "")
                ),
                "5xx",
            )],
            zero(Look {
                unit: "percentunit",
                ..LOOK
            }),
        ),
        timeseries(
            "Engine lag p99",
            "Time from the collector receiving an event to the engine applying it; EngineLagging warns above 30 s.",
            vec![target(
                quantile(
                    "0.99",
                    "touchstream_engine_event_lag_seconds",
                    "",
                    "le, instance",
                ),
                "{{instance}}",
            )],
            seconds,
        ),
        timeseries(
            "Backlog",
            "Events waiting for an engine: Kafka consumer lag per engine, or the in-memory queue of `serve`.",
            vec![
                target(
                    "sum by (instance) (touchstream_kafka_consumer_lag_messages)",
                    "{{instance}} Kafka",
                ),
                target(
                    "sum by (instance) (touchstream_transport_queue_events)",
                    "{{instance}} in-memory queue",
                ),
            ],
            LOOK,
        ),
        timeseries(
            "Open sessions in memory",
            "Sessions each engine holds; sessions forgotten because the store was full (not drop-offs), and their open carts (not abandoned); events refused because a session was full, the stored ids were spent or a client opened new sessions too fast under pressure; and the stored ids (engine.max_stored_ids).",
            vec![
                target(
                    "sum by (instance) (touchstream_engine_open_sessions)",
                    "{{instance}}",
                ),
                target(
                    per_minute("touchstream_engine_sessions_evicted_total", "", ""),
                    "evicted per minute",
                ),
                target(
                    per_minute("touchstream_engine_carts_evicted_total", "", ""),
                    "carts evicted per minute",
                ),
                target(
                    per_minute(
                        "touchstream_events_filtered_total",
                        r#"reason=~"session_limit|session_memory|session_rate""#,
                        "reason",
                    ),
                    "{{reason}} per minute",
                ),
                target(
                    "sum by (instance) (touchstream_engine_stored_ids)",
                    "{{instance}} stored ids",
                ),
            ],
            LOOK,
        ),
        timeseries(
            "Dedup memory and late events",
            "Ids of closed sessions each engine remembers (engine.max_remembered_ids), the effective dedup horizon in hours (engine.dedup_horizon, less once ids were forgotten to make room: retries older than it may count twice; DedupHorizonShort warns), and late events per minute: new events of closed sessions (offline queues flushed late), counted against them without a second visit.",
            vec![
                target(
                    "sum by (instance) (touchstream_engine_remembered_ids)",
                    "{{instance}} ids remembered",
                ),
                target(
                    "min by (instance) (touchstream_engine_dedup_horizon_seconds) / 3600",
                    "{{instance}} horizon (h)",
                ),
                target(
                    per_minute("touchstream_engine_late_events_total", "", "site"),
                    "{{site}} late per minute",
                ),
            ],
            zero(LOOK),
        ),
        timeseries(
            "Connections",
            "Connections held by each process, and those closed at once because a listener was full (limits.max_connections).",
            vec![
                target(
                    "sum by (instance) (touchstream_http_connections_open)",
                    "{{instance}} open",
                ),
                target(
                    per_minute("touchstream_http_connections_refused_total", "", ""),
                    "refused per minute",
                ),
            ],
            LOOK,
        ),
        timeseries(
            "State directory",
            "serve without Kafka: the log of accepted batches on disk, the age of the newest engine checkpoint (a restart replays the log since), batches answered 503 because the log could not take them, and failed checkpoints; StateNotDurable pages after 5 minutes of either.",
            vec![
                target(
                    "sum by (instance) (touchstream_state_log_bytes) / 1048576",
                    "{{instance}} log MiB",
                ),
                target(
                    "time() - max by (instance) (touchstream_state_checkpoint_timestamp_seconds > 0)",
                    "{{instance}} checkpoint age (s)",
                ),
                target(
                    per_minute(
                        "touchstream_transport_send_failures_total",
                        r#"reason=~"disk_full|disk""#,
                        "reason",
                    ),
                    "{{reason}} 503 per minute",
                ),
                target(
                    per_minute("touchstream_state_checkpoint_failures_total", "", ""),
                    "failed checkpoints per minute",
                ),
            ],
            zero(LOOK),
        ),
        timeseries(
            "Kafka produce latency p99",
            "A batch's produce until its last delivery report.",
            vec![target(
                quantile(
                    "0.99",
                    "touchstream_kafka_produce_seconds",
                    "",
                    "le, instance",
                ),
                "{{instance}}",
            )],
            seconds,
        ),
        timeseries(
            "Kafka delivery errors",
            "Delivery failures by kind; KafkaDeliveryFailures pages after 5 minutes of them.",
            vec![target(
                rate(
                    "touchstream_kafka_delivery_errors_total",
                    "",
                    "kind",
                    RATE,
                    "",
                ),
                "{{kind}}",
            )],
            zero(LOOK),
        ),
        timeseries(
            "Kafka partitions and commits",
            "Partitions each engine owns, and offset commits per minute (after each checkpoint).",
            vec![
                target(
                    "sum by (instance) (touchstream_kafka_assigned_partitions)",
                    "{{instance}} partitions",
                ),
                target(
                    per_minute("touchstream_kafka_commits_total", "", "result"),
                    "commits {{result}}",
                ),
            ],
            LOOK,
        ),
    ]
}
