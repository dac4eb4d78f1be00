//! The REST API over a real cluster. Goal: every route of `rest::ROUTES` serves the ledger
//! with the documented statuses (200 ok/exists, 409 for a conflicting retry, 422 for a
//! refusal), `Idempotency-Key` makes retries safe, a write sent to a follower is forwarded;
//! every request-level error is a problem (`application/problem+json` with a stable `code`)
//! and changes nothing; and the OpenAPI document describes what the server does: each
//! operation, called, answers a status the document lists, with a body its schema allows.

use std::collections::BTreeSet;

use api::rest::{idempotent_id, JSON_BYTES_MAX, ROUTES};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ledger_sm::constants::SYSTEM_ID_MIN;
use serde_json::{json, Value};

use crate::harness::{form, last_log_index, Cluster};
use crate::http::{header_map, raw, Http};

const MERCHANT: &str = "100";
const WALLET: &str = "200";
const CARD: &str = "300";
const CARD_CODE: &str = "GC-REST-0001";

fn ok(reply: &crate::http::Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.content_type(), "application/json");
    reply.json()
}

/// A key `prefix-N` whose ids for events `0..events` are ids a caller may use.
///
/// Idempotency keys map to ids callers may use (below `SYSTEM_ID_MIN`, the ledger's own).
#[test]
fn idempotency_keys_map_to_usable_ids() {
    for n in 0..1_000 {
        let key = format!("order-{n}");
        for index in 0..4 {
            let id = idempotent_id(&key, index);
            assert!((1..SYSTEM_ID_MIN).contains(&id), "{key}[{index}] -> {id}");
        }
    }
    let uuid = "347ac10b-58cc-4372-a567-0e02b2c3d479";
    assert_eq!(idempotent_id(uuid, 0), 0x347a_c10b_58cc_4372_a567_0e02_b2c3_d479);
    let high = "ff7ac10b-58cc-4372-a567-0e02b2c3d479";
    assert!(idempotent_id(high, 0) < SYSTEM_ID_MIN, "a UUID above the range is hashed into it");
    assert_eq!(idempotent_id("42", 0), 42);
}

/// The wallet's balances, read through `http`.
async fn wallet(http: &Http) -> Value {
    ok(&http.get(&format!("/v1/accounts/{WALLET}")).await)["balances"].clone()
}

/// Every route on an open 3-node cluster. Goal: each serves the ledger with the documented
/// statuses and bodies. Method: one story (create, earn, refuse, hold, capture, void, refund,
/// batch, gift card, reads, erasure) through the leader, a write through a follower; the
/// leader's metrics then show every route was called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_routes_serve_the_ledger() {
    let mut cluster = Cluster::new();
    let leader = form(&mut cluster, &[1, 2, 3]).await;
    let http = Http::to(&cluster, leader);
    create_ledger(&http).await;
    earn_is_idempotent(&http).await;
    refused_burn_is_unprocessable(&http).await;
    holds_captures_voids_and_refunds(&http).await;
    batches_take_an_idempotency_key(&http).await;
    gift_cards_by_code(&http).await;
    reads_by_id_and_by_account(&http).await;
    erasure_clears_personal_fields(&http).await;

    // A write sent to a follower is forwarded to the leader.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let earn = json!({"account": WALLET, "from": MERCHANT, "amount": "1", "asset": 1});
    let key = "via-follower-1".to_owned();
    let reply = Http::to(&cluster, follower).post_keyed("/v1/earn", &key, &earn).await;
    let id = idempotent_id(&key, 0);
    assert_eq!(ok(&reply)["result"], "ok");
    assert_eq!(ok(&reply)["id"], id.to_string(), "the reply names the id the key stands for");
    assert_eq!(ok(&http.get(&format!("/v1/transfers/{id}")).await)["amount"], "1");

    // Every route was called on the leader: its metrics name each one.
    let metrics = http.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    for route in ROUTES {
        let label = format!("method=\"{} {}\"", route.method, route.path);
        assert!(metrics.text().contains(&label), "{label} never called");
    }
    cluster.stop_all().await;
}

