//! The state topic's format against rdkafka's mock cluster: chunks and manifests read back,
//! the newest whole checkpoint chosen, a damaged one falling back to the other slot, and a
//! manifest of a newer format refused.

use super::*;
use crate::config::Config;
use crate::engine::Engine;
use crate::engine::checkpoint::CheckpointData;
use crate::event::Event;
use crate::metrics::Metrics;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use std::sync::Arc;

/// Writes a raw record to the state topic, as a damaged or newer writer would.
fn produce(k: &KafkaConfig, partition: i32, key: &str, payload: &[u8]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .create()
        .unwrap();
    let record = BaseRecord::<str, [u8]>::to(&k.state_topic)
        .partition(partition)
        .key(key)
        .payload(payload);
    producer.send(record).map_err(|(e, _)| e).unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// A checkpoint of an engine holding `sessions` open sessions, covering up to `next`.
fn checkpoint(sessions: usize, next: i64) -> Vec<u8> {
    let config = Config::default();
    let metrics = Arc::new(Metrics::new(&config));
    let engine = Engine::new(&config, metrics.clone());
    for i in 0..sessions {
        engine.apply(&Event::new(
            "demo",
            format!("s{i}"),
            "1",
            "page_view",
            1_000,
        ));
    }
    let data = CheckpointData {
        lsn: next as u64,
        taken_at_ms: 5,
        engine: engine.snapshot(),
        figures: metrics.figures(),
    };
    data.encode()
}

fn manifest_bytes(format: u32, m: &Manifest) -> Vec<u8> {
    postcard::to_extend(m, format.to_le_bytes().to_vec()).unwrap()
}

#[test]
fn the_newest_whole_checkpoint_is_read_and_a_damaged_one_falls_back_to_the_other() {
    let cluster: MockCluster<'static, DefaultProducerContext> = MockCluster::new(1).unwrap();
    let k = KafkaConfig {
        brokers: cluster.bootstrap_servers(),
        ..KafkaConfig::default()
    };
    cluster.create_topic(&k.state_topic, 2, 1).unwrap();
    let store = StateTopic::new(&k).unwrap();
    assert!(store.read(1).unwrap().is_none());

    // Several chunks, then a small one in the other slot.
    let big = checkpoint(40_000, 10);
    let first = store.write(1, 0, 10, &big).unwrap();
    assert!(first.chunks.len() >= 2, "{} chunks", first.chunks.len());
    store.write(1, 1, 20, &checkpoint(1, 20)).unwrap();
    let (m, data) = store.read(1).unwrap().unwrap();
    let sessions = data.engine.sessions.len();
    assert_eq!((m.next, m.slot, data.lsn, sessions), (20, 1, 20, 1));
    // Another partition's, and another events topic's, are not these.
    assert!(store.read(0).unwrap().is_none());
    let other = StateTopic::new(&KafkaConfig {
        topic: "other.events".into(),
        ..k.clone()
    })
    .unwrap();
    assert!(other.read(1).unwrap().is_none());

    // Slot 1's newest manifest names a chunk that does not check (as when compaction took it,
    // or a write cut short): slot 0's checkpoint is read instead.
    let mut damaged = m.clone();
    damaged.next = 30;
    damaged.chunks[0].crc ^= 1;
    produce(
        &k,
        1,
        &store.manifest_key(1, 1),
        &manifest_bytes(1, &damaged),
    );
    let (m, data) = store.read(1).unwrap().unwrap();
    assert_eq!((m.next, m.slot), (10, 0));
    assert_eq!(data.encode(), big);

    // Chunks that check but a checkpoint that does not decode (a bug, not bit rot): the
    // other slot again.
    let mut garbage = crate::engine::checkpoint::FORMAT.to_le_bytes().to_vec();
    garbage.extend([0xff; 9]);
    store.write(1, 1, 40, &garbage).unwrap();
    let (m, _) = store.read(1).unwrap().unwrap();
    assert_eq!((m.next, m.slot), (10, 0));

    // Both damaged: an error, never "no checkpoint" (which would start from zero).
    let mut also = first.clone();
    also.chunks[1].len += 1;
    produce(&k, 1, &store.manifest_key(1, 0), &manifest_bytes(1, &also));
    let err = store.read(1).unwrap_err();
    assert!(
        matches!(err, StoreError::Broken { partition: 1, .. }),
        "{err}"
    );

    // A manifest of a newer format: refused, with what to do.
    produce(&k, 1, &store.manifest_key(1, 0), &manifest_bytes(9, &first));
    let err = store.read(1).unwrap_err();
    assert!(matches!(err, StoreError::Format(1, 9)), "{err}");
    assert!(
        err.to_string().contains("run the release that wrote it"),
        "{err}"
    );
}
