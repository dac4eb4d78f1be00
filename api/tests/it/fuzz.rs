//! Random and malformed input at a running 3-node cluster, over both protocols: bytes and
//! JSON shaped like each REST route's body (from the OpenAPI document's schemas, with wrong
//! types, out-of-range numbers and unknown fields mixed in), odd ids and query strings,
//! protobuf-ish gRPC frames at every Ledger method, random headers, and raw bytes in place of
//! HTTP. Goal: no answer is a 5xx or a gRPC INTERNAL/UNKNOWN raised by our code, every REST
//! error is a problem, and afterwards every node answers, all agree on the state hash, and the
//! wallet no input could legally touch is unchanged.
//!
//! Method: proptest, a bounded number of cases per kind of input, run against one cluster
//! (block_on per case). The seed is fixed so that a run is repeatable; set
//! `PROPTEST_RNG_SEED` to explore others and `PROPTEST_CASES` for more cases of each kind. A
//! failure prints the smallest input found; `FUZZ_TALLY` prints every outcome.
//!
//! Tolerated: INTERNAL for a request gRPC cannot parse (what gRPC prescribes, raised by tonic
//! before our code: `PROTOCOL_INTERNAL`).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use api::convert::{pb_u128, u128_of};
use api::proto::ledger as pb;
use api::rest::ROUTES;
use http::{HeaderMap, HeaderName, HeaderValue};
use hyper::body::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use tonic::Code;

use crate::harness::{form, ledger, setup_ledger, status, transfers, Cluster, WAIT, WALLET};
use crate::http::{grpc_frame, raw, Http, Reply};

/// The setup's earn into the wallet: an id no generator produces, so nothing can refund it.
const EARN_ID: u128 = 7_777_777_777_777_777_777_777;
const SEED: u64 = 0x00c0_ffee;

/// Every kind of input in turn at a settled cluster, then the agreement check (module doc).
/// A plain test with its own runtime: proptest's runner is synchronous.
#[test]
fn random_input_never_breaks_a_node() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut cluster = Cluster::new();
    let before = runtime.block_on(async {
        let leader = form(&mut cluster, &[1, 2, 3]).await;
        setup_ledger(&cluster, leader).await;
        let earned = transfers(&cluster, leader, vec![crate::harness::earn(EARN_ID, WALLET, 100)]);
        assert_eq!(earned.await[0].result, "ok");
        wallet(&cluster, leader).await
    });
    let nodes: Vec<Http> = (1..=3).map(|id| Http::to(&cluster, id)).collect();
    let block = |future: std::pin::Pin<Box<dyn std::future::Future<Output = Checked> + '_>>| {
        runtime.block_on(future)
    };

    run("REST bodies as bytes", 96, (post_route(), node(), body_bytes()), |(r, n, body)| {
        block(Box::pin(post(&nodes[n], r, header_json(), body)))
    });
    run(
        "REST bodies as JSON",
        192,
        (post_route(), node()).prop_flat_map(json_case),
        |(r, n, v)| block(Box::pin(post(&nodes[n], r, header_json(), Bytes::from(v.to_string())))),
    );
    run("REST paths and queries", 96, (get_route(), node(), id_segment(), query()), |case| {
        let (r, n, id, query) = case;
        let path = format!("{}?{query}", ROUTES[r].path.replace("{id}", &id));
        block(Box::pin(get(&nodes[n], path, HeaderMap::new())))
    });
    run("gRPC frames", 256, (grpc_case(), node()), |((m, body), n)| {
        block(Box::pin(grpc(&nodes[n], m, HeaderMap::new(), body)))
    });
    run("headers", 128, (0..ROUTES.len() + 8, node(), headers()), |(target, n, headers)| {
        block(Box::pin(with_headers(&nodes[n], target, headers)))
    });
    run("raw bytes for HTTP", 64, (node(), raw_request()), |(n, bytes)| {
        block(Box::pin(raw_answer(&nodes[n], bytes)))
    });

    runtime.block_on(async {
        let statuses = agreement(&cluster).await;
        for id in 1..=3 {
            assert_eq!(wallet(&cluster, id).await, before, "node {id}: {statuses:?}");
        }
        cluster.stop_all().await;
    });
}