async fn create_ledger(http: &Http) {
    let asset = json!({"assets": [{"id": 1, "code": "PTS", "scale": 0, "expiry_account": "900"}]});
    assert_eq!(ok(&http.post("/v1/assets", &asset).await)["results"], json!(["ok"]));
    let accounts = json!({"accounts": [
        {"id": MERCHANT, "asset": 1, "kind": "MERCHANT_ISSUANCE"},
        // Flag 2: debits must not exceed credits, so an over-burn is refused.
        {"id": WALLET, "asset": 1, "kind": "CUSTOMER_WALLET", "flags": 2,
         "external_ref": BASE64.encode("customer-200"), "metadata": BASE64.encode("{\"tier\":1}")},
    ]});
    let reply = ok(&http.post("/v1/accounts", &accounts).await);
    let results: Vec<&Value> = reply["results"].as_array().unwrap().iter().collect();
    assert!(results.iter().all(|r| r["result"] == "ok"), "{reply}");
    assert!(results.iter().all(|r| r["timestamp"].as_str().unwrap().parse::<u64>().is_ok()));
    let again = ok(&http.post("/v1/accounts", &accounts).await);
    assert_eq!(again["results"][1]["result"], "exists");
}

fn now_nanos() -> u64 {
    u64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()).unwrap()
}

async fn earn_is_idempotent(http: &Http) {
    let expires = (now_nanos() + 86_400_000_000_000).to_string();
    let earn = json!({"account": WALLET, "from": MERCHANT, "amount": "50", "asset": 1,
                      "expires_at": expires});
    let key = "order-1".to_owned();
    let first = ok(&http.post_keyed("/v1/earn", &key, &earn).await);
    assert_eq!(first["result"], "ok");
    assert_eq!(first["amount"], "50");
    assert_eq!(first["credit"]["account"], WALLET);
    assert_eq!(first["credit"]["balances"]["credits_posted"], "50");
    assert_eq!(first["debit"]["balances"]["debits_posted"], "50");

    let retry = ok(&http.post_keyed("/v1/earn", &key, &earn).await);
    assert_eq!(retry["result"], "exists");
    assert_eq!(wallet(http).await["credits_posted"], "50", "the retry moved nothing");

    let mut other = earn.clone();
    other["amount"] = json!("51");
    let conflict = http.post_keyed("/v1/earn", &key, &other).await;
    let code = conflict.problem(409);
    assert_eq!(code, "exists_with_different_amount");
    assert_eq!(conflict.json()["result"]["result"], code.as_str());

    // The key is the transfer's id.
    let id = idempotent_id(&key, 0);
    let transfer = ok(&http.get(&format!("/v1/transfers/{id}")).await);
    assert_eq!(
        (transfer["id"].as_str(), transfer["code"].as_str()),
        (Some(&*id.to_string()), Some("EARN"))
    );
}

async fn refused_burn_is_unprocessable(http: &Http) {
    let burn = json!({"id": "20", "account": WALLET, "to": MERCHANT, "amount": "1000", "asset": 1});
    let refused = http.post("/v1/burn", &burn).await;
    assert_eq!(refused.problem(422), "exceeds_credits");
    assert_eq!(refused.json()["result"]["result"], "exceeds_credits");
    // The refusal is kept under its id: the retry answers the same.
    assert_eq!(http.post("/v1/burn", &burn).await.problem(422), "exceeds_credits");
    assert_eq!(wallet(http).await["debits_posted"], "0");
}

