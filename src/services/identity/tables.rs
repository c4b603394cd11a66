//! The Identity service's tables: the only file of the service with SQL.
//!
//! Secrets are stored sealed by the token vault (`vault.rs`): columns named `sealed_*` hold
//! ciphertext, never a secret in the clear. Everything a client was told exists is a row here, so
//! it survives a restart and a kill -9 (the store commits with `synchronous=FULL`).
//!
//! The service's schema steps are numbered by the `meta` key `schema.identity` (the database's
//! `user_version` belongs to the store's shared migrations), applied when the service opens.
//! Append only: never edit a shipped step.

use std::collections::BTreeMap;

use rusqlite::{params, Row};

use crate::kernel::error::{Error, Result};
use crate::kernel::store::Tx;

const SCHEMA_KEY: &str = "schema.identity";

/// Identity's schema steps.
const MIGRATIONS: &[&str] = &[
    // 1: workload identities, credential providers, vault tokens, USER_FEDERATION sessions, token
    // vault settings, the emulator's own sealed keys, the built-in issuer's authorization codes
    r#"
CREATE TABLE identity_workloads (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    account      TEXT NOT NULL,
    region       TEXT NOT NULL,
    name         TEXT NOT NULL,
    arn          TEXT NOT NULL,
    return_urls  TEXT NOT NULL,
    runtime_id   TEXT,
    tags         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (account, region, name)
);
CREATE TABLE identity_providers (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    account      TEXT NOT NULL,
    region       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    arn          TEXT NOT NULL,
    vendor       TEXT,
    config       TEXT NOT NULL,
    sealed_secret BLOB,
    secret_arn   TEXT NOT NULL,
    callback_id  TEXT UNIQUE,
    tags         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (account, region, kind, name)
);
CREATE TABLE identity_tokens (
    account      TEXT NOT NULL,
    region       TEXT NOT NULL,
    provider     TEXT NOT NULL,
    workload     TEXT NOT NULL,
    user_key     TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    sealed_token BLOB NOT NULL,
    expires_at   INTEGER,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (account, region, provider, workload, user_key, scopes)
);
CREATE TABLE identity_auth_sessions (
    session_uri  TEXT PRIMARY KEY,
    account      TEXT NOT NULL,
    region       TEXT NOT NULL,
    provider     TEXT NOT NULL,
    workload     TEXT NOT NULL,
    user_key     TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    return_url   TEXT,
    sealed_request BLOB NOT NULL,
    state        TEXT NOT NULL UNIQUE,
    status       TEXT NOT NULL,
    sealed_token BLOB,
    failure      TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE TABLE identity_token_vaults (
    account      TEXT NOT NULL,
    region       TEXT NOT NULL,
    vault_id     TEXT NOT NULL,
    key_type     TEXT NOT NULL,
    kms_key_arn  TEXT,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (account, region, vault_id)
);
CREATE TABLE identity_keys (
    name         TEXT PRIMARY KEY,
    sealed_key   BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE TABLE identity_issuer_codes (
    code_hash    TEXT PRIMARY KEY,
    sealed_grant BLOB NOT NULL,
    expires_at   INTEGER NOT NULL
);
"#,
];

/// Bring Identity's tables up to date inside one store transaction.
pub fn migrate(tx: &Tx<'_>) -> Result<()> {
    let found: i64 = tx
        .query_opt("SELECT value FROM meta WHERE key = ?1", params![SCHEMA_KEY], |r| r.get::<_, String>(0))?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(Error::internal(format!(
            "the identity tables have schema version {found}, newer than this build understands ({known}); \
             upgrade agentcore-local or use another --data-dir"
        )));
    }
    for sql in MIGRATIONS.iter().skip(found as usize) {
        tx.txn.execute_batch(sql).map_err(crate::kernel::store::db_error)?;
    }
    tx.exec(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![SCHEMA_KEY, known.to_string()],
    )
    .map(drop)
}

fn json_col<T: serde::de::DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

/// A workload identity. `runtime_id` is set for the one each agent runtime owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRow {
    pub seq: i64,
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub return_urls: Vec<String>,
    pub runtime_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const WORKLOAD_COLS: &str = "seq, account, region, name, arn, return_urls, runtime_id, tags, created_at, updated_at";

fn workload_row(row: &Row<'_>) -> rusqlite::Result<WorkloadRow> {
    Ok(WorkloadRow {
        seq: row.get(0)?,
        account: row.get(1)?,
        region: row.get(2)?,
        name: row.get(3)?,
        arn: row.get(4)?,
        return_urls: json_col(row, 5)?,
        runtime_id: row.get(6)?,
        tags: json_col(row, 7)?,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    ApiKey,
    OAuth2,
}

impl ProviderKind {
    fn as_str(self) -> &'static str {
        match self {
            ProviderKind::ApiKey => "apikey",
            ProviderKind::OAuth2 => "oauth2",
        }
    }
}

/// A credential provider: its non-secret configuration as the caller sent it (`config`, JSON) and
/// its secret (API key or client secret) sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRow {
    pub seq: i64,
    pub account: String,
    pub region: String,
    pub kind: ProviderKind,
    pub name: String,
    pub arn: String,
    pub vendor: Option<String>,
    pub config: serde_json::Value,
    pub sealed_secret: Option<Vec<u8>>,
    pub secret_arn: String,
    /// The id in the provider's OAuth2 callback URL (`/identities/oauth2/callback/{id}`).
    pub callback_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const PROVIDER_COLS: &str = "seq, account, region, kind, name, arn, vendor, config, sealed_secret, secret_arn, callback_id, tags, created_at, updated_at";

fn provider_row(row: &Row<'_>) -> rusqlite::Result<ProviderRow> {
    let kind: String = row.get(3)?;
    Ok(ProviderRow {
        seq: row.get(0)?,
        account: row.get(1)?,
        region: row.get(2)?,
        kind: if kind == "oauth2" { ProviderKind::OAuth2 } else { ProviderKind::ApiKey },
        name: row.get(4)?,
        arn: row.get(5)?,
        vendor: row.get(6)?,
        config: json_col(row, 7)?,
        sealed_secret: row.get(8)?,
        secret_arn: row.get(9)?,
        callback_id: row.get(10)?,
        tags: json_col(row, 11)?,
        created_at: row.get(12)?,
        updated_at: row.get(13)?,
    })
}

/// Where a vault token belongs: M2M tokens have an empty workload and user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKey {
    pub account: String,
    pub region: String,
    pub provider: String,
    pub workload: String,
    pub user_key: String,
    /// Requested scopes, sorted and space-joined.
    pub scopes: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub sealed_token: Vec<u8>,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Waiting for the user to authorize at the provider.
    InProgress,
    /// The provider answered with a token; waiting for CompleteResourceTokenAuth.
    Authorized,
    /// Bound to its user; the token is in the vault.
    Completed,
    Failed,
}

impl SessionStatus {
    fn as_str(self) -> &'static str {
        match self {
            SessionStatus::InProgress => "IN_PROGRESS",
            SessionStatus::Authorized => "AUTHORIZED",
            SessionStatus::Completed => "COMPLETED",
            SessionStatus::Failed => "FAILED",
        }
    }

    fn parse(s: &str) -> SessionStatus {
        match s {
            "AUTHORIZED" => SessionStatus::Authorized,
            "COMPLETED" => SessionStatus::Completed,
            "FAILED" => SessionStatus::Failed,
            _ => SessionStatus::InProgress,
        }
    }
}

