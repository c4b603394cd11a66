//! From an invocation's runtime ARN (or id) and qualifier to the version that serves it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::ids::parse_runtime_arn;
use super::lifecycle::{self, Lifecycle};
use super::protocol::Protocol;
use super::{ControlPlane, DEFAULT_ENDPOINT};
use crate::kernel::caller::Caller;
use crate::kernel::error::{Error, ErrorKind, Result};
use crate::services::runtime::tables::{ResourceStatus, RuntimeRow, VersionRow};

/// Everything a session of one runtime version needs, read from the store at invocation time.
#[derive(Debug, Clone)]
pub struct InvocationTarget {
    pub account: String,
    pub region: String,
    pub runtime_id: String,
    pub runtime_arn: String,
    pub runtime_name: String,
    pub endpoint_name: String,
    /// `<runtime ARN>/runtime-endpoint/<endpoint>`, what invocations are throttled by.
    pub endpoint_arn: String,
    pub version: u32,
    /// What preparing the version produced (`sandbox::artifact::Prepared`, encoded).
    pub artifact: String,
    pub environment: BTreeMap<String, String>,
    pub protocol: Protocol,
    pub lifecycle: Lifecycle,
    /// `requestHeaderConfiguration.requestHeaderAllowlist`, lower-cased.
    pub header_allowlist: Vec<String>,
    /// `authorizerConfiguration.customJWTAuthorizer`: callers then send bearer tokens, not SigV4.
    pub authorizer: Option<crate::kernel::jwt::JwtAuthorizer>,
    /// The execution role whose credentials the session's sandbox gets.
    pub role_arn: String,
    /// `metadataConfiguration.requireMMDSV2`: the metadata service refuses token-less requests.
    pub require_mmds_v2: bool,
    /// `networkConfiguration.networkMode` is `VPC`: the session reaches the emulator (its AWS
    /// endpoint and metadata service) and nothing else, as a VPC without a NAT would.
    pub vpc: bool,
}

/// Resolved invocation targets, each tagged with the store generation it was read at.
#[derive(Default)]
pub struct TargetCache {
    /// Shared, not cloned, on a hit: a target is a dozen strings and maps, and every invocation
    /// looks one up.
    entries: parking_lot::Mutex<std::collections::HashMap<TargetKey, (u64, Arc<InvocationTarget>)>>,
}

type TargetKey = (String, String, String, Option<String>, Option<String>);

/// Beyond this many distinct (caller, runtime, qualifier) keys the cache starts over.
const TARGET_CACHE_LIMIT: usize = 10_000;

impl TargetCache {
    fn get(&self, key: &TargetKey, generation: u64) -> Option<Arc<InvocationTarget>> {
        let entries = self.entries.lock();
        entries.get(key).filter(|(g, _)| *g == generation).map(|(_, t)| t.clone())
    }

    fn put(&self, key: TargetKey, generation: u64, target: Arc<InvocationTarget>) {
        let mut entries = self.entries.lock();
        if entries.len() >= TARGET_CACHE_LIMIT {
            entries.clear();
        }
        entries.insert(key, (generation, target));
    }
}