async fn holds_captures_voids_and_refunds(http: &Http) {
    let hold = |id: &str, amount: &str| {
        json!({"id": id, "account": WALLET, "to": MERCHANT, "amount": amount, "asset": 1,
               "timeout": 3600})
    };
    let held = ok(&http.post("/v1/holds", &hold("30", "20")).await);
    assert_eq!(held["result"], "ok");
    assert_eq!(held["debit"]["balances"]["debits_pending"], "20");
    let capture = json!({"id": "31", "hold": "30", "amount": "15"});
    let captured = ok(&http.post("/v1/captures", &capture).await);
    assert_eq!(
        (captured["result"].as_str(), captured["amount"].as_str()),
        (Some("ok"), Some("15"))
    );
    assert_eq!(captured["debit"]["balances"]["debits_pending"], "0", "the rest returns");
    assert_eq!(captured["debit"]["balances"]["debits_posted"], "15");
    assert_eq!(ok(&http.post("/v1/captures", &capture).await)["result"], "exists");

    assert_eq!(ok(&http.post("/v1/holds", &hold("32", "5")).await)["result"], "ok");
    let voided = ok(&http.post("/v1/voids", &json!({"id": "33", "hold": "32"})).await);
    assert_eq!(voided["result"], "ok");
    assert_eq!(voided["debit"]["balances"]["debits_pending"], "0");
    let late = http.post("/v1/captures", &json!({"id": "34", "hold": "32"})).await;
    assert_eq!(late.problem(422), "pending_transfer_already_voided");

    let refund = json!({"id": "35", "transfer": "31", "amount": "5"});
    let refunded = ok(&http.post("/v1/refunds", &refund).await);
    assert_eq!(refunded["result"], "ok");
    assert_eq!(refunded["credit"]["account"], WALLET);
    let too_much = json!({"id": "36", "transfer": "31", "amount": "11"});
    assert_eq!(http.post("/v1/refunds", &too_much).await.problem(422), "exceeds_reversible_amount");
    let balances = wallet(http).await;
    assert_eq!(
        (balances["debits_posted"].as_str(), balances["credits_posted"].as_str()),
        (Some("15"), Some("55"))
    );
}

