//! `clientToken` handling, on the store's shared idempotency table: a retried request with the
//! same token and the same parameters answers as the first did; the same token with other
//! parameters is refused.

use crate::kernel::error::{Error, ErrorKind, Result, ValidationReason};
use crate::kernel::store::IdempotencyRecord;
use crate::kernel::store::Tx;
use crate::services::runtime::domain::{now_ms, Caller, Idempotency, IDEMPOTENCY_TTL_MS};

/// What the first request with this token produced, if this is a retry of it.
pub fn replayed(tx: &Tx<'_>, caller: &Caller, operation: &str, idem: &Idempotency) -> Result<Option<String>> {
    let Some(token) = &idem.token else {
        return Ok(None);
    };
    match tx.idempotency_record(&caller.account, &caller.region, operation, token)? {
        Some(rec) if rec.created_at + IDEMPOTENCY_TTL_MS < now_ms() => Ok(None),
        Some(rec) if rec.fingerprint == idem.fingerprint => Ok(Some(rec.resource)),
        Some(_) => Err(Error::new(
            ErrorKind::Validation { reason: ValidationReason::IdempotentParameterMismatch, fields: vec![] },
            format!(
                "The clientToken '{token}' was already used for a {operation} request with different parameters. \
                 Use a new clientToken for a different request."
            ),
        )),
        None => Ok(None),
    }
}

/// Remember what this request produced under its token (in the request's transaction).
pub fn remember(tx: &Tx<'_>, caller: &Caller, operation: &str, idem: &Idempotency, outcome: String) -> Result<()> {
    let Some(token) = &idem.token else {
        return Ok(());
    };
    tx.put_idempotency_record(
        &caller.account,
        &caller.region,
        operation,
        token,
        &IdempotencyRecord { fingerprint: idem.fingerprint.clone(), resource: outcome, created_at: now_ms() },
    )
}