/// The session target of one version of a runtime.
fn target_of(rt: &RuntimeRow, endpoint_name: &str, version: &VersionRow) -> Result<InvocationTarget> {
    let artifact = version.artifact.clone().filter(|a| !a.is_empty()).ok_or_else(|| {
        Error::new(
            ErrorKind::RuntimeClientError,
            format!(
                "Version {} of agent runtime '{}' has no prepared artifact to run (the emulator runs with --sandbox none).",
                version.version, rt.id
            ),
        )
    })?;
    let environment = version
        .config
        .get("environmentVariables")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default();
    let header_allowlist = version
        .config
        .get("requestHeaderConfiguration")
        .and_then(|c| c.get("requestHeaderAllowlist"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_ascii_lowercase).collect())
        .unwrap_or_default();
    // Checked when the version was created, so a stored one always parses; fail closed if not.
    let authorizer = crate::kernel::jwt::JwtAuthorizer::of_config(&version.config)
        .transpose()
        .map_err(|e| Error::internal(format!("version {} of '{}': {e}", version.version, rt.id)))?;
    Ok(InvocationTarget {
        account: rt.account.clone(),
        region: rt.region.clone(),
        runtime_id: rt.id.clone(),
        runtime_arn: rt.arn.clone(),
        runtime_name: rt.name.clone(),
        endpoint_name: endpoint_name.to_string(),
        endpoint_arn: format!("{}/runtime-endpoint/{endpoint_name}", rt.arn),
        version: version.version,
        artifact,
        environment,
        protocol: Protocol::of(&version.config),
        lifecycle: lifecycle::effective(&version.config),
        header_allowlist,
        authorizer,
        role_arn: version.config.get("roleArn").and_then(Value::as_str).unwrap_or_default().to_string(),
        require_mmds_v2: version
            .config
            .get("metadataConfiguration")
            .and_then(|m| m.get("requireMMDSV2"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        vpc: version.config.get("networkConfiguration").and_then(|n| n.get("networkMode")).and_then(Value::as_str)
            == Some("VPC"),
    })
}

impl ControlPlane {
    /// The target of a known version (re-adopting a sandbox after a restart).
    pub async fn version_target(
        &self,
        runtime_id: String,
        version: u32,
        endpoint_name: String,
    ) -> Result<InvocationTarget> {
        self.store
            .read(move |tx| {
                let rt = tx
                    .runtime_by_id(&runtime_id)?
                    .filter(|r| !r.deleting)
                    .ok_or_else(|| Error::not_found(format!("agent runtime '{runtime_id}' no longer exists")))?;
                let row = tx
                    .version(&runtime_id, version)?
                    .filter(|v| v.status == ResourceStatus::Ready)
                    .ok_or_else(|| Error::not_found(format!("version {version} of '{runtime_id}' is not READY")))?;
                target_of(&rt, &endpoint_name, &row)
            })
            .await
    }

    /// The runtime id a data-plane URI label names: a runtime ARN, or a bare id (then `account_id`
    /// may name the account). The runtime must belong to the caller's account and Region.
    pub async fn resolve_runtime_id(
        &self,
        caller: Caller,
        runtime: String,
        account_id: Option<String>,
    ) -> Result<String> {
        let runtime_id = if runtime.starts_with("arn:") {
            let arn = parse_runtime_arn(&runtime).filter(|a| a.endpoint.is_none()).ok_or_else(|| {
                Error::invalid_field("agentRuntimeArn", format!("'{runtime}' is not an agent runtime ARN."))
            })?;
            if arn.account != caller.account || arn.region != caller.region {
                return Err(Error::not_found(format!(
                    "Agent runtime '{runtime}' is not in account {} in {} (the account of your credentials and the Region you signed for).",
                    caller.account, caller.region
                )));
            }
            arn.runtime_id
        } else {
            if let Some(account) = account_id.filter(|a| *a != caller.account) {
                return Err(Error::not_found(format!(
                    "Agent runtime '{runtime}' is not in account {account} for these credentials."
                )));
            }
            runtime
        };
        let id = runtime_id.clone();
        let exists = self
            .store
            .read(move |tx| Ok(tx.runtime(&caller.account, &caller.region, &id)?.is_some_and(|r| !r.deleting)))
            .await?;
        if !exists {
            return Err(Error::not_found(format!(
                "No agent runtime with id '{runtime_id}' exists in this account and Region."
            )));
        }
        Ok(runtime_id)
    }

    /// From the URI label and qualifier of an invocation to the version its endpoint serves.
    pub async fn resolve_invocation(
        &self,
        caller: Caller,
        runtime: String,
        account_id: Option<String>,
        qualifier: Option<String>,
    ) -> Result<Arc<InvocationTarget>> {
        let key =
            (caller.account.clone(), caller.region.clone(), runtime.clone(), account_id.clone(), qualifier.clone());
        let generation = self.store.generation();
        if let Some(target) = self.targets.get(&key, generation) {
            return Ok(target);
        }
        let target = Arc::new(self.resolve_uncached(caller, runtime, account_id, qualifier).await?);
        self.targets.put(key, generation, target.clone());
        Ok(target)
    }

    async fn resolve_uncached(
        &self,
        caller: Caller,
        runtime: String,
        account_id: Option<String>,
        qualifier: Option<String>,
    ) -> Result<InvocationTarget> {
        let not_found = |what: String| Error::not_found(what);
        let runtime_id = self.resolve_runtime_id(caller.clone(), runtime, account_id).await?;
        let endpoint_name = qualifier.unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        self.store
            .read(move |tx| {
                let rt = tx.runtime(&caller.account, &caller.region, &runtime_id)?.filter(|r| !r.deleting).ok_or_else(
                    || {
                        not_found(format!(
                            "No agent runtime with id '{runtime_id}' exists in account {} in {}.",
                            caller.account, caller.region
                        ))
                    },
                )?;
                let endpoint = tx
                    .endpoint(&rt.id, &endpoint_name)?
                    .filter(|e| e.status != ResourceStatus::Deleting)
                    .ok_or_else(|| {
                        not_found(format!(
                            "Agent runtime '{}' has no endpoint named '{endpoint_name}' (the qualifier).",
                            rt.id
                        ))
                    })?;
                let Some(live) = endpoint.live_version else {
                    return Err(match endpoint.status {
                        ResourceStatus::Creating | ResourceStatus::Updating => Error::new(
                            ErrorKind::RetryableConflict,
                            format!(
                                "Endpoint '{endpoint_name}' of agent runtime '{}' is still {}; retry when it is READY.",
                                rt.id,
                                endpoint.status.as_str()
                            ),
                        ),
                        status => Error::invalid_field(
                            "qualifier",
                            format!(
                                "Endpoint '{endpoint_name}' of agent runtime '{}' has no version to serve ({}: {}).",
                                rt.id,
                                status.as_str(),
                                endpoint.failure_reason.as_deref().unwrap_or("no reason recorded")
                            ),
                        ),
                    });
                };
                let version = tx.version(&rt.id, live)?.ok_or_else(|| {
                    Error::internal(format!("endpoint '{endpoint_name}' serves version {live}, which is missing"))
                })?;
                target_of(&rt, &endpoint.name, &version)
            })
            .await
    }
}
