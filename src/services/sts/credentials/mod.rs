//! Temporary credentials: the execution-role credentials each session's sandbox fetches from the
//! metadata service, and those STS AssumeRole hands to host users.
//!
//! A credential is an `ASIA…` access key id with a secret and a session token derived from the
//! credential key (`keys`), an account (the role's), and an expiry. The store records every
//! issued id durably before it is handed out, so a restarted emulator (and the sessions it
//! re-adopts) keeps accepting it; SigV4 verification reads the in-memory copy only.

pub mod keys;
pub mod principal;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

pub use super::tables::{CredentialSource, IssuedCredentialRow};
use crate::kernel::clock::now_ms;
use crate::kernel::error::{Error, Result};
use crate::kernel::sigv4::Credential;
use crate::kernel::store::Store;
use keys::CredentialKey;
use principal::Role;

/// How long a session's role credentials last, as the service hands them out.
pub const SESSION_CREDENTIAL_LIFETIME: Duration = Duration::from_secs(3600);
/// Issued credentials are remembered this long after they expire, so that late use is told
/// "expired" rather than "invalid".
pub const KEEP_EXPIRED: Duration = Duration::from_secs(24 * 3600);
/// How often expired credentials older than `KEEP_EXPIRED` are forgotten.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// The sandbox asking the metadata service for its credentials.
#[derive(Debug, Clone)]
pub struct SandboxPrincipal {
    pub sandbox_id: String,
    /// The runtime's account (a role ARN without one means this account).
    pub account: String,
    pub role_arn: String,
    pub runtime_id: String,
    /// `None` for a warm-pool spare not yet given to a session.
    pub session_id: Option<String>,
}

impl SandboxPrincipal {
    /// The role session name: the runtime session id (made to fit STS's rules), or for a spare
    /// that has none yet, a name derived from its sandbox.
    pub fn session_name(&self) -> String {
        match &self.session_id {
            Some(id) => principal::session_name_from(id),
            None => format!("warm-{}", &self.sandbox_id[..self.sandbox_id.len().min(12)]),
        }
    }
}

/// A credential as it is handed out: the record plus its secret parts.
#[derive(Debug, Clone)]
pub struct Grant {
    pub row: IssuedCredentialRow,
    pub secret_access_key: String,
    pub session_token: String,
}

/// The identity behind an issued access key, as GetCallerIdentity reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumedRole {
    pub arn: String,
    pub user_id: String,
    pub account: String,
}

#[derive(Default)]
struct Known {
    by_key: HashMap<String, IssuedCredentialRow>,
    /// The newest credential handed to each sandbox.
    newest_for_sandbox: HashMap<String, String>,
    last_purge_ms: i64,
}

impl Known {
    fn remember(&mut self, row: IssuedCredentialRow) {
        if let Some(sandbox) = &row.sandbox_id {
            let newer = self
                .newest_for_sandbox
                .get(sandbox)
                .and_then(|k| self.by_key.get(k))
                .is_none_or(|current| current.issued_at <= row.issued_at);
            if newer {
                self.newest_for_sandbox.insert(sandbox.clone(), row.access_key_id.clone());
            }
        }
        self.by_key.insert(row.access_key_id.clone(), row);
    }

    fn forget_expired_before(&mut self, cutoff_ms: i64) {
        self.by_key.retain(|_, r| r.expires_at >= cutoff_ms);
        let by_key = &self.by_key;
        self.newest_for_sandbox.retain(|_, k| by_key.contains_key(k));
    }
}

pub struct Issuer {
    store: Store,
    key: CredentialKey,
    /// `--lifecycle-time-scale`: credential lifetimes shrink with it, so tests see expiry and rotation.
    time_scale: f64,
    known: Mutex<Known>,
    /// One issuance at a time, so two concurrent metadata requests of a sandbox get one credential.
    issuing: tokio::sync::Mutex<()>,
}

impl Issuer {
    /// Loads the credentials that are still valid (or expired recently) from the store.
    pub async fn open(store: Store, key: CredentialKey, time_scale: f64) -> Result<Issuer> {
        let cutoff = now_ms() - KEEP_EXPIRED.as_millis() as i64;
        let rows = store.read(move |tx| tx.issued_credentials_expiring_after(cutoff)).await?;
        let mut known = Known::default();
        for row in rows {
            known.remember(row);
        }
        Ok(Issuer { store, key, time_scale, known: Mutex::new(known), issuing: tokio::sync::Mutex::new(()) })
    }