async fn batches_take_an_idempotency_key(http: &Http) {
    let earn = |amount: &str| {
        json!({"debit_account": MERCHANT, "credit_account": WALLET, "amount": amount,
               "asset": 1, "code": "EARN"})
    };
    let batch = json!({"transfers": [earn("1"), earn("2")]});
    let key = "batch-1".to_owned();
    let reply = ok(&http.post_keyed("/v1/transfers", &key, &batch).await);
    assert_eq!(reply["results"][0]["result"], "ok");
    assert_eq!(reply["results"][1]["result"], "ok");
    let retry = ok(&http.post_keyed("/v1/transfers", &key, &batch).await);
    let retried: Vec<&Value> = retry["results"].as_array().unwrap().iter().collect();
    assert!(retried.len() == 2 && retried.iter().all(|r| r["result"] == "exists"), "{retry}");
    // Event i's id is the key's hash with i.
    let ids: Vec<String> = (0..2).map(|i| idempotent_id(&key, i).to_string()).collect();
    let replied: Vec<String> =
        retried.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(replied, ids, "each result names its transfer's id");
    let found = ok(&http.post("/v1/transfers/lookup", &json!({"ids": ids})).await);
    let amounts: Vec<&str> = found["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, ["1", "2"]);

    let mut wrong = batch.clone();
    wrong["transfers"][1]["id"] = json!("12345");
    let refused = http.post_keyed("/v1/transfers", &key, &wrong).await;
    assert_eq!(refused.problem(422), "idempotency_key_mismatch");
    assert!(refused.json()["detail"].as_str().unwrap().contains("transfers[1].id"));
}

async fn gift_cards_by_code(http: &Http) {
    let card = json!({"cards": [{
        "account": {"id": CARD, "asset": 1, "kind": "GIFT_CARD"},
        "code": CARD_CODE, "load_transfer_id": "40", "load_from": MERCHANT, "load_amount": "25"
    }]});
    let issued = ok(&http.post("/v1/gift-cards", &card).await);
    assert_eq!(issued["results"][0]["result"], "ok");
    assert_eq!(issued["results"][0]["balances"]["balances"]["credits_posted"], "25");
    let activate = json!({"changes": [{"change": {"activate_gift_card": CARD}}]});
    let changed = ok(&http.post("/v1/account-changes", &activate).await);
    assert_eq!(changed["results"][0]["result"], "ok");
    assert_eq!(changed["results"][0]["status"], "active");

    let found = ok(&http.post("/v1/gift-cards/lookup", &json!({"code": CARD_CODE})).await);
    assert_eq!((found["id"].as_str(), found["available"].as_str()), (Some(CARD), Some("25")));
    let unknown = http.post("/v1/gift-cards/lookup", &json!({"code": "GC-NOPE"})).await;
    assert_eq!(unknown.problem(404), "not_found");

    let redeem = json!({"id": "41", "account": CARD, "to": MERCHANT, "amount": "10", "asset": 1,
                        "code": "REDEEM"});
    assert_eq!(
        ok(&http.post("/v1/burn", &redeem).await)["debit"]["balances"]["debits_posted"],
        "10"
    );
}

async fn reads_by_id_and_by_account(http: &Http) {
    let account = ok(&http.get(&format!("/v1/accounts/{WALLET}")).await);
    assert_eq!(
        (account["kind"].as_str(), account["status"].as_str()),
        (Some("CUSTOMER_WALLET"), Some("active"))
    );
    assert_eq!(http.get("/v1/accounts/999").await.problem(404), "account_not_found");
    assert_eq!(ok(&http.get("/v1/transfers/31").await)["pending_id"], "30");
    assert_eq!(http.get("/v1/transfers/424242").await.problem(404), "transfer_not_found");
    assert_eq!(http.get("/v1/accounts/not-a-number").await.problem(400), "invalid_request");

    let path = format!("/v1/accounts/{WALLET}/transfers");
    let page = ok(&http.get(&format!("{path}?limit=2")).await)["transfers"].clone();
    let page = page.as_array().unwrap();
    assert_eq!(page.len(), 2);
    let last: u64 = page[1]["timestamp"].as_str().unwrap().parse().unwrap();
    let next = ok(&http.get(&format!("{path}?limit=2&timestamp_min={}", last + 1)).await);
    assert!(next["transfers"][0]["timestamp"].as_str().unwrap().parse::<u64>().unwrap() > last);
    let newest = ok(&http.get(&format!("{path}?limit=1&descending=true&max_staleness_ms=0")).await);
    assert_eq!(newest["transfers"].as_array().unwrap().len(), 1);
    assert_ne!(newest["transfers"][0]["id"], page[0]["id"]);

    let history = ok(&http.get(&format!("/v1/accounts/{WALLET}/balance-history?limit=100")).await);
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.last().unwrap()["balances"], account["balances"], "the last entry is now");
    let lots = ok(&http.get(&format!("/v1/accounts/{WALLET}/lots?max_staleness_ms=5000")).await);
    assert_eq!(lots["lots"].as_array().unwrap().len(), 1, "the expiring earn: {lots}");
    let unknown = http.get(&format!("/v1/accounts/{WALLET}/lots?colour=blue")).await;
    assert_eq!(unknown.problem(400), "invalid_request");
    assert!(unknown.json()["detail"].as_str().unwrap().contains("colour"));
    let bad = http.get(&format!("{path}?limit=many")).await;
    assert_eq!(bad.problem(400), "invalid_request");
    let reply = http.get("/v1/accounts/%FF").await;
    assert_eq!(reply.problem(400), "invalid_request", "a path that is not UTF-8");
    let reply = http.get(&format!("{path}?limit=%FF")).await;
    assert_eq!(reply.problem(400), "invalid_request", "a query is decoded lossily");

    let ids = json!({"ids": [WALLET, "999", MERCHANT]});
    let found = ok(&http.post("/v1/accounts/lookup", &ids).await);
    let found: Vec<&str> =
        found["accounts"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(found, [WALLET, MERCHANT], "found ones only, in request order");
}

async fn erasure_clears_personal_fields(http: &Http) {
    let before = ok(&http.get(&format!("/v1/accounts/{WALLET}")).await);
    assert_eq!(before["external_ref"], BASE64.encode("customer-200"));
    let erased = ok(&http.post("/v1/erasures", &json!({"accounts": [WALLET]})).await);
    assert_eq!(erased["results"], json!(["ok"]));
    let after = ok(&http.get(&format!("/v1/accounts/{WALLET}")).await);
    assert_eq!((after["erased"].as_bool(), after["external_ref"].as_str()), (Some(true), Some("")));
    assert_eq!(after["metadata"], "");
    assert_eq!(after["balances"], before["balances"], "amounts stay");
}

/// Request-level errors. Goal: each is a problem with the documented status and code, and
/// none reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_request_errors_are_problems_and_change_nothing() {
    let mut cluster = Cluster::new();
    form(&mut cluster, &[1]).await;
    crate::harness::setup_ledger(&cluster, 1).await;
    let http = Http::to(&cluster, 1);
    let before = last_log_index(&cluster, 1).await;

    body_errors(&http).await;
    route_and_key_errors(&http).await;
    oversized_bodies(&http).await;
    malformed_http(&http).await;

    assert_eq!(last_log_index(&cluster, 1).await, before, "nothing reached the log");
    assert_eq!(http.get("/healthz").await.status, 200, "the node still serves");
    cluster.stop_all().await;
}