type Checked = Result<(), TestCaseError>;

/// Runs `test` on `cases` values of `strategy` with the fixed seed (or the environment's).
fn run<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(cases);
    let mut config = Config::with_cases(cases);
    config.failure_persistence = None;
    config.max_shrink_iters = 512;
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    if let Err(error) = TestRunner::new(config).run(&strategy, test) {
        panic!("{name}: {error}");
    }
}

/// (credits posted, debits posted, debits pending) of the wallet, read linearizably.
async fn wallet(cluster: &Cluster, id: u64) -> (u128, u128, u128) {
    let request =
        pb::LookupAccountsRequest { ids: vec![pb_u128(WALLET).unwrap()], consistency: None };
    let reply = ledger(cluster, id).await.lookup_accounts(request).await.unwrap().into_inner();
    let b = reply.accounts[0].balances.unwrap();
    let get = |v: Option<pb::U128>| u128_of(v.as_ref());
    (get(b.credits_posted), get(b.debits_posted), get(b.debits_pending))
}

/// Waits until all nodes answer with the same applied index, the leader's last; then their
/// state hashes must be equal.
async fn agreement(cluster: &Cluster) -> Vec<pb::StatusReply> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut statuses = Vec::new();
        for id in 1..=3 {
            statuses.push(status(cluster, id).await.expect("every node still answers"));
        }
        let leader = statuses.iter().find(|s| s.role == "leader").map(|s| s.last_log_index);
        if leader.is_some() && statuses.iter().all(|s| Some(s.applied) == leader) {
            let hashes: Vec<&str> = statuses.iter().map(|s| s.state_hash.as_str()).collect();
            assert!(hashes.windows(2).all(|w| w[0] == w[1]), "diverged: {statuses:?}");
            return statuses;
        }
        assert!(Instant::now() < deadline, "never settled: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// What is sent, and what every answer must be.

fn header_json() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}

async fn post(http: &Http, route: usize, headers: HeaderMap, body: Bytes) -> Checked {
    check_rest(&answered(http.send("POST", ROUTES[route].path, headers, body).await)?)
}

async fn get(http: &Http, path: String, headers: HeaderMap) -> Checked {
    check_rest(&answered(http.send("GET", &path, headers, "").await)?)
}

/// With `FUZZ_TALLY` set, prints each outcome, to see what the generators reach:
/// `FUZZ_TALLY=1 cargo test ... -- fuzz --nocapture 2>&1 | grep TALLY | sort | uniq -c`.
fn tally(kind: &str, outcome: impl FnOnce() -> String) {
    if std::env::var_os("FUZZ_TALLY").is_some() {
        eprintln!("TALLY {kind} {}", outcome());
    }
}

/// Every request gets an answer (an error response, not a dropped connection).
fn answered(reply: Result<Reply, String>) -> Result<Reply, TestCaseError> {
    reply.map_err(|e| TestCaseError::fail(format!("no answer: {e}")))
}

/// No 5xx (not even 503: the cluster is settled), and every error is a problem.
fn check_rest(reply: &Reply) -> Checked {
    tally("REST", || format!("{} {}", reply.status, reply.problem_shape().unwrap_or_default()));
    prop_assert!(reply.status.as_u16() < 500, "{}: {}", reply.status, reply.text());
    if reply.status.as_u16() >= 400 {
        reply.problem_shape().map_err(|e| TestCaseError::fail(format!("{}: {e}", reply.status)))?;
    }
    Ok(())
}

