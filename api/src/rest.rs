//! The REST/JSON API under `/v1`: the `Ledger` service's calls over HTTP, with the JSON form of
//! `json`. Every route runs the same code as its gRPC call (the service is called directly),
//! so forwarding, batching, consistency and result codes are the same.
//!
//! - Writes answer 200 with one result per event. A single-event call (earn, burn, hold,
//!   capture, void, refund) answers 200 for `ok` / `exists`, 409 for a conflicting retry
//!   (`exists_with_different_*`) and 422 for any other refusal, as problem+json carrying the
//!   result.
//! - `Idempotency-Key` on a transfer-creating route supplies each transfer's id (see
//!   `idempotent_id`); an explicit id that disagrees is refused.
//! - Request-level errors are `application/problem+json` with a stable `code`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::Code;

use crate::auth::Scope;
use crate::convert::{pb_u128, u128_of};
use crate::ledger_service::LEADER;
use crate::proto::ledger as pb;
use crate::proto::ledger::ledger_server::Ledger;
use ledger_sm::constants::SYSTEM_ID_MIN;

/// Largest JSON body taken: twice the largest protobuf request (a full batch of 8,190 events
/// in JSON is about 4 MiB; personal fields can make it larger).
pub const JSON_BYTES_MAX: usize = 2 * crate::MESSAGE_BYTES_MAX;
/// Marks a refusal for a token's rate limit (RESOURCE_EXHAUSTED also means a full queue).
pub const RATE_LIMITED: &str = "x-ledger-rate-limited";
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Entries a paged GET returns when its query names no `limit`.
pub const LIMIT_DEFAULT: u32 = 100;
const PROBLEM_JSON: &str = "application/problem+json";

/// How a route treats `Idempotency-Key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// The route creates no transfer; the header is refused.
    No,
    /// It supplies the id of each transfer in the batch.
    Batch,
    /// It supplies the id of the one transfer.
    Single,
}

/// One REST route: what the OpenAPI document describes and the router serves.
#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    /// The path, with `{id}` for an account or transfer id.
    pub path: &'static str,
    pub operation: &'static str,
    /// The JSON body's message (POST) or `None` (GET: path and query parameters).
    pub request: Option<&'static str>,
    pub reply: &'static str,
    pub scope: Scope,
    pub idempotency: Idempotency,
    pub summary: &'static str,
}

#[allow(clippy::too_many_arguments)] // One table row: positional keeps `ROUTES` readable.
const fn route(
    method: &'static str,
    path: &'static str,
    operation: &'static str,
    request: Option<&'static str>,
    reply: &'static str,
    scope: Scope,
    idempotency: Idempotency,
    summary: &'static str,
) -> Route {
    Route { method, path, operation, request, reply, scope, idempotency, summary }
}

use Idempotency as I;
use Scope as S;

