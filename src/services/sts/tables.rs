//! Issued temporary credentials: who each access key id speaks for and until when. No secret is
//! stored (they are derived from the credential key, `crate::services::sts::credentials::keys`).

use rusqlite::{params, Row};

use crate::kernel::error::Result;
use crate::kernel::store::Tx;

/// How a credential came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// A session's execution role, handed out by the metadata service.
    Session,
    /// STS AssumeRole.
    AssumeRole,
    /// STS AssumeRoleWithWebIdentity.
    WebIdentity,
}

impl CredentialSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialSource::Session => "session",
            CredentialSource::AssumeRole => "assume-role",
            CredentialSource::WebIdentity => "web-identity",
        }
    }

    fn parse(s: &str) -> Option<CredentialSource> {
        Some(match s {
            "session" => CredentialSource::Session,
            "assume-role" => CredentialSource::AssumeRole,
            "web-identity" => CredentialSource::WebIdentity,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCredentialRow {
    pub access_key_id: String,
    /// The account the credential acts in (the role's).
    pub account: String,
    pub role_arn: String,
    pub session_name: String,
    pub source: CredentialSource,
    /// For `Session`: the sandbox the credential was handed to, and its runtime session (if the
    /// sandbox had one yet: warm-pool spares get theirs when claimed).
    pub sandbox_id: Option<String>,
    pub runtime_id: Option<String>,
    pub session_id: Option<String>,
    /// Unix milliseconds.
    pub issued_at: i64,
    pub expires_at: i64,
}

const COLS: &str =
    "access_key_id, account, role_arn, session_name, source, sandbox_id, runtime_id, session_id, issued_at, expires_at";

fn credential_row(row: &Row<'_>) -> rusqlite::Result<IssuedCredentialRow> {
    let source: String = row.get(4)?;
    Ok(IssuedCredentialRow {
        access_key_id: row.get(0)?,
        account: row.get(1)?,
        role_arn: row.get(2)?,
        session_name: row.get(3)?,
        source: CredentialSource::parse(&source).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                4,
                rusqlite::types::Type::Text,
                format!("unknown source {source}").into(),
            )
        })?,
        sandbox_id: row.get(5)?,
        runtime_id: row.get(6)?,
        session_id: row.get(7)?,
        issued_at: row.get(8)?,
        expires_at: row.get(9)?,
    })
}

impl Tx<'_> {
    pub fn insert_issued_credential(&self, c: &IssuedCredentialRow) -> Result<()> {
        self.exec(
            &format!("INSERT INTO issued_credentials ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
            params![
                c.access_key_id,
                c.account,
                c.role_arn,
                c.session_name,
                c.source.as_str(),
                c.sandbox_id,
                c.runtime_id,
                c.session_id,
                c.issued_at,
                c.expires_at
            ],
        )?;
        Ok(())
    }

    /// Credentials that expired at or after `since` (unix ms), oldest first.
    pub fn issued_credentials_expiring_after(&self, since: i64) -> Result<Vec<IssuedCredentialRow>> {
        self.query_all(
            &format!("SELECT {COLS} FROM issued_credentials WHERE expires_at >= ?1 ORDER BY issued_at"),
            params![since],
            credential_row,
        )
    }

    /// Forget credentials that expired before `before` (unix ms); returns how many.
    pub fn purge_issued_credentials(&self, before: i64) -> Result<usize> {
        self.exec("DELETE FROM issued_credentials WHERE expires_at < ?1", params![before])
    }
}
