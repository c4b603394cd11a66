//! TagResource, UntagResource, ListTagsForResource for runtimes, runtime endpoints and memories.

use std::collections::BTreeMap;

use super::ids::parse_runtime_arn;
use super::{ControlPlane, MAX_TAGS_PER_RESOURCE};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, Result};
use crate::kernel::store::Tx;
// Memories keep their own tags; their ARNs are handed to the memory service.
use crate::services::memory::tags as memory_tags;

/// The ARN names a runtime or endpoint of the caller that exists.
fn check_taggable(tx: &Tx<'_>, caller: &Caller, arn: &str) -> Result<()> {
    let missing = || {
        Error::not_found(format!(
            "No taggable resource with ARN '{arn}' exists in account {} in {}.",
            caller.account, caller.region
        ))
    };
    let parsed = parse_runtime_arn(arn).ok_or_else(missing)?;
    if parsed.account != caller.account || parsed.region != caller.region {
        return Err(missing());
    }
    let runtime = tx.runtime(&caller.account, &caller.region, &parsed.runtime_id)?.ok_or_else(missing)?;
    if runtime.arn != arn.split("/runtime-endpoint/").next().unwrap_or_default() {
        return Err(missing());
    }
    if let Some(endpoint) = parsed.endpoint {
        tx.endpoint(&runtime.id, &endpoint)?.ok_or_else(missing)?;
    }
    Ok(())
}

impl ControlPlane {
    pub async fn tag_resource(&self, caller: Caller, arn: String, tags: BTreeMap<String, String>) -> Result<()> {
        if let Some(reserved) = tags.keys().find(|k| k.to_ascii_lowercase().starts_with("aws:")) {
            return Err(Error::invalid_field("tags", format!("Tag key '{reserved}' uses the reserved prefix 'aws:'.")));
        }
        self.store
            .write(move |tx| {
                if memory_tags::is_memory_arn(&arn) {
                    return memory_tags::tag(tx, &caller, &arn, &tags);
                }
                check_taggable(tx, &caller, &arn)?;
                let mut merged = tx.tags(&arn)?;
                merged.extend(tags.clone());
                if merged.len() > MAX_TAGS_PER_RESOURCE {
                    return Err(Error::quota(format!(
                        "A resource can have at most {MAX_TAGS_PER_RESOURCE} tags; '{arn}' would have {}.",
                        merged.len()
                    )));
                }
                tx.put_tags(&arn, &tags)
            })
            .await
    }

    pub async fn untag_resource(&self, caller: Caller, arn: String, keys: Vec<String>) -> Result<()> {
        self.store
            .write(move |tx| {
                if memory_tags::is_memory_arn(&arn) {
                    return memory_tags::untag(tx, &caller, &arn, &keys);
                }
                check_taggable(tx, &caller, &arn)?;
                tx.remove_tags(&arn, &keys)
            })
            .await
    }

    pub async fn list_tags(&self, caller: Caller, arn: String) -> Result<BTreeMap<String, String>> {
        self.store
            .read(move |tx| {
                if memory_tags::is_memory_arn(&arn) {
                    return memory_tags::list(tx, &caller, &arn);
                }
                check_taggable(tx, &caller, &arn)?;
                tx.tags(&arn)
            })
            .await
    }
}
