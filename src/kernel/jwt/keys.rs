//! Issuer metadata and signing keys, fetched the way AgentCore does: the authorizer's
//! `discoveryUrl` (OIDC discovery or OAuth authorization-server metadata) names the `issuer` and
//! the `jwks_uri`; the JWKS holds the public keys by `kid`.
//!
//! Each issuer's document and keys are cached for [`JWKS_TTL`]. A token signed with a `kid` the
//! cache does not know makes one fresh fetch (the issuer may have rotated its keys), at most once
//! per [`JWKS_REFETCH_MIN_INTERVAL`] so that a stream of forged `kid`s cannot turn the emulator
//! into a load generator against the issuer.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::JwtError;

/// How long an issuer's metadata and keys are trusted without asking again.
pub const JWKS_TTL: Duration = Duration::from_secs(3600);
/// The least time between two fetches caused by unknown key ids.
pub const JWKS_REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Discovery documents and key sets are small; anything larger is refused.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// What the emulator knows about one issuer.
#[derive(Debug)]
pub struct IssuerKeys {
    pub issuer: String,
    pub jwks_uri: String,
    keys: Vec<Jwk>,
    fetched_at: Instant,
}

impl IssuerKeys {
    /// The keys that may have signed a token with this `kid` and algorithm: the one named, or,
    /// for a token without `kid`, every key of the algorithm's family.
    fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<&Jwk> {
        self.keys
            .iter()
            .filter(|k| match kid {
                Some(kid) => k.common.key_id.as_deref() == Some(kid),
                None => true,
            })
            .filter(|k| fits(k, alg))
            .collect()
    }
}

/// A key can verify `alg` if its type matches the algorithm's family.
fn fits(key: &Jwk, alg: Algorithm) -> bool {
    use Algorithm::*;
    match &key.algorithm {
        AlgorithmParameters::RSA(_) => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
        AlgorithmParameters::EllipticCurve(_) => matches!(alg, ES256 | ES384),
        _ => false,
    }
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<IssuerKeys>>>>;

/// Issuer metadata and keys by discovery URL.
pub struct KeyCache {
    http: reqwest::Client,
    /// One slot per discovery URL; its async lock makes concurrent misses share one fetch.
    slots: Mutex<HashMap<String, Slot>>,
}

impl KeyCache {
    pub fn new(http: reqwest::Client) -> Self {
        KeyCache { http, slots: Mutex::new(HashMap::new()) }
    }

    fn slot(&self, discovery_url: &str) -> Slot {
        let mut slots = self.slots.lock();
        slots.entry(discovery_url.to_string()).or_default().clone()
    }

    /// The issuer's metadata and keys, fetched if not cached or stale.
    pub async fn issuer(&self, discovery_url: &str) -> Result<Arc<IssuerKeys>, JwtError> {
        let slot = self.slot(discovery_url);
        let mut cached = slot.lock().await;
        if let Some(keys) = cached.as_ref().filter(|k| k.fetched_at.elapsed() < JWKS_TTL) {
            return Ok(keys.clone());
        }
        let fresh = Arc::new(self.fetch(discovery_url).await?);
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// The decoding keys that may have signed a token with `kid` and `alg`; refetches once when
    /// the cached set does not have the `kid`.
    pub async fn keys_for(
        &self,
        discovery_url: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(Arc<IssuerKeys>, Vec<DecodingKey>), JwtError> {
        let mut issuer = self.issuer(discovery_url).await?;
        if issuer.candidates(kid, alg).is_empty() && issuer.fetched_at.elapsed() >= JWKS_REFETCH_MIN_INTERVAL {
            let slot = self.slot(discovery_url);
            let mut cached = slot.lock().await;
            // Another request may have refreshed the set while this one waited.
            let current = cached.clone().unwrap_or_else(|| issuer.clone());
            issuer = if current.candidates(kid, alg).is_empty()
                && current.fetched_at.elapsed() >= JWKS_REFETCH_MIN_INTERVAL
            {
                tracing::debug!(discovery_url, ?kid, "unknown signing key id; fetching the issuer's keys again");
                let fresh = Arc::new(self.fetch(discovery_url).await?);
                *cached = Some(fresh.clone());
                fresh
            } else {
                current
            };
        }
        let candidates = issuer.candidates(kid, alg);
        if candidates.is_empty() {
            return Err(JwtError::UnknownKey { kid: kid.map(String::from), jwks_uri: issuer.jwks_uri.clone() });
        }
        let keys = candidates
            .into_iter()
            .filter_map(|jwk| match DecodingKey::from_jwk(jwk) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::warn!(jwks_uri = %issuer.jwks_uri, kid = ?jwk.common.key_id, error = %e, "unusable key in the issuer's JWKS");
                    None
                }
            })
            .collect();
        Ok((issuer, keys))
    }

    async fn fetch(&self, discovery_url: &str) -> Result<IssuerKeys, JwtError> {
        let discovery = |reason: String| JwtError::Discovery { url: discovery_url.to_string(), reason };
        check_fetchable(discovery_url).map_err(discovery)?;
        let metadata: Metadata = self.get_json(discovery_url).await.map_err(discovery)?;
        check_fetchable(&metadata.jwks_uri)
            .map_err(|e| discovery(format!("its jwks_uri {}: {e}", metadata.jwks_uri)))?;
        let set: JwkSet = self
            .get_json(&metadata.jwks_uri)
            .await
            .map_err(|e| discovery(format!("its jwks_uri {}: {e}", metadata.jwks_uri)))?;
        tracing::debug!(discovery_url, issuer = %metadata.issuer, keys = set.keys.len(), "fetched issuer keys");
        Ok(IssuerKeys {
            issuer: metadata.issuer,
            jwks_uri: metadata.jwks_uri,
            keys: set.keys,
            fetched_at: Instant::now(),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let resp = self.http.get(url).header("accept", "application/json").send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("answered HTTP {}", status.as_u16()));
        }
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("is not the expected JSON document: {e}"))
    }
}

/// AgentCore fetches issuer metadata over HTTPS only; locally, plain HTTP is allowed for an issuer
/// on this machine (the built-in issuer, or one a test starts), never across the network.
pub fn check_fetchable(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a URL ({e})"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(parsed.host()) => Ok(()),
        "http" => Err("uses http:// for a host that is not loopback; only https:// (or http:// on 127.0.0.1, ::1 or localhost) is fetched".into()),
        other => Err(format!("uses the unsupported scheme '{other}'")),
    }
}

fn is_loopback_host(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback() {
        assert!(
            check_fetchable("https://cognito-idp.us-east-1.amazonaws.com/x/.well-known/openid-configuration").is_ok()
        );
        assert!(check_fetchable("http://127.0.0.1:4599/.well-known/openid-configuration").is_ok());
        assert!(check_fetchable("http://localhost:8080/.well-known/openid-configuration").is_ok());
        assert!(check_fetchable("http://[::1]:8080/.well-known/openid-configuration").is_ok());
        assert!(check_fetchable("http://example.com/.well-known/openid-configuration").is_err());
        assert!(check_fetchable("ftp://127.0.0.1/x").is_err());
    }
}
