//! Typed queries, available inside a transaction.

use std::collections::BTreeMap;

use rusqlite::{params, Row};
use serde_json::{Map, Value};

use super::rows::{EndpointRow, ResourceStatus, RuntimeRow, VersionRow};
use crate::kernel::error::{Error, Result};
use crate::kernel::store::db_error;

use crate::kernel::store::Tx;

fn status_of(row: &Row<'_>, idx: usize) -> rusqlite::Result<ResourceStatus> {
    let s: String = row.get(idx)?;
    ResourceStatus::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown status {s}").into(),
        )
    })
}

const RUNTIME_COLS: &str = "seq, id, account, region, name, arn, created_at, latest_version, deleting";

fn runtime_row(row: &Row<'_>) -> rusqlite::Result<RuntimeRow> {
    Ok(RuntimeRow {
        seq: row.get(0)?,
        id: row.get(1)?,
        account: row.get(2)?,
        region: row.get(3)?,
        name: row.get(4)?,
        arn: row.get(5)?,
        created_at: row.get(6)?,
        latest_version: row.get(7)?,
        deleting: row.get(8)?,
    })
}

const VERSION_COLS: &str = "runtime_id, version, config, status, failure_reason, created_at, updated_at, artifact";

fn version_row(row: &Row<'_>) -> rusqlite::Result<VersionRow> {
    let config: String = row.get(2)?;
    let config: Map<String, Value> = serde_json::from_str(&config)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(VersionRow {
        runtime_id: row.get(0)?,
        version: row.get(1)?,
        config,
        status: status_of(row, 3)?,
        failure_reason: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
        artifact: row.get(7)?,
    })
}

const ENDPOINT_COLS: &str = "seq, runtime_id, name, id, arn, live_version, target_version, description, status, failure_reason, created_at, updated_at";

