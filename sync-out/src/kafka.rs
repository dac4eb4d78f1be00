//! The Kafka sink: every event to `ledger.transactions.v1`, every balance change to
//! `wallet.balance-updated.v1`, keyed by account so that each account's records share a
//! partition and stay in order. CloudEvents binary mode: the JSON document is the record's
//! value, the attributes are `ce_*` headers, `ce_id` is the event's sequence number.
//!
//! Kafka keeps no position we could write with the data, so delivery is at least once: the
//! exporter resumes at the replicated cursor and consumers drop what they already saw by
//! `ce_source` and `ce_id`. The producer is idempotent with `acks=all`; a batch counts as
//! delivered only once every record of it is acknowledged, and a retry skips the events
//! whose records were all acknowledged before — the contiguous prefix. ADR 0018.

use std::time::Duration;

use futures_util::future::join_all;
use ledger_sm::types::{EventSeq, SinkId};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::payload::{BalancesPayload, Payload};
use crate::sink::{Sink, SinkError};

/// Every event, once per account it concerns (a transfer: under its debit and its credit
/// account), keyed by that account.
pub const TRANSACTIONS_TOPIC: &str = "ledger.transactions.v1";
/// One record per account whose balances an event changed, keyed by that account.
pub const BALANCES_TOPIC: &str = "wallet.balance-updated.v1";

/// The producer settings that make delivery safe; configuration may not change them.
const FIXED: [(&str, &str); 4] = [
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("max.in.flight.requests.per.connection", "5"),
    ("retries", "2147483647"),
];

#[derive(Clone)]
pub struct KafkaConfig {
    /// `host:port` of the bootstrap brokers, comma-separated.
    pub brokers: String,
    /// librdkafka properties for the cluster: `security.protocol`, `sasl.*`, `ssl.*`,
    /// `compression.type`, `linger.ms`, ... (not those that make delivery safe).
    pub properties: Vec<(String, String)>,
    /// The CloudEvents source of the ledger's events (`ce_source`); a balance record's source
    /// is `{source}/accounts/{account}`.
    pub source: String,
    /// Partitions and replicas of the topics the sink creates when they do not exist.
    pub partitions: i32,
    pub replication: i32,
    /// How long a record may wait for its acknowledgement before the delivery fails and is
    /// retried (`message.timeout.ms`).
    pub delivery_timeout: Duration,
}

/// Property values stay out (a SASL password is one).
impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.properties.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("properties", &keys)
            .field("source", &self.source)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("delivery_timeout", &self.delivery_timeout)
            .finish()
    }
}

impl KafkaConfig {
    #[must_use]
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
            properties: Vec::new(),
            source: "/localplus-ledger".to_owned(),
            partitions: 12,
            replication: 3,
            delivery_timeout: Duration::from_secs(10),
        }
    }

    /// The producer's librdkafka configuration.
    ///
    /// # Errors
    /// A property would weaken delivery, or a value is out of range.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        if self.brokers.trim().is_empty() {
            return Err("kafka: no brokers".into());
        }
        if self.partitions < 1 || self.replication < 1 {
            return Err("kafka: partitions and replication must be at least 1".into());
        }
        let timeout = self.delivery_timeout.as_millis();
        if !(1_000..=3_600_000).contains(&timeout) {
            return Err("kafka: the delivery timeout must lie between 1 s and 1 h".into());
        }
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config.set("linger.ms", "5");
        for (key, value) in &self.properties {
            if key == "bootstrap.servers" || FIXED.iter().any(|(fixed, _)| fixed == key) {
                return Err(format!("kafka: property {key} is set by the sink"));
            }
            config.set(key, value);
        }
        for (key, value) in FIXED {
            config.set(key, value);
        }
        config.set("message.timeout.ms", timeout.to_string());
        Ok(config)
    }
}

/// A `wallet.balance-updated.v1` document: an account's balances right after an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceUpdated {
    /// The event's sequence number (`ce_id`).
    pub seq: String,
    /// The event's type (`transfer_posted`, `hold_created`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: String,
    pub account: String,
    pub asset: u32,
    /// Whether the transfer debited or credited the account.
    pub side: String,
    pub transfer_id: String,
    pub code: String,
    pub amount: String,
    pub balances: BalancesPayload,
}

/// One Kafka record, owned until it is handed to the producer.
#[derive(Debug)]
struct Record {
    topic: &'static str,
    key: String,
    value: Vec<u8>,
    headers: OwnedHeaders,
    timestamp_ms: i64,
}