/// Every REST route.
pub const ROUTES: &[Route] = &[
    route(
        "POST",
        "/v1/assets",
        "CreateAssets",
        Some("CreateAssetsRequest"),
        "CreateAssetsReply",
        S::Write,
        I::No,
        "Create assets (point currencies, gift-card currencies)",
    ),
    route(
        "POST",
        "/v1/accounts",
        "CreateAccounts",
        Some("CreateAccountsRequest"),
        "CreateAccountsReply",
        S::Write,
        I::No,
        "Create accounts",
    ),
    route(
        "POST",
        "/v1/transfers",
        "CreateTransfers",
        Some("CreateTransfersRequest"),
        "CreateTransfersReply",
        S::Write,
        I::Batch,
        "Create transfers: single-phase, holds, posts, voids, linked chains, balancing, reversals",
    ),
    route(
        "POST",
        "/v1/account-changes",
        "ChangeAccounts",
        Some("ChangeAccountsRequest"),
        "ChangeAccountsReply",
        S::Write,
        I::No,
        "Change accounts: freeze, close, limits, flags, gift-card status",
    ),
    route(
        "POST",
        "/v1/gift-cards",
        "IssueGiftCards",
        Some("IssueGiftCardsRequest"),
        "IssueGiftCardsReply",
        S::Write,
        I::No,
        "Issue gift cards, optionally loaded",
    ),
    route(
        "POST",
        "/v1/erasures",
        "EraseAccounts",
        Some("EraseAccountsRequest"),
        "EraseAccountsReply",
        S::Write,
        I::No,
        "Erase accounts' personal fields (GDPR); amounts stay",
    ),
    route(
        "POST",
        "/v1/earn",
        "Earn",
        Some("EarnRequest"),
        "TransferResult",
        S::Write,
        I::Single,
        "Earn points",
    ),
    route(
        "POST",
        "/v1/burn",
        "Burn",
        Some("BurnRequest"),
        "TransferResult",
        S::Write,
        I::Single,
        "Burn points or redeem a gift card",
    ),
    route(
        "POST",
        "/v1/holds",
        "Hold",
        Some("HoldRequest"),
        "TransferResult",
        S::Write,
        I::Single,
        "Hold an amount",
    ),
    route(
        "POST",
        "/v1/captures",
        "Capture",
        Some("CaptureRequest"),
        "TransferResult",
        S::Write,
        I::Single,
        "Capture all or part of a hold",
    ),
    route(
        "POST",
        "/v1/voids",
        "Void",
        Some("VoidRequest"),
        "TransferResult",
        S::Write,
        I::Single,
        "Void a hold",
    ),
    route(
        "POST",
        "/v1/refunds",
        "Refund",
        Some("RefundRequest"),
        "TransferResult",
        S::Write,
        I::Single,
        "Refund all or part of a transfer",
    ),
    route(
        "POST",
        "/v1/accounts/lookup",
        "LookupAccounts",
        Some("LookupAccountsRequest"),
        "LookupAccountsReply",
        S::Read,
        I::No,
        "Look up accounts by id",
    ),
    route(
        "POST",
        "/v1/transfers/lookup",
        "LookupTransfers",
        Some("LookupTransfersRequest"),
        "LookupTransfersReply",
        S::Read,
        I::No,
        "Look up transfers by id",
    ),
    route(
        "POST",
        "/v1/gift-cards/lookup",
        "GetGiftCard",
        Some("GetGiftCardRequest"),
        "Account",
        S::Read,
        I::No,
        "The gift card with a code (in the body, never the URL)",
    ),
    route("GET", "/v1/accounts/{id}", "GetAccount", None, "Account", S::Read, I::No, "One account"),
    route(
        "GET",
        "/v1/transfers/{id}",
        "GetTransfer",
        None,
        "Transfer",
        S::Read,
        I::No,
        "One transfer",
    ),
    route(
        "GET",
        "/v1/accounts/{id}/transfers",
        "GetAccountTransfers",
        None,
        "GetAccountTransfersReply",
        S::Read,
        I::No,
        "An account's transfers in a time range, paged",
    ),
    route(
        "GET",
        "/v1/accounts/{id}/balance-history",
        "GetBalanceHistory",
        None,
        "GetBalanceHistoryReply",
        S::Read,
        I::No,
        "An account's balances after each of its transfers, paged",
    ),
    route(
        "GET",
        "/v1/accounts/{id}/lots",
        "GetAccountLots",
        None,
        "GetAccountLotsReply",
        S::Read,
        I::No,
        "An account's open lots, earliest expiry first",
    ),
];

/// The query parameters of the GET routes, by route path.
pub fn query_parameters(path: &str) -> &'static [&'static str] {
    match path {
        "/v1/accounts/{id}/transfers" | "/v1/accounts/{id}/balance-history" => {
            &["timestamp_min", "timestamp_max", "limit", "descending", "max_staleness_ms"]
        }
        _ => &["max_staleness_ms"],
    }
}

/// The route `method` + `path` (a concrete path) belongs to, for authorization and metrics.
#[must_use]
pub fn route_of(method: &str, path: &str) -> Option<&'static Route> {
    let segments: Vec<&str> = path.split('/').collect();
    ROUTES.iter().find(|r| {
        r.method == method && {
            let template: Vec<&str> = r.path.split('/').collect();
            template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| *t == "{id}" || t == s)
        }
    })
}