/// The INTERNAL statuses gRPC itself prescribes for a request it cannot parse (see gRPC's
/// statuscodes.md: "Error parsing request proto", a compressed flag without an encoding):
/// raised by tonic before our code runs. Any other INTERNAL, and every UNKNOWN, is ours.
const PROTOCOL_INTERNAL: [&str; 4] = [
    "failed to decode Protobuf message",
    "protocol error:",
    "Unexpected EOF decoding stream",
    "Missing request message",
];

async fn grpc(http: &Http, method: usize, headers: HeaderMap, body: Bytes) -> Checked {
    let path = ledger_methods()[method];
    check_grpc(&answered(http.grpc(path, headers, body).await)?)
}

fn check_grpc(reply: &Reply) -> Checked {
    prop_assert!(reply.status.as_u16() < 500, "HTTP {}: {:?}", reply.status, reply.headers);
    tally("gRPC", || {
        format!(
            "{:?}",
            reply.grpc_status().map(|(c, m)| (c, m.chars().take(40).collect::<String>()))
        )
    });
    let Some((code, message)) = reply.grpc_status() else {
        // A non-gRPC answer to a request whose headers were not gRPC's: judged as REST.
        return check_rest(reply);
    };
    prop_assert!(code != Code::Unknown, "UNKNOWN: {message}");
    let protocol = PROTOCOL_INTERNAL.iter().any(|p| message.starts_with(p));
    prop_assert!(code != Code::Internal || protocol, "INTERNAL: {message}");
    prop_assert!(code != Code::Unavailable, "UNAVAILABLE in a settled cluster: {message}");
    Ok(())
}

async fn with_headers(http: &Http, target: usize, extra: Vec<(String, Vec<u8>)>) -> Checked {
    let mut headers = HeaderMap::new();
    for (name, value) in extra {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(&value).unwrap(),
        );
    }
    if let Some(route) = ROUTES.get(target) {
        let path = route.path.replace("{id}", "55555");
        if route.method == "GET" {
            return get(http, path, headers).await;
        }
        if !headers.contains_key("content-type") {
            headers.insert("content-type", HeaderValue::from_static("application/json"));
        }
        return post(http, target, headers, Bytes::from(seed_body(route.path).to_string())).await;
    }
    let method = (target - ROUTES.len()) % descriptors().methods.len();
    grpc(http, method, headers, Bytes::from(grpc_frame(&[]))).await
}

async fn raw_answer(http: &Http, bytes: Vec<u8>) -> Checked {
    let answer = raw(http.address(), &bytes).await;
    let text = String::from_utf8_lossy(&answer);
    tally("raw", || format!("{:?}", text.lines().next()));
    // Nothing (the server closed), or a status line that is not 5xx.
    prop_assert!(answer.is_empty() || text.starts_with("HTTP/1.1 "), "{text}");
    prop_assert!(!text.starts_with("HTTP/1.1 5"), "{text}");
    Ok(())
}

// Generators.

fn node() -> impl Strategy<Value = usize> {
    0..3_usize
}

fn routes_where(method: &str) -> Vec<usize> {
    ROUTES.iter().enumerate().filter(|(_, r)| r.method == method).map(|(i, _)| i).collect()
}

fn post_route() -> impl Strategy<Value = usize> {
    prop::sample::select(routes_where("POST"))
}

fn get_route() -> impl Strategy<Value = usize> {
    prop::sample::select(routes_where("GET"))
}

