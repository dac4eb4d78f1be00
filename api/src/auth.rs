//! Who may call what: bearer tokens with scopes, per-token rate limits, and the peer secret
//! nodes present to each other.
//!
//! Tokens come from a TOML file (`tokens_file`) that holds only their BLAKE3 hashes, so the
//! file leaks no credential; `ledgerctl token new` makes a secret and the line for the file.
//! Without a tokens file the node runs open (a warning at start), as the local demo does.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Reads of the ledger.
    Read,
    /// Writes to the ledger (not reads: give both when a caller needs both).
    Write,
    /// Cluster operations (`Admin`).
    Admin,
}

impl Scope {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "ledger:read",
            Scope::Write => "ledger:write",
            Scope::Admin => "admin",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Scope::Read, Scope::Write, Scope::Admin].into_iter().find(|s| s.name() == name)
    }
}

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Health, readiness, metrics, the API's description: anyone.
    Nothing,
    /// A token with this scope.
    Scope(Scope),
    /// The cluster's peer secret (raft between nodes).
    Peer,
}

/// The prefix of a token's secret, so a leaked one is recognizable (secret scanners).
pub const SECRET_PREFIX: &str = "lpt_";
const HASH_PREFIX: &str = "blake3:";

/// The hash that stands for `secret` in a tokens file.
#[must_use]
pub fn hash_secret(secret: &str) -> String {
    format!("{HASH_PREFIX}{}", blake3::hash(secret.as_bytes()).to_hex())
}

/// A fresh random secret for a token or the peer secret.
///
/// # Errors
/// The system's random source failed.
pub fn new_secret() -> Result<String, String> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("random source: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{SECRET_PREFIX}{hex}"))
}

/// One entry of a tokens file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Names the token in logs and metrics; never the secret.
    pub name: String,
    /// `blake3:` and 64 hex digits: the hash of the secret.
    pub hash: String,
    pub scopes: Vec<String>,
    /// When the token stops working (RFC 3339 in TOML, e.g. `2027-01-01T00:00:00Z`).
    pub expires_at: Option<toml::value::Datetime>,
    /// Requests per second this token may make on this node (absent: no limit).
    pub rate_per_second: Option<u32>,
    /// Requests it may make at once after being idle [default: one second's worth].
    pub burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug)]
struct Token {
    name: String,
    scopes: Vec<Scope>,
    /// Seconds since the epoch.
    expires_at: Option<u64>,
    limit: Option<Mutex<Bucket>>,
}

/// A token bucket: `rate` tokens a second up to `burst`.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    /// Takes one request's worth, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.level >= 1.0 {
            self.level -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.level) / self.rate))
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No credentials, or credentials that name no token (or an expired one).
    Unauthenticated(String),
    /// A valid token without the scope.
    Forbidden(String),
    /// The token's rate limit; retry after this long.
    RateLimited { token: String, retry_after: Duration },
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::Unauthenticated(why) | Denied::Forbidden(why) => f.write_str(why),
            Denied::RateLimited { token, retry_after } => write!(
                f,
                "token {token:?} is over its rate limit; retry in {} ms",
                retry_after.as_millis().max(1)
            ),
        }
    }
}

/// The node's credentials: its tokens (by hash) and the peer secret's hash.
#[derive(Debug, Default)]
pub struct Auth {
    tokens: HashMap<String, Arc<Token>>,
    peer: Option<String>,
}

impl Auth {
    /// A node that asks for nothing.
    #[must_use]
    pub fn open() -> Self {
        Self::default()
    }