    fn known(&self) -> parking_lot::MutexGuard<'_, Known> {
        self.known.lock()
    }

    fn scaled_ms(&self, d: Duration) -> i64 {
        (d.as_secs_f64() * self.time_scale * 1000.0).round().max(1000.0) as i64
    }

    /// The lifetime of a session credential (1 h, times the time scale).
    pub fn session_lifetime_ms(&self) -> i64 {
        self.scaled_ms(SESSION_CREDENTIAL_LIFETIME)
    }

    /// The credential SigV4 verification checks a request against, if `access_key_id` was issued here.
    pub fn credential(&self, access_key_id: &str) -> Option<Credential> {
        let known = self.known();
        let row = known.by_key.get(access_key_id)?;
        Some(Credential {
            access_key_id: row.access_key_id.clone(),
            secret_access_key: self.key.secret_for(&row.access_key_id),
            account_id: row.account.clone(),
            session_token: Some(self.key.session_token_for(&row.access_key_id)),
            expires_at: Some(row.expires_at.div_euclid(1000)),
        })
    }

    /// Who an issued access key speaks for (GetCallerIdentity).
    pub fn assumed_role(&self, access_key_id: &str) -> Option<AssumedRole> {
        let known = self.known();
        let row = known.by_key.get(access_key_id)?;
        let role = Role::parse(&row.role_arn, &row.account)?;
        Some(AssumedRole {
            arn: role.assumed_role_arn(&row.session_name),
            user_id: role.assumed_role_id(&row.session_name),
            account: row.account.clone(),
        })
    }

    /// A metadata-service token for `sandbox_id` (see `keys::CredentialKey::metadata_token`).
    pub fn metadata_token(&self, sandbox_id: &str, expires_ms: i64) -> String {
        self.key.metadata_token(sandbox_id, expires_ms)
    }

    /// The expiry of a metadata token made for `sandbox_id`; `None` if it is not one.
    pub fn check_metadata_token(&self, token: &str, sandbox_id: &str) -> Option<i64> {
        self.key.check_metadata_token(token, sandbox_id)
    }

    fn grant(&self, row: IssuedCredentialRow) -> Grant {
        Grant {
            secret_access_key: self.key.secret_for(&row.access_key_id),
            session_token: self.key.session_token_for(&row.access_key_id),
            row,
        }
    }

    /// The credential a sandbox gets from the metadata service now: the current one while it has
    /// more than half its life left, else a new one (the old one stays valid until it expires, so
    /// SDKs that refresh ahead of expiry never hold a dead credential). A spare that was claimed
    /// since its last credential gets one named after its session.
    pub async fn for_sandbox(&self, who: &SandboxPrincipal) -> Result<Grant> {
        let role = Role::parse(&who.role_arn, &who.account)
            .ok_or_else(|| Error::validation(format!("The runtime's roleArn '{}' is not a role ARN.", who.role_arn)))?;
        let session_name = who.session_name();
        let lifetime = self.session_lifetime_ms();
        let current = |known: &Known| {
            let key = known.newest_for_sandbox.get(&who.sandbox_id)?;
            let row = known.by_key.get(key)?;
            let fresh = row.expires_at - now_ms() > lifetime / 2;
            (fresh && row.role_arn == who.role_arn && row.session_name == session_name).then(|| row.clone())
        };
        if let Some(row) = current(&self.known()) {
            return Ok(self.grant(row));
        }
        let _one_at_a_time = self.issuing.lock().await;
        if let Some(row) = current(&self.known()) {
            return Ok(self.grant(row));
        }
        let now = now_ms();
        let row = IssuedCredentialRow {
            access_key_id: keys::new_access_key_id(),
            account: role.account.clone(),
            role_arn: who.role_arn.clone(),
            session_name,
            source: CredentialSource::Session,
            sandbox_id: Some(who.sandbox_id.clone()),
            runtime_id: Some(who.runtime_id.clone()),
            session_id: who.session_id.clone(),
            issued_at: now,
            expires_at: now + lifetime,
        };
        self.record(row).await
    }

    /// STS AssumeRole / AssumeRoleWithWebIdentity: a credential for `role` valid `duration_secs`
    /// (times the time scale).
    pub async fn assume_role(
        &self,
        role: &Role,
        session_name: &str,
        duration_secs: u64,
        source: CredentialSource,
    ) -> Result<Grant> {
        let now = now_ms();
        let row = IssuedCredentialRow {
            access_key_id: keys::new_access_key_id(),
            account: role.account.clone(),
            role_arn: role.arn.clone(),
            session_name: session_name.to_string(),
            source,
            sandbox_id: None,
            runtime_id: None,
            session_id: None,
            issued_at: now,
            expires_at: now + self.scaled_ms(Duration::from_secs(duration_secs)),
        };
        self.record(row).await
    }

    /// Commit `row` (and, now and then, forget long-expired ones), then make it known.
    async fn record(&self, row: IssuedCredentialRow) -> Result<Grant> {
        let now = now_ms();
        let cutoff = now - KEEP_EXPIRED.as_millis() as i64;
        let purge = now - self.known().last_purge_ms >= PURGE_INTERVAL.as_millis() as i64;
        let stored = row.clone();
        self.store
            .write(move |tx| {
                if purge {
                    tx.purge_issued_credentials(cutoff)?;
                }
                tx.insert_issued_credential(&stored)
            })
            .await?;
        let mut known = self.known();
        if purge {
            known.forget_expired_before(cutoff);
            known.last_purge_ms = now;
        }
        known.remember(row.clone());
        drop(known);
        tracing::info!(
            access_key_id = %row.access_key_id,
            role = %row.role_arn,
            session_name = %row.session_name,
            source = row.source.as_str(),
            expires_in_s = (row.expires_at - now) / 1000,
            "issued temporary credentials"
        );
        Ok(self.grant(row))
    }
}