/// A request-level error: `application/problem+json` (RFC 9457) with a stable `code`.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
    pub extra: serde_json::Map<String, serde_json::Value>,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(status: StatusCode, code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            detail: detail.into(),
            extra: serde_json::Map::new(),
            headers: Vec::new(),
        }
    }

    fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("type".into(), format!("urn:localplus:problem:{}", self.code).into());
        body.insert("title".into(), self.status.canonical_reason().unwrap_or("Error").into());
        body.insert("status".into(), self.status.as_u16().into());
        body.insert("code".into(), self.code.into());
        body.insert("detail".into(), self.detail.into());
        body.extend(self.extra);
        let mut response =
            (self.status, serde_json::Value::Object(body).to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// The problem a gRPC status stands for. Codes: `invalid_request` 400, `unauthenticated` 401,
/// `forbidden` 403, `not_found` 404, `conflict` 409, `rate_limited` 429, `overloaded` 503
/// (the write queue is full), `unavailable` 503 (no leader yet; `leader` names it when known),
/// `deadline_exceeded` 504, `internal` 500.
#[must_use]
pub fn status_problem(status: &tonic::Status) -> Problem {
    let (http, code) = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => (StatusCode::BAD_REQUEST, "invalid_request"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "forbidden"),
        Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => {
            (StatusCode::CONFLICT, "conflict")
        }
        Code::ResourceExhausted if status.metadata().contains_key(RATE_LIMITED) => {
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        }
        Code::ResourceExhausted => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        Code::Unavailable | Code::Cancelled => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    let mut problem = Problem::new(http, code, status.message());
    if http == StatusCode::SERVICE_UNAVAILABLE || http == StatusCode::TOO_MANY_REQUESTS {
        problem.headers.push((header::RETRY_AFTER, HeaderValue::from_static("1")));
    }
    if let Some(leader) = status.metadata().get(LEADER).and_then(|v| v.to_str().ok()) {
        if let Ok(value) = HeaderValue::from_str(leader) {
            problem.headers.push((header::HeaderName::from_static(LEADER), value));
        }
        problem = problem.with("leader", leader.into());
    }
    problem
}

type Service = Arc<dyn Ledger>;

/// The `/v1` router over `ledger` (the same service gRPC calls reach).
pub fn router(ledger: Service) -> Router {
    let mut router = Router::new();
    for r in ROUTES.iter().filter(|r| r.method == "POST") {
        let operation = r.operation;
        router = router.route(
            r.path,
            post(move |State(ledger): State<Service>, headers: HeaderMap, body: Body| async move {
                post_call(&ledger, operation, &headers, body)
                    .await
                    .unwrap_or_else(|p| p.into_response())
            }),
        );
    }
    router = router
        .route("/v1/accounts/{id}", get(get_account))
        .route("/v1/transfers/{id}", get(get_transfer))
        .route("/v1/accounts/{id}/transfers", get(get_account_transfers))
        .route("/v1/accounts/{id}/balance-history", get(get_balance_history))
        .route("/v1/accounts/{id}/lots", get(get_account_lots));
    router.with_state(ledger)
}

/// The answer to a path no route has.
pub async fn not_found() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "no_such_route", "no such route; see /openapi.json")
        .into_response()
}

/// The answer to a method a route does not take.
pub async fn method_not_allowed() -> Response {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "see /openapi.json")
        .into_response()
}

fn tonic_request<T>(message: T, headers: &HeaderMap) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Ok(value) = value.parse() {
            request.metadata_mut().insert("authorization", value);
        }
    }
    request
}

fn json_response<T: Serialize>(status: StatusCode, reply: &T) -> Response {
    match serde_json::to_string(reply) {
        Ok(text) => {
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], text)
                .into_response()
        }
        Err(e) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            .into_response(),
    }
}

async fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, Problem> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/json" || v.ends_with("+json")
        });
    if !json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (content-type: application/json)",
        ));
    }
    let bytes = http_body_util::Limited::new(body, JSON_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the body is over {JSON_BYTES_MAX} bytes"),
                )
            } else {
                Problem::new(StatusCode::BAD_REQUEST, "invalid_request", format!("body: {e}"))
            }
        })?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "malformed_json", format!("body: {e}")))
}

/// The transfer id an idempotency key stands for, for an unnamed caller (a node without
/// tokens); see `idempotent_id_for`.
#[must_use]
pub fn idempotent_id(key: &str, index: usize) -> u128 {
    idempotent_id_for(None, key, index)
}