/// The records an event makes, in the order they are sent.
fn records(payload: &Payload, source: &str) -> Result<Vec<Record>, serde_json::Error> {
    let nanos: u64 = payload.timestamp.parse().unwrap_or(0);
    let timestamp_ms = i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX);
    let time = rfc3339(nanos);
    let event_type = format!("localplus.ledger.{}.v1", payload.kind);
    let value = serde_json::to_vec(payload)?;
    let mut keys: Vec<String> = payload.accounts().into_iter().map(str::to_owned).collect();
    keys.dedup();
    if keys.is_empty() {
        // Asset events concern no account: they go under the asset.
        keys.push(format!("asset-{}", payload.asset.unwrap_or(0)));
    }
    let mut out = Vec::with_capacity(keys.len() * 2);
    for key in &keys {
        let headers = headers(&payload.seq, source, &event_type, &time, key);
        out.push(Record {
            topic: TRANSACTIONS_TOPIC,
            key: key.clone(),
            value: value.clone(),
            headers,
            timestamp_ms,
        });
    }
    let Some(transfer) = &payload.transfer else { return Ok(out) };
    let sides = [
        ("debit", &transfer.debit_account, &transfer.debit_balances),
        ("credit", &transfer.credit_account, &transfer.credit_balances),
    ];
    for (side, account, balances) in sides {
        let document = BalanceUpdated {
            seq: payload.seq.clone(),
            kind: payload.kind.clone(),
            timestamp: payload.timestamp.clone(),
            account: account.clone(),
            asset: transfer.asset,
            side: side.to_owned(),
            transfer_id: transfer.id.clone(),
            code: transfer.code.clone(),
            amount: transfer.amount.clone(),
            balances: balances.clone(),
        };
        let source = format!("{source}/accounts/{account}");
        let event_type = "localplus.wallet.balance_updated.v1";
        out.push(Record {
            topic: BALANCES_TOPIC,
            key: account.clone(),
            value: serde_json::to_vec(&document)?,
            headers: headers(&payload.seq, &source, event_type, &time, account),
            timestamp_ms,
        });
    }
    Ok(out)
}

fn headers(id: &str, source: &str, event_type: &str, time: &str, subject: &str) -> OwnedHeaders {
    [
        ("ce_specversion", "1.0"),
        ("ce_id", id),
        ("ce_source", source),
        ("ce_type", event_type),
        ("ce_time", time),
        ("ce_subject", subject),
        ("content-type", "application/json"),
    ]
    .into_iter()
    .fold(OwnedHeaders::new_with_capacity(7), |headers, (key, value)| {
        headers.insert(Header { key, value: Some(value) })
    })
}

/// Nanoseconds since the UNIX epoch as an RFC 3339 UTC time, to the nanosecond.
#[must_use]
pub fn rfc3339(nanos: u64) -> String {
    let seconds = nanos / 1_000_000_000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
    let of_day = seconds % 86_400;
    // Days to a proleptic Gregorian date (eras of 400 years, March-based years).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        nanos % 1_000_000_000
    )
}

pub struct KafkaSink {
    id: SinkId,
    config: KafkaConfig,
    client: ClientConfig,
    producer: Option<FutureProducer>,
    topics_ready: bool,
    /// Every event below it is acknowledged by the brokers (a retry skips them).
    acked_below: u64,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("id", &self.id)
            .field("brokers", &self.config.brokers)
            .field("acked_below", &self.acked_below)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// A sink that connects on first use.
    ///
    /// # Errors
    /// The configuration cannot be used (see [`KafkaConfig::client_config`]).
    pub fn new(id: SinkId, config: KafkaConfig) -> Result<Self, String> {
        let client = config.client_config()?;
        Ok(Self { id, config, client, producer: None, topics_ready: false, acked_below: 0 })
    }

    fn producer(&mut self) -> Result<&FutureProducer, SinkError> {
        if self.producer.is_none() {
            let producer = self.client.create().map_err(kafka)?;
            self.producer = Some(producer);
        }
        Ok(self.producer.as_ref().expect("just made"))
    }

    /// Creates the topics that do not exist yet.
    async fn ensure_topics(&mut self) -> Result<(), SinkError> {
        let admin: AdminClient<DefaultClientContext> = self.client.create().map_err(kafka)?;
        let min_insync = (self.config.replication.min(3) - 1).max(1).to_string();
        let topics: Vec<NewTopic<'_>> = [TRANSACTIONS_TOPIC, BALANCES_TOPIC]
            .into_iter()
            .map(|name| {
                let topic = NewTopic::new(
                    name,
                    self.config.partitions,
                    TopicReplication::Fixed(self.config.replication),
                );
                if self.config.replication > 1 {
                    topic.set("min.insync.replicas", &min_insync)
                } else {
                    topic
                }
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin.create_topics(&topics, &options).await.map_err(kafka)?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(SinkError::Unavailable(format!(
                        "kafka: creating topic {topic}: {code}"
                    )))
                }
            }
        }
        self.topics_ready = true;
        Ok(())
    }

    /// After a failed delivery the producer's sequence numbers are in doubt (a broker that
    /// restarted without its state may take a continuing sequence for duplicates and drop
    /// them while acknowledging): the next attempt starts a new producer, with a new id.
    fn replace_producer(&mut self) {
        let fatal = self.producer.take().and_then(|p| p.client().fatal_error());
        if let Some((code, why)) = fatal {
            tracing::warn!(sink = self.id.name(), %code, why, "kafka producer failed fatally");
        }
    }
}