    /// Whether requests must carry credentials.
    #[must_use]
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || self.peer.is_some()
    }

    /// Reads a tokens file and the peer secret's file.
    ///
    /// # Errors
    /// A file cannot be read or parsed, or an entry is invalid (named).
    pub fn load(tokens_file: &Path, peer_secret_file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(tokens_file)
            .map_err(|e| format!("tokens file {}: {e}", tokens_file.display()))?;
        let file: TokensFile = toml::from_str(&text)
            .map_err(|e| format!("tokens file {}: {e}", tokens_file.display()))?;
        let peer = read_secret(peer_secret_file)?;
        Self::new(&file.token, &peer)
    }

    /// # Errors
    /// An entry is invalid: the message names it.
    pub fn new(entries: &[TokenEntry], peer_secret: &str) -> Result<Self, String> {
        let mut tokens = HashMap::new();
        for entry in entries {
            let token = token(entry).map_err(|e| format!("token {:?}: {e}", entry.name))?;
            if tokens.insert(entry.hash.to_ascii_lowercase(), Arc::new(token)).is_some() {
                return Err(format!("token {:?}: the same hash appears twice", entry.name));
            }
        }
        if peer_secret.len() < 16 {
            return Err("peer secret: at least 16 characters".into());
        }
        Ok(Self { tokens, peer: Some(hash_secret(peer_secret)) })
    }

    /// Checks `authorization` (the header's value, if any) against what the request needs.
    ///
    /// # Errors
    /// Why the request is refused.
    pub fn check(
        &self,
        need: Need,
        authorization: Option<&[u8]>,
    ) -> Result<Option<String>, Denied> {
        if !self.enabled() || need == Need::Nothing {
            return Ok(None);
        }
        let Some(secret) = authorization.and_then(bearer) else {
            return Err(Denied::Unauthenticated(
                "credentials required: `authorization: Bearer <token>`".into(),
            ));
        };
        let hash = hash_secret(secret);
        if need == Need::Peer {
            return if self.peer.as_deref() == Some(hash.as_str()) {
                Ok(Some("peer".into()))
            } else {
                Err(Denied::Forbidden("only the cluster's nodes may call this".into()))
            };
        }
        let Some(token) = self.tokens.get(&hash) else {
            return Err(Denied::Unauthenticated("unknown token".into()));
        };
        if token.expires_at.is_some_and(|at| at <= unix_now()) {
            return Err(Denied::Unauthenticated(format!("token {:?} has expired", token.name)));
        }
        let Need::Scope(scope) = need else { unreachable!("handled above") };
        if !token.scopes.contains(&scope) {
            return Err(Denied::Forbidden(format!(
                "token {:?} lacks the scope {}",
                token.name,
                scope.name()
            )));
        }
        if let Some(limit) = &token.limit {
            let mut bucket = limit.lock().unwrap_or_else(PoisonError::into_inner);
            bucket.take(Instant::now()).map_err(|retry_after| Denied::RateLimited {
                token: token.name.clone(),
                retry_after,
            })?;
        }
        Ok(Some(token.name.clone()))
    }
}

fn bearer(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, secret) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(secret.trim()).filter(|s| !s.is_empty())
}

/// The first line of a secret's file, trimmed.
///
/// # Errors
/// The file cannot be read or is empty.
pub fn read_secret(path: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("secret {}: {e}", path.display()))?;
    let secret = text.lines().next().unwrap_or_default().trim().to_owned();
    if secret.is_empty() {
        return Err(format!("secret {}: the file is empty", path.display()));
    }
    Ok(secret)
}