/// A valid-looking body per POST route, touching only accounts that do not exist, so that no
/// mutation of it can move the wallet's points.
fn seed_body(path: &str) -> Value {
    let transfer = json!({"id": "55555", "debit_account": "55556", "credit_account": "55557",
                          "amount": "5", "asset": 1, "code": "EARN"});
    match path {
        "/v1/assets" => json!({"assets": [{"id": 55, "code": "FZ", "scale": 2}]}),
        "/v1/accounts" => {
            json!({"accounts": [{"id": "55556", "asset": 1, "kind": "CUSTOMER_WALLET"}]})
        }
        "/v1/transfers" => json!({"transfers": [transfer]}),
        "/v1/account-changes" => json!({"changes": [{"change": {"freeze": "55556"}}]}),
        "/v1/gift-cards" => {
            json!({"cards": [{"account": {"id": "55558", "asset": 1, "kind": "GIFT_CARD"},
                                              "code": "FZ-1", "load_amount": "3"}]})
        }
        "/v1/erasures" => json!({"accounts": ["55556"]}),
        "/v1/accounts/lookup" => json!({"ids": ["55556"]}),
        "/v1/earn" => {
            json!({"id": "55559", "account": "55556", "from": "55557", "amount": "1", "asset": 1})
        }
        "/v1/burn" | "/v1/holds" => {
            json!({"id": "55560", "account": "55556", "to": "55557", "amount": "1"})
        }
        "/v1/captures" | "/v1/voids" => json!({"id": "55561", "hold": "55560"}),
        "/v1/refunds" => json!({"id": "55562", "transfer": "55559", "amount": "1"}),
        "/v1/transfers/lookup" => json!({"ids": ["55555"]}),
        "/v1/gift-cards/lookup" => json!({"code": "FZ-1"}),
        other => panic!("no seed body for {other}"),
    }
}

/// Random bytes, or a seed body with bytes replaced, inserted or cut off.
fn body_bytes() -> impl Strategy<Value = Bytes> {
    let seeds: Vec<Vec<u8>> = routes_where("POST")
        .into_iter()
        .map(|r| seed_body(ROUTES[r].path).to_string().into_bytes())
        .collect();
    let mutated = (
        prop::sample::select(seeds),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3_u8), 1..4),
    )
        .prop_map(|(mut body, edits)| {
            for (at, byte, how) in edits {
                let i = at.index(body.len());
                match how {
                    0 => body[i] = byte,
                    1 => body.insert(i, byte),
                    _ => body.truncate(i),
                }
                if body.is_empty() {
                    break;
                }
            }
            body
        });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..128), mutated].prop_map(Bytes::from)
}

/// A value shaped by `route`'s request schema.
fn json_case((route, node): (usize, usize)) -> impl Strategy<Value = (usize, usize, Value)> {
    let name = ROUTES[route].request.unwrap();
    schema_value(&json!({"$ref": format!("#/components/schemas/{name}")}), 0)
        .prop_map(move |value| (route, node, value))
}

fn schemas() -> &'static Map<String, Value> {
    api::openapi::document()["components"]["schemas"].as_object().unwrap()
}

/// A JSON value for `schema`: mostly of its shape, sometimes anything at all.
fn schema_value(schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(target) => &schemas()[target.rsplit('/').next().unwrap()],
        None => schema,
    };
    let shaped = match schema["type"].as_str() {
        Some("object") if depth < 3 => object_value(schema, depth),
        Some("array") if depth < 3 => {
            prop::collection::vec(schema_value(&schema["items"], depth + 1), 0..4)
                .prop_map(Value::Array)
                .boxed()
        }
        Some("string") if schema.get("enum").is_some() => {
            let names: Vec<Value> = schema["enum"].as_array().unwrap().clone();
            prop_oneof![4 => prop::sample::select(names), 1 => "[A-Z_]{0,12}".prop_map(Value::from)]
                .boxed()
        }
        Some("string") if schema.get("pattern").is_some() => number_text().boxed(),
        Some("string") if schema.get("contentEncoding").is_some() => {
            "[A-Za-z0-9+/=]{0,12}".prop_map(Value::from).boxed()
        }
        Some("string") => "\\PC{0,16}".prop_map(Value::from).boxed(),
        Some("integer") => integer().boxed(),
        Some("boolean") => any::<bool>().prop_map(Value::from).boxed(),
        _ => any_value().boxed(),
    };
    prop_oneof![9 => shaped, 1 => any_value()].boxed()
}