/// The transfer id a caller's idempotency key stands for. A key that is a UUID or a decimal
/// number in the ids callers may use (1 to 2^127 - 1; higher ids are the ledger's own) is that
/// number, as if sent as the id. Any other key is hashed (BLAKE3) into that range together with
/// the token's name, so two callers' `order-17` are two transfers. Event `index > 0` of a batch
/// gets the hash of the key and its index instead, so every event of a retried batch keeps its
/// id.
#[must_use]
pub fn idempotent_id_for(caller: Option<&str>, key: &str, index: usize) -> u128 {
    let usable = |id: u128| (1..SYSTEM_ID_MIN).contains(&id).then_some(id);
    if index == 0 {
        let hex: String = key.chars().filter(|c| *c != '-').collect();
        let uuid = key.len() == 36 && hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        let direct = if uuid { u128::from_str_radix(&hex, 16).ok() } else { key.parse().ok() };
        if let Some(id) = direct.and_then(usable) {
            return id;
        }
    }
    let mut hasher = blake3::Hasher::new_derive_key("localplus-ledger 2026 idempotency key");
    if let Some(caller) = caller {
        hasher.update(&(caller.len() as u64).to_le_bytes());
        hasher.update(caller.as_bytes());
    }
    hasher.update(&(key.len() as u64).to_le_bytes());
    hasher.update(key.as_bytes());
    hasher.update(&(index as u64).to_le_bytes());
    let bytes: [u8; 16] = hasher.finalize().as_bytes()[..16].try_into().unwrap_or([1; 16]);
    let id = (u128::from_le_bytes(bytes) % SYSTEM_ID_MIN).max(1);
    assert!((1..SYSTEM_ID_MIN).contains(&id));
    id
}

/// Set by the gate on a request it let through: the name of the caller's token. A value the
/// client sent is removed first, so it cannot be forged.
pub const CALLER: &str = "x-ledger-caller";

fn caller(headers: &HeaderMap) -> Option<&str> {
    headers.get(CALLER).and_then(|v| v.to_str().ok())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else { return Ok(None) };
    let key = value.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 255).ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
    })?;
    Ok(Some(key.to_owned()))
}

/// Fills `id` from the key, or refuses an explicit id that disagrees with it.
fn apply_key(
    caller: Option<&str>,
    id: &mut Option<pb::U128>,
    key: &str,
    index: usize,
    field: &str,
) -> Result<(), Problem> {
    let keyed = idempotent_id_for(caller, key, index);
    match u128_of(id.as_ref()) {
        0 => {
            *id = pb_u128(keyed);
            Ok(())
        }
        given if given == keyed => Ok(()),
        given => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_mismatch",
            format!("{field} is {given}, but the Idempotency-Key stands for {keyed}; send one or the other"),
        )),
    }
}

/// The HTTP answer to a single-event call's result.
fn single_reply(reply: &pb::TransferResult) -> Response {
    match reply.result.as_str() {
        "ok" | "exists" => json_response(StatusCode::OK, reply),
        code => {
            let status = if code.starts_with("exists_with_different") {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let result = serde_json::to_value(reply).unwrap_or_default();
            Problem::new(status, code, format!("the ledger refused the transfer: {code}"))
                .with("result", result)
                .into_response()
        }
    }
}

macro_rules! call {
    ($ledger:expr, $method:ident, $headers:expr, $body:expr) => {{
        let message = json_body($headers, $body).await?;
        let reply = $ledger.$method(tonic_request(message, $headers)).await;
        reply.map(tonic::Response::into_inner).map_err(|s| status_problem(&s))?
    }};
}

macro_rules! single {
    ($ledger:expr, $method:ident, $Request:ty, $headers:expr, $body:expr) => {{
        let mut message: $Request = json_body($headers, $body).await?;
        if let Some(key) = idempotency_key($headers)? {
            apply_key(caller($headers), &mut message.id, &key, 0, "id")?;
        }
        let reply = $ledger.$method(tonic_request(message, $headers)).await;
        let reply = reply.map(tonic::Response::into_inner).map_err(|s| status_problem(&s))?;
        Ok(single_reply(&reply))
    }};
}

async fn post_call(
    ledger: &Service,
    operation: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let keyed = route_of_operation(operation).is_some_and(|r| r.idempotency != I::No);
    if !keyed && headers.contains_key(IDEMPOTENCY_KEY) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "idempotency_key_not_supported",
            "Idempotency-Key applies to routes that create transfers; these ids are the keys",
        ));
    }
    let ok = |reply: &dyn erased::Reply| Ok(reply.response());
    match operation {
        "CreateAssets" => ok(&call!(ledger, create_assets, headers, body)),
        "CreateAccounts" => ok(&call!(ledger, create_accounts, headers, body)),
        "CreateTransfers" => {
            let mut message: pb::CreateTransfersRequest = json_body(headers, body).await?;
            if let Some(key) = idempotency_key(headers)? {
                for (i, transfer) in message.transfers.iter_mut().enumerate() {
                    let field = format!("transfers[{i}].id");
                    apply_key(caller(headers), &mut transfer.id, &key, i, &field)?;
                }
            }
            let reply = ledger.create_transfers(tonic_request(message, headers)).await;
            let reply = reply.map(tonic::Response::into_inner).map_err(|s| status_problem(&s))?;
            Ok(json_response(StatusCode::OK, &reply))
        }
        "ChangeAccounts" => ok(&call!(ledger, change_accounts, headers, body)),
        "IssueGiftCards" => ok(&call!(ledger, issue_gift_cards, headers, body)),
        "EraseAccounts" => ok(&call!(ledger, erase_accounts, headers, body)),
        "LookupAccounts" => ok(&call!(ledger, lookup_accounts, headers, body)),
        "LookupTransfers" => ok(&call!(ledger, lookup_transfers, headers, body)),
        "GetGiftCard" => ok(&call!(ledger, get_gift_card, headers, body)),
        "Earn" => single!(ledger, earn, pb::EarnRequest, headers, body),
        "Burn" => single!(ledger, burn, pb::BurnRequest, headers, body),
        "Hold" => single!(ledger, hold, pb::HoldRequest, headers, body),
        "Capture" => single!(ledger, capture, pb::CaptureRequest, headers, body),
        "Void" => single!(ledger, void, pb::VoidRequest, headers, body),
        "Refund" => single!(ledger, refund, pb::RefundRequest, headers, body),
        other => Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("no handler for {other}"),
        )),
    }
}