/// Posts `body` (bytes, as JSON unless `content_type` says otherwise) to `path`.
async fn post_bytes(
    http: &Http,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> crate::http::Reply {
    let headers = match content_type {
        Some(value) => header_map(&[("content-type", value)]),
        None => header_map(&[]),
    };
    http.send("POST", path, headers, body.to_vec()).await.unwrap()
}

async fn body_errors(http: &Http) {
    let json = Some("application/json");
    let cases: [(&str, &[u8], &str); 8] = [
        ("/v1/assets", b"{\"assets\": [", "EOF"),
        ("/v1/assets", b"{\"assetz\": []}", "unknown field"),
        ("/v1/assets", b"{\"assets\": [{\"id\": 4294967296}]}", "u32"),
        (
            "/v1/accounts",
            br#"{"accounts": [{"id": "340282366920938463463374607431768211456"}]}"#,
            "out of range",
        ),
        ("/v1/earn", br#"{"amount": -1}"#, ""),
        ("/v1/earn", br#"{"expires_at": "18446744073709551616"}"#, "out of range"),
        ("/v1/burn", br#"{"code": "STEAL"}"#, "unknown TransferCode"),
        ("/v1/holds", b"{\"id\": \"\xff\xfe\"}", ""),
    ];
    for (path, body, says) in cases {
        let reply = post_bytes(http, path, json, body).await;
        assert_eq!(
            reply.problem(400),
            "malformed_json",
            "{path} {}",
            String::from_utf8_lossy(body)
        );
        assert!(reply.json()["detail"].as_str().unwrap().contains(says), "{}", reply.text());
    }
    for content_type in [Some("text/plain"), None, Some("application/x-www-form-urlencoded")] {
        let reply = post_bytes(http, "/v1/earn", content_type, b"{}").await;
        assert_eq!(reply.problem(415), "unsupported_media_type", "{content_type:?}");
    }
    // Parameters of the media type are fine; a JSON suffix type too.
    let reply =
        post_bytes(http, "/v1/accounts/lookup", Some("application/json; charset=utf-8"), b"{}")
            .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply =
        post_bytes(http, "/v1/accounts/lookup", Some("application/merge+json"), b"{}").await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let empty = http.post("/v1/transfers", &json!({"transfers": []})).await;
    assert_eq!(empty.problem(400), "invalid_request");
    let erase_none = http.post("/v1/erasures", &json!({"accounts": []})).await;
    assert_eq!(erase_none.problem(400), "invalid_request");
    let earn = json!({"id": "7", "debit_account": "100", "credit_account": "200", "amount": "1",
                      "asset": 1, "code": "EARN"});
    let too_many = json!({"transfers": vec![earn; 8_191]});
    let reply = http.post("/v1/transfers", &too_many).await;
    assert_eq!(reply.problem(400), "invalid_request");
    assert!(reply.json()["detail"].as_str().unwrap().contains("at most 8190"), "{}", reply.text());
}

async fn route_and_key_errors(http: &Http) {
    assert_eq!(http.get("/v1/nothing-here").await.problem(404), "no_such_route");
    assert_eq!(http.get("/").await.problem(404), "no_such_route");
    assert_eq!(http.get("/v1/earn").await.problem(405), "method_not_allowed");
    let delete = http.send("DELETE", "/v1/accounts/200", header_map(&[]), "").await.unwrap();
    assert_eq!(delete.problem(405), "method_not_allowed");

    let account = json!({"accounts": [{"id": "201", "asset": 1, "kind": "CUSTOMER_WALLET"}]});
    let keyed = http.post_keyed("/v1/accounts", "acct-1", &account).await;
    assert_eq!(keyed.problem(400), "idempotency_key_not_supported");
    let earn = json!({"id": "43", "account": "200", "from": "100", "amount": "1", "asset": 1});
    let mismatch = http.post_keyed("/v1/earn", "42", &earn).await;
    assert_eq!(mismatch.problem(422), "idempotency_key_mismatch");
    let long = "k".repeat(256);
    for key in ["", long.as_str()] {
        let reply = http.post_keyed("/v1/earn", key, &earn).await;
        assert_eq!(reply.problem(400), "invalid_idempotency_key", "{key:?}");
    }
}

async fn oversized_bodies(http: &Http) {
    // One byte over the limit, as a JSON string: refused before any parsing.
    let mut body = Vec::with_capacity(JSON_BYTES_MAX + 1);
    body.push(b'"');
    body.resize(JSON_BYTES_MAX, b'a');
    body.push(b'"');
    let reply = post_bytes(http, "/v1/transfers", Some("application/json"), &body).await;
    assert_eq!(reply.problem(413), "payload_too_large");
}

/// Requests no HTTP client would send, as raw bytes: 400 each, from hyper itself (a bare 400,
/// not a problem: no route was reached) or, for a broken body, from the route; the node keeps
/// serving.
async fn malformed_http(http: &Http) {
    let cases: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"POST /v1/earn HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n{}",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"POST /v1/earn HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    ];
    for bytes in cases {
        let answer = raw(http.address(), bytes).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 400 "), "{bytes:?}: {text}");
    }
}

/// The OpenAPI document against the server. Goal: it is OpenAPI 3.1 with every route; each
/// operation, called with a minimal valid body (and again with an unknown id or a malformed
/// body), answers a status the document lists for it, and a body its schema allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_what_the_server_does() {
    let mut cluster = Cluster::new();
    form(&mut cluster, &[1]).await;
    crate::harness::setup_ledger(&cluster, 1).await;
    let http = Http::to(&cluster, 1);
    openapi_fixtures(&http).await;
    let reply = http.get("/openapi.json").await;
    assert_eq!((reply.status.as_u16(), reply.content_type()), (200, "application/json"));
    let document = reply.json();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(&document, api::openapi::document(), "the served document is the built one");
    let paths = document["paths"].as_object().unwrap();
    for route in ROUTES {
        assert!(paths[route.path][route.method.to_ascii_lowercase()].is_object(), "{}", route.path);
    }
    let schemas = Schemas { document: &document };
    let mut checked = BTreeSet::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            for (concrete, body) in openapi_requests(path, method) {
                let reply = match &body {
                    None => http.send(&method.to_uppercase(), &concrete, header_map(&[]), "").await,
                    Some(body) => Ok(http.post(&concrete, body).await),
                };
                let reply = reply.unwrap();
                let status = reply.status.as_u16().to_string();
                let described = &operation["responses"][&status];
                assert!(
                    described.is_object(),
                    "{method} {concrete}: {status} is not documented: {}",
                    reply.text()
                );
                let errors = schemas.reply_errors(described, &reply);
                assert!(
                    errors.is_empty(),
                    "{method} {concrete} {status}: {errors:#?}\n{}",
                    reply.text()
                );
                checked.insert((method.clone(), path.clone(), status));
            }
        }
    }
    let ok = checked.iter().filter(|(_, _, status)| status == "200").count();
    assert_eq!(
        ok,
        paths.values().map(|i| i.as_object().unwrap().len()).sum::<usize>(),
        "{checked:?}"
    );

    // A reply's absent message field is left out, as the document describes (never `null`).
    let unknown = json!({"changes": [{"change": {"freeze": "9999"}}]});
    let reply = http.post("/v1/account-changes", &unknown).await;
    let described = &paths["/v1/account-changes"]["post"]["responses"]["200"];
    let errors = schemas.reply_errors(described, &reply);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!reply.text().contains("null"), "{}", reply.text());
    cluster.stop_all().await;
}