/// Some of the schema's properties (exactly one for a oneof), now and then an unknown one.
fn object_value(schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    let properties: Vec<(String, BoxedStrategy<Value>)> = schema["properties"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, property)| (name.clone(), schema_value(property, depth + 1)))
        .collect();
    if schema["maxProperties"] == 1 {
        let choices: Vec<BoxedStrategy<Value>> = properties
            .into_iter()
            .map(|(name, value)| {
                value.prop_map(move |v| Value::Object(Map::from_iter([(name.clone(), v)]))).boxed()
            })
            .collect();
        return proptest::strategy::Union::new(choices).boxed();
    }
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = properties
        .into_iter()
        .map(|(name, value)| {
            prop::option::weighted(0.6, value.prop_map(move |v| (name.clone(), v))).boxed()
        })
        .collect();
    let unknown = prop::option::weighted(0.05, ("[a-z_]{1,8}", any_value()));
    (fields, unknown)
        .prop_map(|(fields, unknown)| {
            let mut object: Map<String, Value> = fields.into_iter().flatten().collect();
            object.extend(unknown);
            Value::Object(object)
        })
        .boxed()
}

/// A 64- or 128-bit integer as the API takes it: a decimal string or a number, in range or
/// not. Never the wallet's id: no generated request may legally touch the wallet.
fn number_text() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        4 => "[0-9]{1,3}",
        2 => "[0-9]{4,40}",
        1 => Just(u128::MAX.to_string()),
        1 => Just("340282366920938463463374607431768211456".to_owned()),
        1 => Just(u64::MAX.to_string()),
        1 => "-?[0-9]{0,3}[.e]?[0-9]{0,2}",
    ]
    .prop_map(|text| if text == WALLET.to_string() { "201".to_owned() } else { text });
    prop_oneof![4 => text.prop_map(Value::from), 1 => any::<u64>().prop_filter("not the wallet", |n| u128::from(*n) != WALLET).prop_map(Value::from)]
}

fn integer() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0..=u32::MAX).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!(4_294_967_296_u64)),
        1 => Just(json!(1.5)),
        1 => Just(json!(-1)),
    ]
}

/// Any small JSON value.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `/v1/...{id}` segments: numbers in and out of range, percent-escapes (invalid UTF-8 too).
fn id_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,40}",
        "(%[0-9A-F]{2}){1,4}",
        "[A-Za-z0-9._~-]{0,12}",
        Just("0".to_owned()),
        Just("-1".to_owned()),
    ]
}

/// Query strings: known and unknown parameters with odd values.
fn query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "limit",
            "timestamp_min",
            "timestamp_max",
            "descending",
            "max_staleness_ms",
        ])
        .prop_map(str::to_owned),
        "[a-z_%0-9A-F]{1,10}",
    ];
    let value = prop_oneof!["[0-9]{0,25}", "(%[0-9A-F]{2}){0,3}", "true|false|yes|-1|1e3"];
    prop::collection::vec((name, value), 0..4).prop_map(|pairs| {
        pairs.into_iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&")
    })
}

/// The Ledger service's methods (path, input message), and every message by full name, from
/// the descriptors: new methods and fields are fuzzed without a change here.
struct Descriptors {
    methods: Vec<(String, String)>,
    messages: std::collections::HashMap<String, prost_types::DescriptorProto>,
}

fn descriptors() -> &'static Descriptors {
    static DESCRIPTORS: OnceLock<Descriptors> = OnceLock::new();
    DESCRIPTORS.get_or_init(|| {
        let set =
            <prost_types::FileDescriptorSet as prost::Message>::decode(api::proto::DESCRIPTOR_SET)
                .unwrap();
        let mut methods = Vec::new();
        let mut messages = std::collections::HashMap::new();
        for file in &set.file {
            for message in &file.message_type {
                messages.insert(format!(".{}.{}", file.package(), message.name()), message.clone());
            }
            for service in file.service.iter().filter(|s| s.name() == "Ledger") {
                for method in &service.method {
                    let path = format!("/{}.Ledger/{}", file.package(), method.name());
                    methods.push((path, method.input_type().to_owned()));
                }
            }
        }
        Descriptors { methods, messages }
    })
}