fn endpoint_row(row: &Row<'_>) -> rusqlite::Result<EndpointRow> {
    Ok(EndpointRow {
        seq: row.get(0)?,
        runtime_id: row.get(1)?,
        name: row.get(2)?,
        id: row.get(3)?,
        arn: row.get(4)?,
        live_version: row.get(5)?,
        target_version: row.get(6)?,
        description: row.get(7)?,
        status: status_of(row, 8)?,
        failure_reason: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

impl Tx<'_> {
    // ---- runtimes ----
    pub fn runtime(&self, account: &str, region: &str, id: &str) -> Result<Option<RuntimeRow>> {
        self.query_opt(
            &format!("SELECT {RUNTIME_COLS} FROM runtimes WHERE account = ?1 AND region = ?2 AND id = ?3"),
            params![account, region, id],
            runtime_row,
        )
    }

    pub fn runtime_by_id(&self, id: &str) -> Result<Option<RuntimeRow>> {
        self.query_opt(&format!("SELECT {RUNTIME_COLS} FROM runtimes WHERE id = ?1"), params![id], runtime_row)
    }

    pub fn runtime_by_name(&self, account: &str, region: &str, name: &str) -> Result<Option<RuntimeRow>> {
        self.query_opt(
            &format!("SELECT {RUNTIME_COLS} FROM runtimes WHERE account = ?1 AND region = ?2 AND name = ?3"),
            params![account, region, name],
            runtime_row,
        )
    }

    /// Runtimes of one account and region in creation order, after `after_seq`.
    pub fn list_runtimes(&self, account: &str, region: &str, after_seq: i64, limit: usize) -> Result<Vec<RuntimeRow>> {
        self.query_all(
            &format!("SELECT {RUNTIME_COLS} FROM runtimes WHERE account = ?1 AND region = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4"),
            params![account, region, after_seq, limit as i64],
            runtime_row,
        )
    }

    /// Every runtime of every account and Region (the local dashboard).
    pub fn all_runtimes(&self, limit: usize) -> Result<Vec<RuntimeRow>> {
        self.query_all(
            &format!("SELECT {RUNTIME_COLS} FROM runtimes ORDER BY seq LIMIT ?1"),
            params![limit as i64],
            runtime_row,
        )
    }

    /// (account, Region, id) of every runtime not being deleted: what owns a workload identity.
    pub fn live_runtime_keys(&self) -> Result<Vec<(String, String, String)>> {
        self.query_all("SELECT account, region, id FROM runtimes WHERE deleting = 0", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
    }

    pub fn runtimes_deleting(&self) -> Result<Vec<RuntimeRow>> {
        self.query_all(&format!("SELECT {RUNTIME_COLS} FROM runtimes WHERE deleting = 1 ORDER BY seq"), [], runtime_row)
    }

    /// Inserts and returns the row with its sequence number.
    pub fn insert_runtime(&self, r: &RuntimeRow) -> Result<RuntimeRow> {
        self.exec(
            "INSERT INTO runtimes (id, account, region, name, arn, created_at, latest_version, deleting) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![r.id, r.account, r.region, r.name, r.arn, r.created_at, r.latest_version, r.deleting],
        )?;
        Ok(RuntimeRow { seq: self.txn.last_insert_rowid(), ..r.clone() })
    }

    pub fn set_latest_version(&self, runtime_id: &str, version: u32) -> Result<()> {
        self.exec("UPDATE runtimes SET latest_version = ?2 WHERE id = ?1", params![runtime_id, version])?;
        Ok(())
    }

    pub fn mark_runtime_deleting(&self, runtime_id: &str) -> Result<()> {
        self.exec("UPDATE runtimes SET deleting = 1 WHERE id = ?1", params![runtime_id])?;
        Ok(())
    }

    /// Removes a runtime with its versions, endpoints and every tag of them.
    pub fn delete_runtime(&self, runtime: &RuntimeRow) -> Result<()> {
        self.exec(
            "DELETE FROM tags WHERE resource_arn = ?1 OR resource_arn LIKE ?2 ESCAPE '\\'",
            params![runtime.arn, format!("{}/runtime-endpoint/%", like_escape(&runtime.arn))],
        )?;
        self.exec("DELETE FROM runtimes WHERE id = ?1", params![runtime.id])?;
        Ok(())
    }

    // ---- versions ----

    pub fn version(&self, runtime_id: &str, version: u32) -> Result<Option<VersionRow>> {
        self.query_opt(
            &format!("SELECT {VERSION_COLS} FROM runtime_versions WHERE runtime_id = ?1 AND version = ?2"),
            params![runtime_id, version],
            version_row,
        )
    }

    pub fn list_versions(&self, runtime_id: &str, before_version: u32, limit: usize) -> Result<Vec<VersionRow>> {
        // Newest first, as the console and CLI show them.
        self.query_all(
            &format!("SELECT {VERSION_COLS} FROM runtime_versions WHERE runtime_id = ?1 AND version < ?2 ORDER BY version DESC LIMIT ?3"),
            params![runtime_id, before_version, limit as i64],
            version_row,
        )
    }

    pub fn count_versions(&self, runtime_id: &str) -> Result<u32> {
        self.txn
            .query_row("SELECT COUNT(*) FROM runtime_versions WHERE runtime_id = ?1", params![runtime_id], |r| r.get(0))
            .map_err(db_error)
    }

    pub fn versions_in_progress(&self) -> Result<Vec<VersionRow>> {
        self.query_all(
            &format!("SELECT {VERSION_COLS} FROM runtime_versions WHERE status IN ('CREATING','UPDATING','DELETING') ORDER BY created_at"),
            [],
            version_row,
        )
    }

    pub fn insert_version(&self, v: &VersionRow) -> Result<()> {
        let config = serde_json::to_string(&v.config).map_err(|e| Error::internal(e.to_string()))?;
        self.exec(
            "INSERT INTO runtime_versions (runtime_id, version, config, status, failure_reason, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![v.runtime_id, v.version, config, v.status.as_str(), v.failure_reason, v.created_at, v.updated_at],
        )?;
        Ok(())
    }

    pub fn set_version_status(
        &self,
        runtime_id: &str,
        version: u32,
        status: ResourceStatus,
        reason: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.exec(
            "UPDATE runtime_versions SET status = ?3, failure_reason = ?4, updated_at = ?5 WHERE runtime_id = ?1 AND version = ?2",
            params![runtime_id, version, status.as_str(), reason, now],
        )?;
        Ok(())
    }

    pub fn set_version_artifact(&self, runtime_id: &str, version: u32, artifact: Option<&str>) -> Result<()> {
        self.exec(
            "UPDATE runtime_versions SET artifact = ?3 WHERE runtime_id = ?1 AND version = ?2",
            params![runtime_id, version, artifact],
        )?;
        Ok(())
    }

    pub fn delete_version(&self, runtime_id: &str, version: u32) -> Result<()> {
        self.exec("DELETE FROM runtime_versions WHERE runtime_id = ?1 AND version = ?2", params![runtime_id, version])?;
        Ok(())
    }

    // ---- endpoints ----

    pub fn endpoint(&self, runtime_id: &str, name: &str) -> Result<Option<EndpointRow>> {
        self.query_opt(
            &format!("SELECT {ENDPOINT_COLS} FROM runtime_endpoints WHERE runtime_id = ?1 AND name = ?2"),
            params![runtime_id, name],
            endpoint_row,
        )
    }

    pub fn list_endpoints(&self, runtime_id: &str, after_seq: i64, limit: usize) -> Result<Vec<EndpointRow>> {
        self.query_all(
            &format!("SELECT {ENDPOINT_COLS} FROM runtime_endpoints WHERE runtime_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"),
            params![runtime_id, after_seq, limit as i64],
            endpoint_row,
        )
    }

    pub fn count_endpoints(&self, runtime_id: &str) -> Result<u32> {
        self.txn
            .query_row("SELECT COUNT(*) FROM runtime_endpoints WHERE runtime_id = ?1", params![runtime_id], |r| {
                r.get(0)
            })
            .map_err(db_error)
    }

    pub fn endpoints_in_progress(&self) -> Result<Vec<EndpointRow>> {
        self.query_all(
            &format!("SELECT {ENDPOINT_COLS} FROM runtime_endpoints WHERE status IN ('CREATING','UPDATING','DELETING') ORDER BY seq"),
            [],
            endpoint_row,
        )
    }

    /// Whether any endpoint serves or is moving to `version`.
    pub fn version_in_use(&self, runtime_id: &str, version: u32) -> Result<Option<String>> {
        self.query_opt(
            "SELECT name FROM runtime_endpoints WHERE runtime_id = ?1 AND (live_version = ?2 OR target_version = ?2) ORDER BY seq LIMIT 1",
            params![runtime_id, version],
            |r| r.get(0),
        )
    }

    pub fn insert_endpoint(&self, e: &EndpointRow) -> Result<EndpointRow> {
        self.exec(
            "INSERT INTO runtime_endpoints (runtime_id, name, id, arn, live_version, target_version, description, status, failure_reason, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![e.runtime_id, e.name, e.id, e.arn, e.live_version, e.target_version, e.description, e.status.as_str(), e.failure_reason, e.created_at, e.updated_at],
        )?;
        Ok(EndpointRow { seq: self.txn.last_insert_rowid(), ..e.clone() })
    }

    /// Writes back every mutable column of `e`.
    pub fn update_endpoint(&self, e: &EndpointRow) -> Result<()> {
        self.exec(
            "UPDATE runtime_endpoints SET live_version = ?3, target_version = ?4, description = ?5, status = ?6, failure_reason = ?7, updated_at = ?8 \
             WHERE runtime_id = ?1 AND name = ?2",
            params![e.runtime_id, e.name, e.live_version, e.target_version, e.description, e.status.as_str(), e.failure_reason, e.updated_at],
        )?;
        Ok(())
    }

    pub fn delete_endpoint(&self, e: &EndpointRow) -> Result<()> {
        self.exec("DELETE FROM tags WHERE resource_arn = ?1", params![e.arn])?;
        self.exec("DELETE FROM runtime_endpoints WHERE runtime_id = ?1 AND name = ?2", params![e.runtime_id, e.name])?;
        Ok(())
    }

    // ---- tags ----

    pub fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>> {
        Ok(self
            .query_all("SELECT key, value FROM tags WHERE resource_arn = ?1", params![arn], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .into_iter()
            .collect())
    }

    pub fn put_tags(&self, arn: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        for (k, v) in tags {
            self.exec(
                "INSERT INTO tags (resource_arn, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (resource_arn, key) DO UPDATE SET value = excluded.value",
                params![arn, k, v],
            )?;
        }
        Ok(())
    }

    pub fn remove_tags(&self, arn: &str, keys: &[String]) -> Result<()> {
        for k in keys {
            self.exec("DELETE FROM tags WHERE resource_arn = ?1 AND key = ?2", params![arn, k])?;
        }
        Ok(())
    }

    // ---- meta ----

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.query_opt("SELECT value FROM meta WHERE key = ?1", params![key], |r| r.get(0))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.exec(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    // ---- sandbox claims ----

    pub fn put_claim(&self, sandbox_id: &str, runtime_id: &str, session_id: &str, at: i64) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO sandbox_claims (sandbox_id, runtime_id, session_id, claimed_at) VALUES (?1, ?2, ?3, ?4)",
            params![sandbox_id, runtime_id, session_id, at],
        )?;
        Ok(())
    }

    /// The session a claimed sandbox serves.
    pub fn claim(&self, sandbox_id: &str) -> Result<Option<String>> {
        self.query_opt("SELECT session_id FROM sandbox_claims WHERE sandbox_id = ?1", params![sandbox_id], |r| r.get(0))
    }

    pub fn delete_claim(&self, sandbox_id: &str) -> Result<()> {
        self.exec("DELETE FROM sandbox_claims WHERE sandbox_id = ?1", params![sandbox_id])?;
        Ok(())
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