/// What the OpenAPI test's requests refer to: a hold to capture, one to void, an earn to
/// refund, a gift card to look up, a wallet to freeze and erase.
async fn openapi_fixtures(http: &Http) {
    let hold =
        |id: &str| json!({"id": id, "account": "200", "to": "100", "amount": "2", "asset": 1});
    let earn = json!({"id": "602", "account": "200", "from": "100", "amount": "10", "asset": 1});
    assert_eq!(ok(&http.post("/v1/earn", &earn).await)["result"], "ok");
    assert_eq!(ok(&http.post("/v1/holds", &hold("600")).await)["result"], "ok");
    assert_eq!(ok(&http.post("/v1/holds", &hold("601")).await)["result"], "ok");
    let card = json!({"cards": [{"account": {"id": "300", "asset": 1, "kind": "GIFT_CARD"},
                                 "code": "GC-OPENAPI"}]});
    assert_eq!(ok(&http.post("/v1/gift-cards", &card).await)["results"][0]["result"], "ok");
    let account = json!({"accounts": [{"id": "201", "asset": 1, "kind": "CUSTOMER_WALLET"}]});
    assert_eq!(ok(&http.post("/v1/accounts", &account).await)["results"][0]["result"], "ok");
}

/// The requests made of one documented operation: `path` filled in, and the body (POST).
fn openapi_requests(path: &str, method: &str) -> Vec<(String, Option<Value>)> {
    if method == "get" {
        let (found, missing) =
            if path.starts_with("/v1/transfers") { ("602", "9999") } else { ("200", "9999") };
        let concrete = path.replace("{id}", found);
        if api::rest::query_parameters(path).contains(&"limit") {
            // Without `limit` (zero) the query is refused: the documented 400.
            return vec![(format!("{concrete}?limit=10"), None), (concrete, None)];
        }
        let mut requests = vec![(concrete, None)];
        if path.contains("{id}") && !path.ends_with("lots") {
            requests.push((path.replace("{id}", missing), None));
        }
        return requests;
    }
    let body = match path {
        "/v1/assets" => json!({"assets": [{"id": 2, "code": "GC", "scale": 2}]}),
        "/v1/accounts" => {
            json!({"accounts": [{"id": "202", "asset": 1, "kind": "CUSTOMER_WALLET"}]})
        }
        "/v1/transfers" => json!({"transfers": [{"id": "500", "debit_account": "100",
            "credit_account": "200", "amount": "1", "asset": 1, "code": "EARN"}]}),
        "/v1/account-changes" => json!({"changes": [{"change": {"freeze": "201"}}]}),
        "/v1/gift-cards" => {
            json!({"cards": [{"account": {"id": "301", "asset": 1, "kind": "GIFT_CARD"},
            "code": "GC-OPENAPI-2"}]})
        }
        "/v1/erasures" => json!({"accounts": ["201"]}),
        "/v1/earn" => {
            json!({"id": "501", "account": "200", "from": "100", "amount": "1", "asset": 1})
        }
        "/v1/burn" => {
            json!({"id": "502", "account": "200", "to": "100", "amount": "1", "asset": 1})
        }
        "/v1/holds" => {
            json!({"id": "503", "account": "200", "to": "100", "amount": "1", "asset": 1})
        }
        "/v1/captures" => json!({"id": "504", "hold": "600", "amount": "1"}),
        "/v1/voids" => json!({"id": "505", "hold": "601"}),
        "/v1/refunds" => json!({"id": "506", "transfer": "602"}),
        "/v1/accounts/lookup" => json!({"ids": ["200"]}),
        "/v1/transfers/lookup" => json!({"ids": ["602"]}),
        "/v1/gift-cards/lookup" => json!({"code": "GC-OPENAPI"}),
        other => panic!("no request body for {other}: add one"),
    };
    // And a body of the wrong shape, for the documented 400.
    vec![(path.to_owned(), Some(body)), (path.to_owned(), Some(json!({"no_such_field": 1})))]
}