fn ledger_methods() -> Vec<&'static str> {
    descriptors().methods.iter().map(|(path, _)| path.as_str()).collect()
}

fn ledger_method() -> impl Strategy<Value = usize> {
    0..descriptors().methods.len()
}

/// The encoding of a message of type `name` (a full name): each field present or not, with
/// the right wire type and a random value (in range or not: enums past their last value,
/// strings that are not UTF-8 now and then). Never the wallet's id.
fn message_bytes(name: &str, depth: u32) -> BoxedStrategy<Vec<u8>> {
    use prost_types::field_descriptor_proto::{Label, Type};
    let message = &descriptors().messages[name];
    let fields: Vec<BoxedStrategy<Vec<u8>>> = message
        .field
        .iter()
        .filter(|f| depth < 3 || f.r#type() != Type::Message)
        .map(|field| {
            let number = u64::try_from(field.number()).unwrap();
            let value: BoxedStrategy<Vec<u8>> = match field.r#type() {
                Type::Message => {
                    let nested = message_bytes(field.type_name(), depth + 1);
                    nested.prop_map(move |bytes| delimited(number, &bytes)).boxed()
                }
                Type::String | Type::Bytes => prop_oneof![
                    4 => "\\PC{0,12}".prop_map(String::into_bytes),
                    1 => prop::collection::vec(any::<u8>(), 0..12),
                ]
                .prop_map(move |bytes| delimited(number, &bytes))
                .boxed(),
                Type::Fixed64 => {
                    small_or_any().prop_map(move |v| tagged(number, 1, &v.to_le_bytes())).boxed()
                }
                Type::Fixed32 => {
                    any::<u32>().prop_map(move |v| tagged(number, 5, &v.to_le_bytes())).boxed()
                }
                _ => small_or_any()
                    .prop_map(move |v| {
                        let mut out = Vec::new();
                        varint(&mut out, v);
                        tagged(number, 0, &out)
                    })
                    .boxed(),
            };
            let count = if field.label() == Label::Repeated { 0..4_usize } else { 0..2_usize };
            prop::collection::vec(value, count).prop_map(|v| v.concat()).boxed()
        })
        .collect();
    fields.prop_map(|fields| fields.concat()).boxed()
}

/// Mostly small numbers (ids that may exist, amounts that may fit), sometimes any. Never the
/// wallet's id.
fn small_or_any() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0..1_000_u64, 1 => any::<u64>()].prop_map(|v| {
        if u128::from(v) == WALLET {
            v + 1
        } else {
            v
        }
    })
}

fn tagged(number: u64, wire: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, (number << 3) | wire);
    out.extend_from_slice(value);
    out
}

fn delimited(number: u64, bytes: &[u8]) -> Vec<u8> {
    let mut value = Vec::new();
    varint(&mut value, bytes.len() as u64);
    value.extend_from_slice(bytes);
    tagged(number, 2, &value)
}

/// Protobuf-ish bytes: fields with random numbers, wire types and contents.
fn protobuf() -> impl Strategy<Value = Vec<u8>> {
    let field = (1..20_u64, 0..6_u64, any::<u64>(), prop::collection::vec(any::<u8>(), 0..24));
    prop::collection::vec(field, 0..8).prop_map(|fields| {
        let mut out = Vec::new();
        for (number, wire, value, bytes) in fields {
            varint(&mut out, (number << 3) | wire);
            match wire {
                0 => varint(&mut out, value),
                1 => out.extend_from_slice(&value.to_le_bytes()),
                2 => {
                    varint(&mut out, bytes.len() as u64);
                    out.extend_from_slice(&bytes);
                }
                5 => out.extend_from_slice(&value.to_le_bytes()[..4]),
                _ => out.extend_from_slice(&bytes),
            }
        }
        out
    })
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(u8::try_from(value & 0x7f).unwrap() | 0x80);
        value >>= 7;
    }
    out.push(u8::try_from(value).unwrap());
}