fn route_of_operation(operation: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.operation == operation)
}

/// Replies as JSON responses without naming each type.
mod erased {
    use axum::http::StatusCode;
    use axum::response::Response;

    pub trait Reply {
        fn response(&self) -> Response;
    }

    impl<T: serde::Serialize> Reply for T {
        fn response(&self) -> Response {
            super::json_response(StatusCode::OK, self)
        }
    }
}

fn id_of(text: &str) -> Result<Option<pb::U128>, Problem> {
    let id: u128 = text.parse().map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("id: {text:?} is not a 128-bit decimal"),
        )
    })?;
    Ok(pb_u128(id))
}

/// Query parameters, each known and parsed, or a problem naming the bad one.
struct Params {
    values: HashMap<String, String>,
}

impl Params {
    fn new(values: HashMap<String, String>, route: &str) -> Result<Self, Problem> {
        let known = query_parameters(route);
        if let Some(unknown) = values.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("unknown query parameter {unknown:?} (known: {})", known.join(", ")),
            ));
        }
        Ok(Self { values })
    }

    fn get<T: std::str::FromStr + Default>(&self, name: &str) -> Result<T, Problem> {
        self.values.get(name).map_or(Ok(T::default()), |text| {
            text.parse().map_err(|_| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("{name}: {text:?} is not valid here"),
                )
            })
        })
    }

    fn consistency(&self) -> Result<Option<pb::ReadConsistency>, Problem> {
        Ok(Some(pb::ReadConsistency { max_staleness_ms: self.get("max_staleness_ms")? }))
    }

    fn filter(&self, id: &str) -> Result<pb::AccountFilter, Problem> {
        Ok(pb::AccountFilter {
            account: id_of(id)?,
            timestamp_min: self.get("timestamp_min")?,
            timestamp_max: self.get("timestamp_max")?,
            limit: if self.values.contains_key("limit") {
                self.get("limit")?
            } else {
                LIMIT_DEFAULT
            },
            descending: self.get("descending")?,
            consistency: self.consistency()?,
        })
    }
}

type Get = (
    State<Service>,
    HeaderMap,
    Result<Path<String>, axum::extract::rejection::PathRejection>,
    Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
);

/// The id in the path and the query's parameters, or the problem with them.
fn get_parts(
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    route: &str,
) -> Result<(String, Params), Problem> {
    let Path(id) =
        path.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let Query(query) = query
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    Ok((id, Params::new(query, route)?))
}