fn kafka(error: KafkaError) -> SinkError {
    SinkError::Unavailable(format!("kafka: {error}"))
}

impl Sink for KafkaSink {
    fn id(&self) -> SinkId {
        self.id
    }

    async fn position(&mut self) -> Result<Option<EventSeq>, SinkError> {
        if !self.topics_ready {
            self.ensure_topics().await?;
        }
        Ok(None)
    }

    /// A record handed to the producer is written or failed within the delivery timeout;
    /// half as much again covers a produce request the broker still holds at that moment.
    fn settle(&self) -> Option<Duration> {
        Some(self.config.delivery_timeout.saturating_mul(3) / 2)
    }

    async fn deliver(&mut self, _term: u64, events: &[Payload]) -> Result<(), SinkError> {
        let Some(last) = events.last().map(Payload::seq) else { return Ok(()) };
        if !self.topics_ready {
            self.ensure_topics().await?;
        }
        let start = self.acked_below;
        // Encoded before anything is sent: an error then leaves nothing in flight.
        let mut batch = Vec::with_capacity(events.len());
        for payload in events.iter().filter(|p| p.seq() >= start) {
            let records = records(payload, &self.config.source)
                .map_err(|e| SinkError::Unavailable(format!("kafka: encoding: {e}")))?;
            batch.push((payload.seq(), records));
        }
        let producer = self.producer()?;
        let mut sent: Vec<(u64, DeliveryFuture)> = Vec::new();
        // The first event not handed to the producer, and why.
        let mut unsent: Option<(u64, String)> = None;
        'events: for (seq, records) in batch {
            for Record { topic, key, value, headers, timestamp_ms } in records {
                let future = FutureRecord::to(topic)
                    .key(key.as_bytes())
                    .payload(&value)
                    .headers(headers)
                    .timestamp(timestamp_ms);
                match producer.send_result(future) {
                    Ok(delivery) => sent.push((seq, delivery)),
                    Err((error, _)) => {
                        unsent = Some((seq, format!("kafka: {error}")));
                        break 'events;
                    }
                }
            }
        }
        // Every record handed over is awaited, so that none is still in flight when this
        // returns; the events below the first failure are delivered.
        let outcomes = join_all(sent.into_iter().map(|(seq, delivery)| async move {
            match delivery.await {
                Ok(Ok(_)) => (seq, None),
                Ok(Err((error, _))) => (seq, Some(format!("kafka: {error}"))),
                Err(_) => (seq, Some("kafka: the producer dropped a record".to_owned())),
            }
        }))
        .await;
        let failed = outcomes
            .into_iter()
            .filter_map(|(seq, error)| error.map(|error| (seq, error)))
            .chain(unsent)
            .min_by_key(|(seq, _)| *seq);
        match failed {
            None => {
                self.acked_below = self.acked_below.max(last + 1);
                Ok(())
            }
            Some((seq, error)) => {
                self.acked_below = self.acked_below.max(seq);
                self.replace_producer();
                // A broker that lost its topics (or an operator who deleted one) gets them back.
                self.topics_ready = false;
                Err(SinkError::Unavailable(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(rfc3339(1_795_651_199_500_000_000), "2026-11-25T23:59:59.500000000Z");
        assert_eq!(rfc3339(4_107_542_400_000_000_000), "2100-03-01T00:00:00.000000000Z");
    }

    #[test]
    fn delivery_settings_cannot_be_weakened() {
        let mut config = KafkaConfig::new("127.0.0.1:9092");
        assert!(config.client_config().is_ok());
        config.properties = vec![("acks".into(), "1".into())];
        assert!(config.client_config().unwrap_err().contains("acks"));
        config.properties = vec![("enable.idempotence".into(), "false".into())];
        assert!(config.client_config().is_err());
        config.properties = vec![("compression.type".into(), "lz4".into())];
        assert!(config.client_config().is_ok());
        config.properties = vec![("sasl.password".into(), "hunter2".into())];
        assert!(!format!("{config:?}").contains("hunter2"));
        config.delivery_timeout = Duration::from_millis(10);
        assert!(config.client_config().is_err());
        assert!(KafkaConfig::new(" ").client_config().is_err());
    }
}