/// A method and a body for it: one well-framed message (of its type, protobuf-ish or random
/// bytes), or framing gone wrong (a compressed flag, a length that lies, two messages, a bare
/// prefix).
fn grpc_case() -> impl Strategy<Value = (usize, Bytes)> {
    ledger_method().prop_flat_map(|method| {
        let input = &descriptors().methods[method].1;
        let payload = prop_oneof![
            6 => message_bytes(input, 0),
            1 => protobuf(),
            1 => prop::collection::vec(any::<u8>(), 0..64),
        ];
        (Just(method), grpc_body(payload))
    })
}

fn grpc_body(payload: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Bytes> {
    (payload, 0..8_u8).prop_map(|(payload, framing)| {
        let mut frame = grpc_frame(&payload);
        match framing {
            0..=3 => {}
            4 => frame[0] = 1,
            5 => frame[4] = frame[4].wrapping_add(3),
            6 => frame.extend_from_slice(&grpc_frame(&payload)),
            _ => frame.truncate(3),
        }
        Bytes::from(frame)
    })
}

/// Headers: names from those that mean something here and random ones; values meaningful or
/// random (any bytes a header may carry). Never the ones that frame the connection, which
/// would test the client rather than the server.
fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    const FRAMING: [&str; 8] = [
        "content-length",
        "transfer-encoding",
        "host",
        "connection",
        "upgrade",
        "te",
        "keep-alive",
        "expect",
    ];
    let name = prop_oneof![
        prop::sample::select(vec![
            "content-type",
            "authorization",
            "idempotency-key",
            "grpc-timeout",
            "grpc-encoding",
            "grpc-accept-encoding",
            "accept",
            "x-ledger-forwarded",
            "accept-encoding",
            "content-encoding",
        ])
        .prop_map(str::to_owned),
        "[a-z][a-z0-9-]{0,15}".prop_filter("not framing", |n| !FRAMING.contains(&n.as_str())),
    ];
    let value = prop_oneof![
        prop::sample::select(vec![
            "application/json",
            "application/grpc",
            "application/grpc+proto",
            "text/plain",
            "gzip",
            "deflate",
            "identity",
            "1n",
            "99999999H",
            "0m",
            "Bearer x",
            "Basic eA==",
            "1",
        ])
        .prop_map(|v| v.as_bytes().to_vec()),
        prop::collection::vec(prop_oneof![Just(b'\t'), 0x20..0x7f_u8, 0x80..=0xff_u8], 0..40),
    ];
    prop::collection::vec((name, value), 0..5)
}

/// Raw bytes where an HTTP request should be: random, or a request with a line mangled.
fn raw_request() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just("POST /v1/earn HTTP/1.1".to_owned()),
        Just("GET /v1/accounts/1 HTTP/1.1".to_owned()),
        "[A-Z]{0,8} /[ -~]{0,20} HTTP/[0-9.]{0,4}",
    ];
    let header = prop_oneof![
        Just("Host: x".to_owned()),
        Just("Content-Type: application/json".to_owned()),
        "Content-Length: [0-9a-z-]{0,4}",
        "Transfer-Encoding: (chunked|gzip|[a-z]{0,6})",
        "[ -~]{0,30}",
    ];
    let request =
        (line, prop::collection::vec(header, 0..5), prop::collection::vec(any::<u8>(), 0..32))
            .prop_map(|(line, headers, body)| {
                let mut bytes = format!("{line}\r\n{}\r\n\r\n", headers.join("\r\n")).into_bytes();
                bytes.extend(body);
                bytes
            });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..96), request]
}