async fn get_account((State(ledger), headers, path, query): Get) -> Response {
    let result = async {
        let (id, params) = get_parts(path, query, "/v1/accounts/{id}")?;
        let message = pb::LookupAccountsRequest {
            ids: id_of(&id)?.into_iter().collect(),
            consistency: params.consistency()?,
        };
        let reply = ledger.lookup_accounts(tonic_request(message, &headers)).await;
        let reply = reply.map(tonic::Response::into_inner).map_err(|s| status_problem(&s))?;
        reply.accounts.first().map(|a| json_response(StatusCode::OK, a)).ok_or_else(|| {
            Problem::new(StatusCode::NOT_FOUND, "account_not_found", format!("no account {id}"))
        })
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn get_transfer((State(ledger), headers, path, query): Get) -> Response {
    let result = async {
        let (id, params) = get_parts(path, query, "/v1/transfers/{id}")?;
        let message = pb::LookupTransfersRequest {
            ids: id_of(&id)?.into_iter().collect(),
            consistency: params.consistency()?,
        };
        let reply = ledger.lookup_transfers(tonic_request(message, &headers)).await;
        let reply = reply.map(tonic::Response::into_inner).map_err(|s| status_problem(&s))?;
        reply.transfers.first().map(|t| json_response(StatusCode::OK, t)).ok_or_else(|| {
            Problem::new(StatusCode::NOT_FOUND, "transfer_not_found", format!("no transfer {id}"))
        })
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn get_account_transfers((State(ledger), headers, path, query): Get) -> Response {
    let result = async {
        let (id, params) = get_parts(path, query, "/v1/accounts/{id}/transfers")?;
        let filter = params.filter(&id)?;
        let reply = ledger.get_account_transfers(tonic_request(filter, &headers)).await;
        let reply = reply.map(tonic::Response::into_inner).map_err(|s| status_problem(&s))?;
        Ok::<_, Problem>(json_response(StatusCode::OK, &reply))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn get_balance_history((State(ledger), headers, path, query): Get) -> Response {
    let result = async {
        let (id, params) = get_parts(path, query, "/v1/accounts/{id}/balance-history")?;
        let filter = params.filter(&id)?;
        let reply = ledger.get_balance_history(tonic_request(filter, &headers)).await;
        let reply = reply.map(tonic::Response::into_inner).map_err(|s| status_problem(&s))?;
        Ok::<_, Problem>(json_response(StatusCode::OK, &reply))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn get_account_lots((State(ledger), headers, path, query): Get) -> Response {
    let result = async {
        let (id, params) = get_parts(path, query, "/v1/accounts/{id}/lots")?;
        let message =
            pb::GetAccountLotsRequest { account: id_of(&id)?, consistency: params.consistency()? };
        let reply = ledger.get_account_lots(tonic_request(message, &headers)).await;
        let reply = reply.map(tonic::Response::into_inner).map_err(|s| status_problem(&s))?;
        Ok::<_, Problem>(json_response(StatusCode::OK, &reply))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_map_to_stable_nonzero_ids() {
        assert_eq!(idempotent_id("42", 0), 42);
        let uuid = "123e4567-e89b-12d3-a456-426614174000";
        assert_eq!(idempotent_id(uuid, 0), 0x123e_4567_e89b_12d3_a456_4266_1417_4000);
        let hashed = idempotent_id("order-17", 0);
        assert_eq!(hashed, idempotent_id("order-17", 0));
        assert_ne!(hashed, idempotent_id("order-18", 0));
        assert_ne!(idempotent_id("order-17", 1), hashed);
        assert_ne!(idempotent_id("0", 0), 0);
        // Hashed keys are the caller's own; ids given as keys are the same for every caller.
        let wallet = idempotent_id_for(Some("wallet"), "order-17", 0);
        assert_ne!(wallet, idempotent_id_for(Some("checkout"), "order-17", 0));
        assert_ne!(wallet, hashed);
        assert_eq!(idempotent_id_for(Some("wallet"), "42", 0), 42);
        // Ids at or past 2^127 are the ledger's own: such a key is hashed like any other.
        let system = SYSTEM_ID_MIN.to_string();
        assert!((1..SYSTEM_ID_MIN).contains(&idempotent_id(&system, 0)));
    }

    #[test]
    fn routes_are_found_by_concrete_path() {
        assert_eq!(route_of("POST", "/v1/earn").unwrap().operation, "Earn");
        assert_eq!(route_of("GET", "/v1/accounts/17").unwrap().operation, "GetAccount");
        assert_eq!(route_of("GET", "/v1/accounts/17/lots").unwrap().operation, "GetAccountLots");
        assert_eq!(route_of("POST", "/v1/accounts/lookup").unwrap().operation, "LookupAccounts");
        assert!(route_of("DELETE", "/v1/accounts/17").is_none());
        assert!(route_of("GET", "/v1/nothing").is_none());
    }
}