fn token(entry: &TokenEntry) -> Result<Token, String> {
    let hex = entry
        .hash
        .strip_prefix(HASH_PREFIX)
        .ok_or_else(|| format!("hash must start with {HASH_PREFIX:?}"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("hash must be 64 hex digits after the prefix".into());
    }
    let scopes = entry
        .scopes
        .iter()
        .map(|name| {
            Scope::parse(name).ok_or_else(|| {
                format!("unknown scope {name:?} (ledger:read, ledger:write or admin)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if scopes.is_empty() {
        return Err("at least one scope is required".into());
    }
    let expires_at = entry.expires_at.as_ref().map(unix_seconds).transpose()?;
    let limit = match (entry.rate_per_second, entry.burst) {
        (None, None) => None,
        (None, Some(_)) => return Err("burst needs rate_per_second".into()),
        (Some(0), _) | (_, Some(0)) => return Err("rate_per_second and burst must be > 0".into()),
        (Some(rate), burst) => {
            let burst = f64::from(burst.unwrap_or(rate));
            Some(Mutex::new(Bucket {
                rate: f64::from(rate),
                burst,
                level: burst,
                at: Instant::now(),
            }))
        }
    };
    Ok(Token { name: entry.name.clone(), scopes, expires_at, limit })
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Seconds since the epoch of a TOML date-time with a date, a time and an offset.
fn unix_seconds(at: &toml::value::Datetime) -> Result<u64, String> {
    let (Some(date), Some(time), Some(offset)) = (at.date, at.time, at.offset) else {
        return Err("expires_at needs a date, a time and an offset (2027-01-01T00:00:00Z)".into());
    };
    let days = days_from_civil(i64::from(date.year), i64::from(date.month), i64::from(date.day));
    let offset_minutes = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => i64::from(minutes),
    };
    let seconds = days * 86_400
        + i64::from(time.hour) * 3600
        + i64::from(time.minute) * 60
        + i64::from(time.second)
        - offset_minutes * 60;
    u64::try_from(seconds).map_err(|_| "expires_at is before 1970".into())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, secret: &str, scopes: &[&str]) -> TokenEntry {
        TokenEntry {
            name: name.into(),
            hash: hash_secret(secret),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: None,
            rate_per_second: None,
            burst: None,
        }
    }

    const PEER: &str = "peer-secret-0123456789";

    #[test]
    fn scopes_and_secrets_decide() {
        let auth = Auth::new(&[entry("reader", "r", &["ledger:read"])], PEER).unwrap();
        let read = Need::Scope(Scope::Read);
        assert_eq!(auth.check(read, Some(b"Bearer r")), Ok(Some("reader".into())));
        assert_eq!(auth.check(read, Some(b"bearer  r ")), Ok(Some("reader".into())));
        assert!(matches!(auth.check(read, None), Err(Denied::Unauthenticated(_))));
        assert!(matches!(auth.check(read, Some(b"Basic r")), Err(Denied::Unauthenticated(_))));
        assert!(matches!(auth.check(read, Some(b"Bearer x")), Err(Denied::Unauthenticated(_))));
        assert!(matches!(auth.check(read, Some(&[0xff, 0xfe])), Err(Denied::Unauthenticated(_))));
        let write = Need::Scope(Scope::Write);
        assert!(matches!(auth.check(write, Some(b"Bearer r")), Err(Denied::Forbidden(_))));
        assert!(matches!(auth.check(Need::Peer, Some(b"Bearer r")), Err(Denied::Forbidden(_))));
        let peer = format!("Bearer {PEER}");
        assert!(auth.check(Need::Peer, Some(peer.as_bytes())).is_ok());
        assert_eq!(auth.check(Need::Nothing, None), Ok(None));
        assert_eq!(Auth::open().check(write, None), Ok(None));
    }

    #[test]
    fn expired_tokens_and_rate_limits() {
        let mut old = entry("old", "o", &["ledger:read"]);
        old.expires_at = Some("2020-01-01T00:00:00Z".parse().unwrap());
        let mut limited = entry("limited", "l", &["ledger:read"]);
        limited.rate_per_second = Some(1);
        limited.burst = Some(2);
        let auth = Auth::new(&[old, limited], PEER).unwrap();
        let read = Need::Scope(Scope::Read);
        let error = auth.check(read, Some(b"Bearer o")).unwrap_err();
        assert!(error.to_string().contains("expired"), "{error}");
        assert!(auth.check(read, Some(b"Bearer l")).is_ok());
        assert!(auth.check(read, Some(b"Bearer l")).is_ok());
        assert!(matches!(auth.check(read, Some(b"Bearer l")), Err(Denied::RateLimited { .. })));
    }

    #[test]
    fn bad_entries_are_named() {
        let mut bad = entry("bad", "b", &["ledger:everything"]);
        let error = Auth::new(&[bad.clone()], PEER).unwrap_err();
        assert!(error.contains("\"bad\"") && error.contains("unknown scope"), "{error}");
        bad.scopes = vec!["admin".into()];
        bad.hash = "sha256:00".into();
        assert!(Auth::new(&[bad], PEER).unwrap_err().contains("blake3:"));
        let twice = [entry("a", "same", &["admin"]), entry("b", "same", &["admin"])];
        assert!(Auth::new(&twice, PEER).unwrap_err().contains("twice"));
        assert!(Auth::new(&[], "short").unwrap_err().contains("16"));
    }

    #[test]
    fn dates_convert_to_unix_seconds() {
        let at = |s: &str| unix_seconds(&s.parse().unwrap());
        assert_eq!(at("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(at("2027-01-01T00:00:00Z"), Ok(1_798_761_600));
        assert_eq!(at("2000-03-01T01:00:00+01:00"), Ok(951_868_800));
        assert!(at("2027-01-01").is_err());
    }

    #[test]
    fn new_secrets_differ_and_hash_stably() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 64);
        assert_eq!(hash_secret(&a), hash_secret(&a));
    }
}
