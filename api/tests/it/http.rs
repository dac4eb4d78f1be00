//! A small HTTP client for tests, on hyper 1's connection API: one connection per request,
//! HTTP/1.1 for the REST API or HTTP/2 for hand-made gRPC calls, plaintext or TLS (rustls).
//! And raw bytes over a socket, for requests no well-behaved client would send.
//!
//! A fresh connection per request keeps requests independent: a request that upsets the
//! server's connection handling cannot spoil the next one's answer.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderName, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Cluster, WAIT};

/// A stream hyper can speak over: TCP or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// An HTTP answer, body read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    /// The body as JSON; panics naming the body when it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.status, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn content_type(&self) -> &str {
        self.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether this is a problem as the API spells it: `application/problem+json` with
    /// `type`, `title`, `status` (this status), `code` and `detail`. Returns what is wrong.
    pub fn problem_shape(&self) -> Result<String, String> {
        if self.content_type() != "application/problem+json" {
            return Err(format!("content-type {:?}: {}", self.content_type(), self.text()));
        }
        let body: Value = serde_json::from_slice(&self.body)
            .map_err(|e| format!("not JSON ({e}): {}", self.text()))?;
        for field in ["type", "title", "code", "detail"] {
            if !body[field].is_string() {
                return Err(format!("no string {field:?}: {body}"));
            }
        }
        if body["status"] != self.status.as_u16() {
            return Err(format!("status {} in a {} reply: {body}", body["status"], self.status));
        }
        let code = body["code"].as_str().unwrap_or_default();
        if body["type"] != format!("urn:localplus:problem:{code}") {
            return Err(format!("type does not name the code: {body}"));
        }
        Ok(code.to_owned())
    }

    /// Asserts this is a problem with `status`; returns its code.
    #[track_caller]
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        self.problem_shape().unwrap_or_else(|e| panic!("{}: {e}", self.status))
    }

    /// A gRPC answer's status: from the trailers, or from the headers (trailers-only).
    pub fn grpc_status(&self) -> Option<(tonic::Code, String)> {
        let map = match &self.trailers {
            Some(trailers) if trailers.contains_key("grpc-status") => trailers,
            _ => &self.headers,
        };
        let code: i32 = map.get("grpc-status")?.to_str().ok()?.parse().ok()?;
        let message = map.get("grpc-message").map(|v| percent_decode(v.as_bytes()));
        Some((tonic::Code::from(code), message.unwrap_or_default()))
    }
}

/// gRPC's percent-encoding of `grpc-message`, undone.
fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where and how requests go: a node's address, TLS or not, a bearer token or none.
#[derive(Clone, Debug)]
pub struct Http {
    address: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    token: Option<String>,
}

impl Http {
    /// To node `id` as the harness calls it: TLS with the test client's certificate on a TLS
    /// cluster (ALPN http/1.1), the operator token on a secured one.
    pub fn to(cluster: &Cluster, id: u64) -> Self {
        let tls = cluster.pki().map(|pki| pki.rustls_client(true, b"http/1.1"));
        Self { address: cluster.addresses[&id], tls, token: cluster.operator().map(Into::into) }
    }

    #[must_use]
    pub fn token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(Into::into);
        self
    }

    #[must_use]
    pub fn tls(mut self, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        self.tls = tls;
        self
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Connects; on TLS, also returns the protocol ALPN chose.
    async fn connect(&self) -> Result<(Box<dyn Io>, Option<Vec<u8>>), String> {
        let tcp = TcpStream::connect(self.address).await.map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let Some(config) = &self.tls else { return Ok((Box::new(tcp), None)) };
        let name = rustls::pki_types::ServerName::from(self.address.ip());
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
        let tls = connector.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        Ok((Box::new(tls), alpn))
    }

    /// The protocol ALPN settles on for a new connection (TLS only).
    pub async fn alpn(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(self.connect().await?.1)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, String> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.address.to_string())
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
            request.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
        // The caller's headers go last: they may replace the defaults.
        for (name, value) in &headers {
            request.headers_mut().append(name, value.clone());
        }
        Ok(request)
    }

    /// One HTTP/1.1 request on a new connection.
    ///
    /// # Errors
    /// The connection, the TLS handshake or the exchange failed.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: HeaderMap,
        body: impl Into<Bytes>,
    ) -> Result<Reply, String> {
        let request = self.request(method, path, headers, body.into())?;
        let exchange = async {
            let (io, _) = self.connect().await?;
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(connection);
            let response = sender.send_request(request).await.map_err(|e| format!("send: {e}"))?;
            reply(response).await
        };
        tokio::time::timeout(WAIT, exchange).await.map_err(|_| "no answer in time".to_owned())?
    }

    /// A gRPC call made by hand over HTTP/2 on a new connection: `body` is sent as is (one
    /// or more length-prefixed messages, or anything else), with the usual gRPC headers
    /// unless `headers` replaces them.
    ///
    /// # Errors
    /// The connection or the exchange failed.
    pub async fn grpc(&self, path: &str, headers: HeaderMap, body: Bytes) -> Result<Reply, String> {
        let mut all = HeaderMap::new();
        all.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        all.insert("te", HeaderValue::from_static("trailers"));
        for name in headers.keys() {
            all.remove(name);
        }
        all.extend(headers);
        let uri = format!("http://{}{path}", self.address);
        let mut request = self.request("POST", &uri, all, body)?;
        request.headers_mut().remove(http::header::HOST); // HTTP/2 takes :authority.
        let exchange = async {
            let (io, _) = self.connect().await?;
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(connection);
            let response = sender.send_request(request).await.map_err(|e| format!("send: {e}"))?;
            reply(response).await
        };
        tokio::time::timeout(WAIT, exchange).await.map_err(|_| "no answer in time".to_owned())?
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, HeaderMap::new(), Bytes::new()).await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_with(path, &[], body).await
    }

    /// A JSON POST with extra headers (`Idempotency-Key`, say).
    pub async fn post_with(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
        let mut map = header_map(headers);
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.send("POST", path, map, body.to_string()).await.unwrap()
    }

    pub async fn post_keyed(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.post_with(path, &[("idempotency-key", key)], body).await
    }
}

/// Headers from pairs of text.
pub fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.append(name, HeaderValue::from_str(value).unwrap());
    }
    map
}

async fn reply(response: http::Response<hyper::body::Incoming>) -> Result<Reply, String> {
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.map_err(|e| format!("body: {e}"))?;
    let trailers = collected.trailers().cloned();
    Ok(Reply { status: parts.status, headers: parts.headers, body: collected.to_bytes(), trailers })
}

/// One gRPC message as it goes on the wire: uncompressed, length-prefixed.
pub fn grpc_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 5);
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Writes `bytes` to `address`, closes the writing half, and reads whatever comes back until
/// the server closes the connection (or resets it). Panics if the server keeps it open past
/// `WAIT` after the client said it has nothing more to send.
pub async fn raw(address: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    // The server may answer and close before reading everything: a failed write is an answer.
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server kept a half-closed connection open: {answer:?}");
    answer
}