/// Checks JSON against the subset of JSON Schema the document uses. A keyword it does not
/// know fails the check, so the document cannot outgrow the checker unnoticed.
struct Schemas<'a> {
    document: &'a Value,
}

impl Schemas<'_> {
    /// What is wrong with `reply` as the documented response `described`: its content type,
    /// and its body when the document gives a schema.
    fn reply_errors(&self, described: &Value, reply: &crate::http::Reply) -> Vec<String> {
        let content = described["content"].as_object().unwrap();
        let (media, body) = content.iter().next().unwrap();
        if !reply.content_type().starts_with(media.as_str()) {
            return vec![format!("content-type {} is not {media}", reply.content_type())];
        }
        let mut errors = Vec::new();
        if let Some(schema) = body.get("schema") {
            self.check(schema, &reply.json(), "$", &mut errors);
        }
        errors
    }

    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(target) => {
                let name = target.strip_prefix("#/components/schemas/").expect("a local $ref");
                &self.document["components"]["schemas"][name]
            }
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        for (keyword, rule) in schema.as_object().unwrap() {
            if let Some(error) = self.keyword(keyword, rule, schema, value, at, errors) {
                errors.push(format!("{at}: {error}"));
            }
        }
    }

    /// One keyword of `schema` against `value`: what is wrong, if anything (nested values'
    /// errors go to `errors` directly).
    fn keyword(
        &self,
        keyword: &str,
        rule: &Value,
        schema: &Value,
        value: &Value,
        at: &str,
        errors: &mut Vec<String>,
    ) -> Option<String> {
        let number = value.as_f64();
        match keyword {
            "type" => (!fits_type(rule.as_str().unwrap(), value))
                .then(|| format!("{value} is not of type {rule}")),
            "enum" => (!rule.as_array().unwrap().contains(value))
                .then(|| format!("{value} is not one of {rule}")),
            "pattern" => value
                .as_str()
                .filter(|text| !digits_pattern(rule.as_str().unwrap(), text))
                .map(|text| format!("{text:?} does not match {rule}")),
            "minimum" => {
                number.filter(|v| *v < rule.as_f64().unwrap()).map(|v| format!("{v} < {rule}"))
            }
            "maximum" => {
                number.filter(|v| *v > rule.as_f64().unwrap()).map(|v| format!("{v} > {rule}"))
            }
            "contentEncoding" => {
                assert_eq!(rule, "base64", "{at}: unknown encoding");
                let text = value.as_str()?;
                BASE64.decode(text).is_err().then(|| format!("{text:?} is not base64"))
            }
            "properties" => {
                let object = value.as_object()?;
                for (name, property) in rule.as_object().unwrap() {
                    if let Some(field) = object.get(name) {
                        self.check(property, field, &format!("{at}.{name}"), errors);
                    }
                }
                None
            }
            "additionalProperties" => {
                assert_eq!(rule, false, "{at}: only `false` is known to the checker");
                let known = schema["properties"].as_object();
                let object = value.as_object()?;
                let extra: Vec<&String> =
                    object.keys().filter(|k| !known.is_some_and(|p| p.contains_key(*k))).collect();
                (!extra.is_empty()).then(|| format!("properties {extra:?} are not described"))
            }
            "required" => {
                let object = value.as_object()?;
                let missing: Vec<&Value> = rule
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|k| !object.contains_key(k.as_str().unwrap()))
                    .collect();
                (!missing.is_empty()).then(|| format!("required {missing:?} missing"))
            }
            "minProperties" | "maxProperties" => {
                let count = value.as_object()?.len() as u64;
                let bound = rule.as_u64().unwrap();
                let wrong = if keyword == "minProperties" { count < bound } else { count > bound };
                wrong.then(|| format!("{count} properties, {keyword} {bound}"))
            }
            "items" => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    self.check(rule, item, &format!("{at}[{i}]"), errors);
                }
                None
            }
            "description" => None,
            other => panic!("{at}: keyword {other:?} is unknown to the checker"),
        }
    }
}

fn fits_type(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        other => panic!("type {other:?} is unknown to the checker"),
    }
}

/// The patterns the document uses: `^[0-9]{1,N}$`, and no other.
fn digits_pattern(pattern: &str, text: &str) -> bool {
    let most = pattern
        .strip_prefix("^[0-9]{1,")
        .and_then(|p| p.strip_suffix("}$"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("pattern {pattern:?} is unknown to the checker"));
    (1..=most).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}
