//! Tags on memory ARNs. The runtime's TagResource, UntagResource and ListTagsForResource hand a
//! memory ARN here, inside their own transaction; a memory's tags live in this service's tables
//! and go with the memory when it is deleted.

use std::collections::BTreeMap;

use super::ids::parse_memory_arn;
use super::tables::{Db, MemoryRow, MemoryStatus};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::kernel::store::Tx;
use crate::services::runtime::domain::MAX_TAGS_PER_RESOURCE;

pub fn is_memory_arn(arn: &str) -> bool {
    parse_memory_arn(arn).is_some()
}

/// The memory the ARN names, in the caller's account and Region, not being deleted.
fn tagged_memory(tx: &Tx<'_>, caller: &Caller, arn: &str) -> Result<MemoryRow> {
    let missing = || {
        Error::not_found(format!(
            "No taggable resource with ARN '{arn}' exists in account {} in {}.",
            caller.account, caller.region
        ))
    };
    let parsed = parse_memory_arn(arn).ok_or_else(missing)?;
    if parsed.account != caller.account || parsed.region != caller.region {
        return Err(missing());
    }
    match Db::new(tx.txn).memory(&caller.account, &caller.region, parsed.memory_id)? {
        Some(m) if m.arn == arn && m.status != MemoryStatus::Deleting => Ok(m),
        _ => Err(missing()),
    }
}

pub fn list(tx: &Tx<'_>, caller: &Caller, arn: &str) -> Result<BTreeMap<String, String>> {
    let memory = tagged_memory(tx, caller, arn)?;
    Db::new(tx.txn).tags(&memory.id)
}

pub fn tag(tx: &Tx<'_>, caller: &Caller, arn: &str, tags: &BTreeMap<String, String>) -> Result<()> {
    let memory = tagged_memory(tx, caller, arn)?;
    let db = Db::new(tx.txn);
    let mut merged = db.tags(&memory.id)?;
    merged.extend(tags.clone());
    if merged.len() > MAX_TAGS_PER_RESOURCE {
        return Err(Error::quota(format!(
            "A resource can have at most {MAX_TAGS_PER_RESOURCE} tags; '{arn}' would have {}.",
            merged.len()
        )));
    }
    db.put_tags(&memory.id, tags)
}

pub fn untag(tx: &Tx<'_>, caller: &Caller, arn: &str, keys: &[String]) -> Result<()> {
    let memory = tagged_memory(tx, caller, arn)?;
    Db::new(tx.txn).remove_tags(&memory.id, keys)
}