impl crate::kernel::sigv4::CredentialLookup for Issuer {
    fn credential(&self, access_key_id: &str) -> Option<std::borrow::Cow<'_, Credential>> {
        Issuer::credential(self, access_key_id).map(std::borrow::Cow::Owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(sandbox: &str, session: Option<&str>) -> SandboxPrincipal {
        SandboxPrincipal {
            sandbox_id: sandbox.into(),
            account: "123456789012".into(),
            role_arn: "arn:aws:iam::111122223333:role/AgentRole".into(),
            runtime_id: "rt-1".into(),
            session_id: session.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn a_sandbox_keeps_its_credential_until_half_life_and_survives_reopen() {
        let store = Store::in_memory().unwrap();
        let key = CredentialKey::ephemeral();
        let issuer = Issuer::open(store.clone(), key.clone(), 1.0).await.unwrap();
        let first = issuer.for_sandbox(&principal("sbx-a", Some("session-1"))).await.unwrap();
        assert!(first.row.access_key_id.starts_with("ASIA"));
        assert_eq!(first.row.account, "111122223333");
        let again = issuer.for_sandbox(&principal("sbx-a", Some("session-1"))).await.unwrap();
        assert_eq!(first.row.access_key_id, again.row.access_key_id);
        let other = issuer.for_sandbox(&principal("sbx-b", Some("session-2"))).await.unwrap();
        assert_ne!(first.row.access_key_id, other.row.access_key_id);

        let cred = issuer.credential(&first.row.access_key_id).unwrap();
        assert_eq!(cred.secret_access_key, first.secret_access_key);
        assert_eq!(cred.session_token.as_deref(), Some(first.session_token.as_str()));
        let who = issuer.assumed_role(&first.row.access_key_id).unwrap();
        assert_eq!(who.arn, "arn:aws:sts::111122223333:assumed-role/AgentRole/session-1");
        assert!(who.user_id.starts_with("AROA") && who.user_id.ends_with(":session-1"));

        let reopened = Issuer::open(store, key, 1.0).await.unwrap();
        assert_eq!(reopened.credential(&first.row.access_key_id).unwrap().secret_access_key, first.secret_access_key);
        let after = reopened.for_sandbox(&principal("sbx-a", Some("session-1"))).await.unwrap();
        assert_eq!(after.row.access_key_id, first.row.access_key_id, "a re-adopted session keeps its credential");
    }

    #[tokio::test]
    async fn claimed_spares_and_aging_credentials_get_new_ones() {
        let issuer = Issuer::open(Store::in_memory().unwrap(), CredentialKey::ephemeral(), 1.0).await.unwrap();
        let spare = issuer.for_sandbox(&principal("sbx-pool", None)).await.unwrap();
        assert!(spare.row.session_name.starts_with("warm-"), "{}", spare.row.session_name);
        let claimed = issuer.for_sandbox(&principal("sbx-pool", Some("session-9"))).await.unwrap();
        assert_ne!(spare.row.access_key_id, claimed.row.access_key_id);
        assert_eq!(claimed.row.session_name, "session-9");
        assert!(issuer.credential(&spare.row.access_key_id).is_some(), "the spare's credential stays valid");

        // Age the current credential past half its life: the next request rotates.
        {
            let mut known = issuer.known();
            let row = known.by_key.get_mut(&claimed.row.access_key_id).unwrap();
            row.expires_at = now_ms() + issuer.session_lifetime_ms() / 2 - 1000;
        }
        let rotated = issuer.for_sandbox(&principal("sbx-pool", Some("session-9"))).await.unwrap();
        assert_ne!(rotated.row.access_key_id, claimed.row.access_key_id);
    }

    #[tokio::test]
    async fn lifetimes_follow_the_time_scale() {
        let issuer = Issuer::open(Store::in_memory().unwrap(), CredentialKey::ephemeral(), 0.01).await.unwrap();
        let role = Role::parse("arn:aws:iam::123456789012:role/R", "123456789012").unwrap();
        let g = issuer.assume_role(&role, "me", 3600, CredentialSource::AssumeRole).await.unwrap();
        let lifetime = g.row.expires_at - g.row.issued_at;
        assert_eq!(lifetime, 36_000);
        assert_eq!(
            issuer.assumed_role(&g.row.access_key_id).unwrap().arn,
            "arn:aws:sts::123456789012:assumed-role/R/me"
        );
    }
}
