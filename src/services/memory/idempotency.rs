//! `clientToken` handling in this service's own table: a retried request with the same token and
//! the same parameters answers as the first did; the same token with other parameters is refused.

use crate::kernel::caller::Caller;
use crate::kernel::clock::now_ms;
use crate::kernel::error::{Error, ErrorKind, Result, ValidationReason};
use crate::kernel::store::Tx;
use crate::services::runtime::domain::{Idempotency, IDEMPOTENCY_TTL_MS};

use super::tables::{Db, TokenKey};

/// How long a token is remembered (the same as the runtime's).
pub const TOKEN_TTL_MS: i64 = IDEMPOTENCY_TTL_MS;

/// What the first request with this token produced, if this is a retry of it.
pub fn replayed(tx: &Tx<'_>, caller: &Caller, operation: &str, idem: &Idempotency) -> Result<Option<String>> {
    let Some(token) = &idem.token else {
        return Ok(None);
    };
    let key = TokenKey { account: &caller.account, region: &caller.region, operation, token };
    match Db::new(tx.txn).client_token(&key)? {
        Some((_, _, at)) if at + TOKEN_TTL_MS < now_ms() => Ok(None),
        Some((fingerprint, outcome, _)) if fingerprint == idem.fingerprint => Ok(Some(outcome)),
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
    let key = TokenKey { account: &caller.account, region: &caller.region, operation, token };
    Db::new(tx.txn).put_client_token(&key, &idem.fingerprint, &outcome, now_ms())
}
