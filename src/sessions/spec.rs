//! What a session's sandbox is started with: image, environment, labels, ports, limits.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::SessionConfig;
use crate::sandbox::{labels, Egress, Mount, SandboxSpec};
use crate::services::runtime::domain::artifact::{Prepared, CODE_MOUNT};
use crate::services::runtime::domain::resolve::InvocationTarget;

/// The public invocation URL of a runtime, as `AGENTCORE_RUNTIME_URL` tells the agent (A2A cards).
pub fn invocation_url(emulator_url: &str, runtime_arn: &str) -> String {
    // Encoded as the SDKs encode a path segment: unreserved characters (`-_.~`) stay as they are.
    let encoded = crate::kernel::sigv4::canonical::uri_encode(runtime_arn.as_bytes(), false);
    format!("{emulator_url}/runtimes/{encoded}/invocations/")
}

/// The labels by which a restarted emulator finds what it (or a dead emulator) left behind.
fn owner_labels(config: &SessionConfig, instance_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (labels::INSTANCE.to_string(), instance_id.to_string()),
        (labels::OWNER_PID.to_string(), std::process::id().to_string()),
        (labels::OWNER_PID_NAMESPACE.to_string(), pid_namespace()),
        (labels::PERSISTENT.to_string(), config.persistent.to_string()),
    ])
}

/// This process's PID namespace, e.g. `pid:[4026531836]` (empty where /proc does not say).
pub use crate::sandbox::pid_namespace;

/// Where the emulator is reached: by clients (`public`), and by the sandboxes' own AWS calls and
/// metadata requests (`from_sandboxes`; `None` when the backend could not provide an address).
#[derive(Debug, Clone, Copy)]
pub struct EmulatorUrls<'a> {
    pub public: &'a str,
    pub from_sandboxes: Option<&'a str>,
}

/// What a session of `target` may reach besides the emulator.
pub fn egress(target: &InvocationTarget) -> Egress {
    if target.vpc {
        Egress::EmulatorOnly
    } else {
        Egress::Internet
    }
}

pub fn build(
    config: &SessionConfig,
    instance_id: &str,
    urls: EmulatorUrls<'_>,
    target: &InvocationTarget,
    session_id: Option<&str>,
    now_ms: i64,
) -> SandboxSpec {
    // The runtime's variables first; the service's own variables win, as in the cloud.
    let mut env: Vec<(String, String)> = target.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let service_env = [
        ("AWS_REGION", target.region.clone()),
        ("AWS_DEFAULT_REGION", target.region.clone()),
        ("DOCKER_CONTAINER", "1".to_string()),
        ("AGENTCORE_RUNTIME_URL", invocation_url(urls.public, &target.runtime_arn)),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            format!("cloud.resource_id={},service.name={}", target.runtime_arn, target.runtime_name),
        ),
    ];
    env.retain(|(k, _)| !service_env.iter().any(|(s, _)| s == k));
    env.extend(service_env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    // Every SDK in the sandbox talks to the emulator, and its default credential chain finds the
    // execution role's credentials at the metadata service; no keys are put in the environment.
    // These yield to the runtime's own variables (an agent may point a client elsewhere on purpose).
    if let Some(url) = urls.from_sandboxes {
        for (name, value) in
            [("AWS_ENDPOINT_URL", url.to_string()), ("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("{url}/"))]
        {
            if !env.iter().any(|(k, _)| k == name) {
                env.push((name.to_string(), value));
            }
        }
    }

    let prepared = Prepared::parse(&target.artifact);
    let (command, workdir, mounts) = match &prepared {
        Prepared::Container { .. } => (None, None, Vec::new()),
        Prepared::Code { code_dir, command, .. } => {
            // The zip root is importable and its bin/ is on PATH (runtime-contract.md §9).
            let code_env = [
                ("PYTHONPATH", CODE_MOUNT.to_string()),
                ("PYTHONUNBUFFERED", "1".to_string()),
                ("NODE_PATH", format!("{CODE_MOUNT}/node_modules")),
                ("PATH", format!("{CODE_MOUNT}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")),
            ];
            env.retain(|(k, _)| !code_env.iter().any(|(c, _)| c == k));
            env.extend(code_env.iter().map(|(k, v)| (k.to_string(), v.clone())));
            let mount = Mount { host_path: code_dir.clone(), target: CODE_MOUNT.to_string(), read_only: true };
            (Some(command.clone()), Some(CODE_MOUNT.to_string()), vec![mount])
        }
    };

    // Warm-pool spares have no session yet (`None`); the claim is recorded in the store.
    let session_part = match session_id {
        Some(id) => hex::encode(&Sha256::digest(id.as_bytes())[..6]),
        None => "pool".to_string(),
    };
    let suffix: u16 = rand::random();
    let name = format!("agentcore-{}-{session_part}-{suffix:04x}", target.runtime_id);
    let mut labels = owner_labels(config, instance_id);
    labels.extend([
        (labels::ACCOUNT.to_string(), target.account.clone()),
        (labels::REGION.to_string(), target.region.clone()),
        (labels::RUNTIME_ID.to_string(), target.runtime_id.clone()),
        (labels::VERSION.to_string(), target.version.to_string()),
        (labels::ENDPOINT.to_string(), target.endpoint_name.clone()),
        (labels::SESSION_ID.to_string(), session_id.unwrap_or_default().to_string()),
        (labels::POOL.to_string(), session_id.is_none().to_string()),
        (labels::STARTED_AT_MS.to_string(), now_ms.to_string()),
    ]);
    SandboxSpec {
        name,
        image: prepared.image().to_string(),
        env,
        ports: vec![target.protocol.port],
        labels,
        limits: config.limits,
        read_only_root: config.read_only_root,
        command,
        workdir,
        mounts,
        user: None,
        egress: egress(target),
    }
}

/// A one-off job for `runtime_id` (no ports, no session): the same limits and hardening as a
/// session, and the labels that let a restarted emulator find and remove it if it is left behind.
pub fn job(
    config: &SessionConfig,
    instance_id: &str,
    runtime_id: &str,
    image: &str,
    command: Vec<String>,
    mounts: Vec<Mount>,
    user: Option<String>,
) -> SandboxSpec {
    let suffix: u16 = rand::random();
    let mut labels = owner_labels(config, instance_id);
    labels.insert(labels::RUNTIME_ID.to_string(), runtime_id.to_string());
    SandboxSpec {
        name: format!("agentcore-{runtime_id}-job-{suffix:04x}"),
        image: image.to_string(),
        env: Vec::new(),
        ports: Vec::new(),
        labels,
        limits: config.limits,
        read_only_root: config.read_only_root,
        command: Some(command),
        workdir: None,
        mounts,
        user,
        egress: Egress::Internet,
    }
}
