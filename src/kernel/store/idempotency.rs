//! `clientToken` records, shared by every control plane: a retried create returns what the first
//! request produced, and a reused token with a different request is refused.

use rusqlite::params;

use super::Tx;
use crate::kernel::error::Result;

/// A remembered `clientToken`: what it was used for, so a retry gets the same resource back.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    /// Identifies the resource the first request produced (operation specific, e.g. `id#version`).
    pub resource: String,
    pub created_at: i64,
}

impl Tx<'_> {
    pub fn idempotency_record(
        &self,
        account: &str,
        region: &str,
        operation: &str,
        token: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        self.query_opt(
            "SELECT fingerprint, resource, created_at FROM idempotency_tokens WHERE account = ?1 AND region = ?2 AND operation = ?3 AND token = ?4",
            params![account, region, operation, token],
            |r| Ok(IdempotencyRecord { fingerprint: r.get(0)?, resource: r.get(1)?, created_at: r.get(2)? }),
        )
    }

    pub fn put_idempotency_record(
        &self,
        account: &str,
        region: &str,
        operation: &str,
        token: &str,
        record: &IdempotencyRecord,
    ) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO idempotency_tokens (account, region, operation, token, fingerprint, resource, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![account, region, operation, token, record.fingerprint, record.resource, record.created_at],
        )?;
        Ok(())
    }

    pub fn purge_idempotency_records(&self, older_than: i64) -> Result<usize> {
        self.exec("DELETE FROM idempotency_tokens WHERE created_at < ?1", params![older_than])
    }
}