/// A USER_FEDERATION authorization in flight (or finished).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub session_uri: String,
    pub token_key: TokenKey,
    pub return_url: Option<String>,
    /// What the authorization request needs later (PKCE verifier, custom state and parameters),
    /// sealed since the verifier is a secret.
    pub sealed_request: Vec<u8>,
    /// The OAuth2 `state` sent to the provider: finds the session again on the callback.
    pub state: String,
    pub status: SessionStatus,
    pub sealed_token: Option<Vec<u8>>,
    pub failure: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

const SESSION_COLS: &str = "session_uri, account, region, provider, workload, user_key, scopes, return_url, sealed_request, state, status, sealed_token, failure, created_at, expires_at";

fn session_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
    let status: String = row.get(10)?;
    Ok(SessionRow {
        session_uri: row.get(0)?,
        token_key: TokenKey {
            account: row.get(1)?,
            region: row.get(2)?,
            provider: row.get(3)?,
            workload: row.get(4)?,
            user_key: row.get(5)?,
            scopes: row.get(6)?,
        },
        return_url: row.get(7)?,
        sealed_request: row.get(8)?,
        state: row.get(9)?,
        status: SessionStatus::parse(&status),
        sealed_token: row.get(11)?,
        failure: row.get(12)?,
        created_at: row.get(13)?,
        expires_at: row.get(14)?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultRow {
    pub vault_id: String,
    pub key_type: String,
    pub kms_key_arn: Option<String>,
    pub updated_at: i64,
}

/// The Identity service's queries inside one store transaction. A wrapper of its own (rather
/// than more `impl Tx` methods) keeps its names (`session`, `token`, `key`) out of the namespace
/// other services' queries share.
pub struct Tables<'a, 'tx> {
    tx: &'a Tx<'tx>,
}

impl<'a, 'tx> Tables<'a, 'tx> {
    pub fn new(tx: &'a Tx<'tx>) -> Self {
        Tables { tx }
    }

    // --- workload identities ---

    pub fn workload(&self, account: &str, region: &str, name: &str) -> Result<Option<WorkloadRow>> {
        self.tx.query_opt(
            &format!("SELECT {WORKLOAD_COLS} FROM identity_workloads WHERE account = ?1 AND region = ?2 AND name = ?3"),
            params![account, region, name],
            workload_row,
        )
    }

    pub fn insert_workload(&self, w: &WorkloadRow) -> Result<WorkloadRow> {
        self.tx.exec(
            "INSERT INTO identity_workloads (account, region, name, arn, return_urls, runtime_id, tags, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                w.account,
                w.region,
                w.name,
                w.arn,
                to_json(&w.return_urls),
                w.runtime_id,
                to_json(&w.tags),
                w.created_at,
                w.updated_at
            ],
        )?;
        Ok(WorkloadRow { seq: self.tx.txn.last_insert_rowid(), ..w.clone() })
    }

    pub fn update_workload_return_urls(&self, seq: i64, urls: &[String], now: i64) -> Result<()> {
        self.tx
            .exec(
                "UPDATE identity_workloads SET return_urls = ?1, updated_at = ?2 WHERE seq = ?3",
                params![to_json(&urls), now, seq],
            )
            .map(drop)
    }

    pub fn delete_workload(&self, seq: i64) -> Result<()> {
        self.tx.exec("DELETE FROM identity_workloads WHERE seq = ?1", params![seq]).map(drop)
    }

    /// Up to `limit` workload identities after position `after`, in creation order.
    pub fn workloads(&self, account: &str, region: &str, after: i64, limit: usize) -> Result<Vec<WorkloadRow>> {
        self.tx.query_all(
            &format!(
                "SELECT {WORKLOAD_COLS} FROM identity_workloads WHERE account = ?1 AND region = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4"
            ),
            params![account, region, after, limit as i64],
            workload_row,
        )
    }

    /// The workload identity a runtime owns.
    pub fn runtime_workload(&self, runtime_id: &str) -> Result<Option<WorkloadRow>> {
        self.tx.query_opt(
            &format!("SELECT {WORKLOAD_COLS} FROM identity_workloads WHERE runtime_id = ?1"),
            params![runtime_id],
            workload_row,
        )
    }

    /// Runtime ids that own a workload identity.
    pub fn runtime_owned_workloads(&self) -> Result<Vec<String>> {
        self.tx.query_all("SELECT runtime_id FROM identity_workloads WHERE runtime_id IS NOT NULL", [], |r| r.get(0))
    }

    /// Tokens kept for a workload's users go with the workload.
    pub fn delete_workload_tokens(&self, account: &str, region: &str, workload: &str) -> Result<()> {
        self.tx
            .exec(
                "DELETE FROM identity_tokens WHERE account = ?1 AND region = ?2 AND workload = ?3",
                params![account, region, workload],
            )
            .map(drop)
    }

    // --- credential providers ---

    pub fn provider(&self, account: &str, region: &str, kind: ProviderKind, name: &str) -> Result<Option<ProviderRow>> {
        self.tx.query_opt(
            &format!(
                "SELECT {PROVIDER_COLS} FROM identity_providers WHERE account = ?1 AND region = ?2 AND kind = ?3 AND name = ?4"
            ),
            params![account, region, kind.as_str(), name],
            provider_row,
        )
    }

    pub fn provider_by_callback(&self, callback_id: &str) -> Result<Option<ProviderRow>> {
        self.tx.query_opt(
            &format!("SELECT {PROVIDER_COLS} FROM identity_providers WHERE callback_id = ?1"),
            params![callback_id],
            provider_row,
        )
    }

    pub fn insert_provider(&self, p: &ProviderRow) -> Result<ProviderRow> {
        self.tx.exec(
            "INSERT INTO identity_providers (account, region, kind, name, arn, vendor, config, sealed_secret, secret_arn,
                 callback_id, tags, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                p.account,
                p.region,
                p.kind.as_str(),
                p.name,
                p.arn,
                p.vendor,
                p.config.to_string(),
                p.sealed_secret,
                p.secret_arn,
                p.callback_id,
                to_json(&p.tags),
                p.created_at,
                p.updated_at
            ],
        )?;
        Ok(ProviderRow { seq: self.tx.txn.last_insert_rowid(), ..p.clone() })
    }

    /// Replace a provider's configuration and secret (UpdateApiKey/Oauth2CredentialProvider).
    pub fn update_provider(
        &self,
        seq: i64,
        vendor: Option<&str>,
        config: &serde_json::Value,
        sealed_secret: Option<&[u8]>,
        now: i64,
    ) -> Result<()> {
        self.tx
            .exec(
                "UPDATE identity_providers SET vendor = ?1, config = ?2, sealed_secret = ?3, updated_at = ?4 WHERE seq = ?5",
                params![vendor, config.to_string(), sealed_secret, now, seq],
            )
            .map(drop)
    }

    pub fn delete_provider(&self, p: &ProviderRow) -> Result<()> {
        self.tx.exec("DELETE FROM identity_providers WHERE seq = ?1", params![p.seq])?;
        // Tokens and sessions of a deleted provider go with it: a new provider of the same name
        // must not find them.
        self.tx.exec(
            "DELETE FROM identity_tokens WHERE account = ?1 AND region = ?2 AND provider = ?3",
            params![p.account, p.region, p.name],
        )?;
        self.tx
            .exec(
                "DELETE FROM identity_auth_sessions WHERE account = ?1 AND region = ?2 AND provider = ?3",
                params![p.account, p.region, p.name],
            )
            .map(drop)
    }

    pub fn providers(
        &self,
        account: &str,
        region: &str,
        kind: ProviderKind,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ProviderRow>> {
        self.tx.query_all(
            &format!(
                "SELECT {PROVIDER_COLS} FROM identity_providers
                 WHERE account = ?1 AND region = ?2 AND kind = ?3 AND seq > ?4 ORDER BY seq LIMIT ?5"
            ),
            params![account, region, kind.as_str(), after, limit as i64],
            provider_row,
        )
    }

    // --- vault tokens ---

    pub fn token(&self, k: &TokenKey) -> Result<Option<TokenRow>> {
        self.tx.query_opt(
            "SELECT sealed_token, expires_at FROM identity_tokens
             WHERE account = ?1 AND region = ?2 AND provider = ?3 AND workload = ?4 AND user_key = ?5 AND scopes = ?6",
            params![k.account, k.region, k.provider, k.workload, k.user_key, k.scopes],
            |r| Ok(TokenRow { sealed_token: r.get(0)?, expires_at: r.get(1)? }),
        )
    }

    pub fn put_token(&self, k: &TokenKey, t: &TokenRow, now: i64) -> Result<()> {
        self.tx
            .exec(
                "INSERT OR REPLACE INTO identity_tokens (account, region, provider, workload, user_key, scopes, sealed_token, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![k.account, k.region, k.provider, k.workload, k.user_key, k.scopes, t.sealed_token, t.expires_at, now],
            )
            .map(drop)
    }

    // --- USER_FEDERATION sessions ---

    pub fn insert_session(&self, s: &SessionRow) -> Result<()> {
        let k = &s.token_key;
        self.tx
            .exec(
                &format!("INSERT INTO identity_auth_sessions ({SESSION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
                params![
                    s.session_uri,
                    k.account,
                    k.region,
                    k.provider,
                    k.workload,
                    k.user_key,
                    k.scopes,
                    s.return_url,
                    s.sealed_request,
                    s.state,
                    s.status.as_str(),
                    s.sealed_token,
                    s.failure,
                    s.created_at,
                    s.expires_at
                ],
            )
            .map(drop)
    }

    pub fn session(&self, session_uri: &str) -> Result<Option<SessionRow>> {
        self.tx.query_opt(
            &format!("SELECT {SESSION_COLS} FROM identity_auth_sessions WHERE session_uri = ?1"),
            params![session_uri],
            session_row,
        )
    }

    pub fn session_by_state(&self, state: &str) -> Result<Option<SessionRow>> {
        self.tx.query_opt(
            &format!("SELECT {SESSION_COLS} FROM identity_auth_sessions WHERE state = ?1"),
            params![state],
            session_row,
        )
    }

    pub fn set_session_outcome(
        &self,
        session_uri: &str,
        status: SessionStatus,
        sealed_token: Option<&[u8]>,
        failure: Option<&str>,
    ) -> Result<()> {
        self.tx
            .exec(
                "UPDATE identity_auth_sessions SET status = ?1, sealed_token = ?2, failure = ?3 WHERE session_uri = ?4",
                params![status.as_str(), sealed_token, failure, session_uri],
            )
            .map(drop)
    }

    /// Forget sessions that ended long enough ago that no client polls them any more.
    pub fn delete_sessions_expired_before(&self, cutoff: i64) -> Result<()> {
        self.tx.exec("DELETE FROM identity_auth_sessions WHERE expires_at < ?1", params![cutoff]).map(drop)
    }

    // --- token vault settings ---

    pub fn vault(&self, account: &str, region: &str, vault_id: &str) -> Result<Option<VaultRow>> {
        self.tx.query_opt(
            "SELECT vault_id, key_type, kms_key_arn, updated_at FROM identity_token_vaults
             WHERE account = ?1 AND region = ?2 AND vault_id = ?3",
            params![account, region, vault_id],
            |r| {
                Ok(VaultRow { vault_id: r.get(0)?, key_type: r.get(1)?, kms_key_arn: r.get(2)?, updated_at: r.get(3)? })
            },
        )
    }

    pub fn put_vault(&self, account: &str, region: &str, v: &VaultRow) -> Result<()> {
        self.tx
            .exec(
                "INSERT OR REPLACE INTO identity_token_vaults (account, region, vault_id, key_type, kms_key_arn, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![account, region, v.vault_id, v.key_type, v.kms_key_arn, v.updated_at],
            )
            .map(drop)
    }

    // --- the emulator's own keys (issuer signing key, workload access token key) ---

    pub fn key(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.tx.query_opt("SELECT sealed_key FROM identity_keys WHERE name = ?1", params![name], |r| r.get(0))
    }

    /// Store a key unless one of that name exists; returns the one stored.
    pub fn key_or_insert(&self, name: &str, sealed: &[u8], now: i64) -> Result<Vec<u8>> {
        self.tx.exec(
            "INSERT OR IGNORE INTO identity_keys (name, sealed_key, created_at) VALUES (?1, ?2, ?3)",
            params![name, sealed, now],
        )?;
        self.key(name)?.ok_or_else(|| Error::internal(format!("key '{name}' vanished")))
    }

    // --- built-in issuer authorization codes ---

    pub fn put_code(&self, code_hash: &str, sealed_grant: &[u8], expires_at: i64) -> Result<()> {
        self.tx
            .exec(
                "INSERT INTO identity_issuer_codes (code_hash, sealed_grant, expires_at) VALUES (?1, ?2, ?3)",
                params![code_hash, sealed_grant, expires_at],
            )
            .map(drop)
    }

    /// Take a code (single use: the row is deleted as it is read); expired codes are swept.
    pub fn take_code(&self, code_hash: &str, now: i64) -> Result<Option<(Vec<u8>, i64)>> {
        let found = self.tx.query_opt(
            "SELECT sealed_grant, expires_at FROM identity_issuer_codes WHERE code_hash = ?1",
            params![code_hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        self.tx.exec(
            "DELETE FROM identity_issuer_codes WHERE code_hash = ?1 OR expires_at < ?2",
            params![code_hash, now],
        )?;
        Ok(found)
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_tables<T>(f: impl FnOnce(&Tables<'_, '_>) -> T) -> T {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);").unwrap();
        let txn = conn.transaction().unwrap();
        let tx = Tx::new(&txn);
        migrate(&tx).unwrap();
        migrate(&tx).unwrap(); // a second open finds the tables up to date
        f(&Tables::new(&tx))
    }

    #[test]
    fn workloads_round_trip_and_page_in_creation_order() {
        with_tables(|t| {
            for name in ["a", "b", "c"] {
                t.insert_workload(&WorkloadRow {
                    seq: 0,
                    account: "1".into(),
                    region: "r".into(),
                    name: name.into(),
                    arn: format!("arn:{name}"),
                    return_urls: vec!["http://localhost/cb".into()],
                    runtime_id: (name == "b").then(|| "rt-b".into()),
                    tags: BTreeMap::new(),
                    created_at: 1,
                    updated_at: 1,
                })
                .unwrap();
            }
            let first = t.workloads("1", "r", 0, 2).unwrap();
            assert_eq!(first.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
            let rest = t.workloads("1", "r", first[1].seq, 2).unwrap();
            assert_eq!(rest.len(), 1);
            assert_eq!(t.runtime_workload("rt-b").unwrap().unwrap().name, "b");
            assert_eq!(t.runtime_owned_workloads().unwrap(), ["rt-b"]);
            assert_eq!(t.workload("1", "r", "a").unwrap().unwrap().return_urls, ["http://localhost/cb"]);
            assert!(t.workload("2", "r", "a").unwrap().is_none(), "accounts are separate");
        })
    }

    #[test]
    fn codes_are_single_use() {
        with_tables(|t| {
            t.put_code("h", b"grant", 100).unwrap();
            assert!(t.take_code("h", 50).unwrap().is_some());
            assert!(t.take_code("h", 50).unwrap().is_none());
        })
    }
}
