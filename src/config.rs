//! Run-time configuration, and the credentials the emulator accepts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::kernel::sigv4::Credential;

pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4599";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Every request must carry a valid SigV4 signature from a configured credential.
    Verify,
    /// Signatures are not checked; the Region still comes from the credential scope when present.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxKind {
    /// One Docker container per runtime session.
    Docker,
    /// One QEMU microVM per runtime session (KVM where it truly works, otherwise QEMU's emulator).
    Microvm,
    /// A microVM per session where KVM truly works, otherwise a Docker container.
    Auto,
    /// No execution: the control plane only; invocations are refused.
    None,
}

/// Default of `--max-connections`. Each connection is a file descriptor; with sandboxes, SQLite and
/// log files also open, this stays well under a typical 20 000 open-file limit while leaving room
/// for any test suite's concurrency.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `None` keeps all state in memory.
    pub data_dir: Option<PathBuf>,
    pub region: String,
    pub account_id: String,
    pub credentials: HashMap<String, Credential>,
    pub auth: AuthMode,
    pub sandbox: SandboxKind,
    pub sessions: crate::sessions::SessionConfig,
    /// Agent output kept per runtime endpoint before the oldest session streams are deleted.
    pub log_max_bytes_per_runtime: u64,
    /// Client connections served at once (`--max-connections`); the sandboxes' listener has its own.
    pub max_connections: usize,
    /// How long a buffered request body may take after its headers (`--body-read-timeout`).
    pub body_read_timeout: std::time::Duration,
    /// AgentCore Memory settings.
    pub memory: crate::services::memory::MemoryConfig,
    /// Who answers Bedrock model calls (`--model-provider` and its options).
    pub model_provider: crate::services::bedrock::providers::ProviderFlags,
    /// Clients and users of the built-in OIDC issuer (`--issuer-client`, `--issuer-user`).
    pub issuer: crate::services::identity::issuer::IssuerConfig,
    /// Temporary credentials the emulator issues (installed by the server at start-up).
    pub issued_credentials: crate::app::auth::IssuedCredentials,
    /// Threads that serve connections (`--worker-threads`); 0 means one per CPU.
    pub serving_threads: usize,
}

impl Config {
    /// In-memory, verifying, `test`/`test` credentials, ephemeral port, no sandboxes: what
    /// control-plane tests start.
    pub fn for_tests() -> Config {
        let mut credentials = HashMap::new();
        add_credential(&mut credentials, "test", "test", DEFAULT_ACCOUNT_ID);
        Config {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            data_dir: None,
            region: DEFAULT_REGION.into(),
            account_id: DEFAULT_ACCOUNT_ID.into(),
            credentials,
            auth: AuthMode::Verify,
            sandbox: SandboxKind::None,
            sessions: crate::sessions::SessionConfig::default(),
            log_max_bytes_per_runtime: crate::services::logs::DEFAULT_MAX_GROUP_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            body_read_timeout: std::time::Duration::from_secs(60),
            memory: crate::services::memory::MemoryConfig::default(),
            model_provider: Default::default(),
            issuer: Default::default(),
            issued_credentials: Default::default(),
            serving_threads: 0,
        }
    }
}

pub fn add_credential(map: &mut HashMap<String, Credential>, access_key_id: &str, secret: &str, account_id: &str) {
    map.insert(
        access_key_id.to_string(),
        Credential {
            access_key_id: access_key_id.into(),
            secret_access_key: secret.into(),
            account_id: account_id.into(),
            ..Default::default()
        },
    );
}

/// Parses `ACCESS_KEY:SECRET[:ACCOUNT_ID]`.
pub fn parse_credential_flag(value: &str, default_account: &str) -> Result<Credential, String> {
    let parts: Vec<&str> = value.splitn(3, ':').collect();
    let (ak, secret, account) = match parts.as_slice() {
        [ak, secret] => (*ak, *secret, default_account),
        [ak, secret, account] => (*ak, *secret, *account),
        _ => return Err(format!("--credentials expects ACCESS_KEY:SECRET[:ACCOUNT_ID], got '{value}'")),
    };
    if ak.is_empty() || secret.is_empty() {
        return Err(format!("--credentials '{value}': access key and secret must not be empty"));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("--credentials '{value}': account id must be 12 digits, got '{account}'"));
    }
    Ok(Credential {
        access_key_id: ak.into(),
        secret_access_key: secret.into(),
        account_id: account.into(),
        ..Default::default()
    })
}

/// Static keys from the user's shared credentials and config files (`AWS_SHARED_CREDENTIALS_FILE`,
/// `AWS_CONFIG_FILE`, defaulting to `~/.aws/credentials` and `~/.aws/config`), so that existing
/// profiles verify locally. Nothing is sent anywhere.
pub fn profile_credentials(default_account: &str) -> Vec<(String, Credential)> {
    let home = dirs::home_dir().unwrap_or_default();
    let files = [
        std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".aws/credentials")),
        std::env::var_os("AWS_CONFIG_FILE").map(PathBuf::from).unwrap_or_else(|| home.join(".aws/config")),
    ];
    files.iter().flat_map(|f| credentials_in_file(f, default_account)).collect()
}

/// `(profile, credential)` for each section of an INI-style AWS file that has both keys.
pub fn credentials_in_file(path: &Path, default_account: &str) -> Vec<(String, Credential)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    parse_profiles(&text, default_account)
}

fn parse_profiles(text: &str, default_account: &str) -> Vec<(String, Credential)> {
    let mut out = Vec::new();
    let mut section: Option<String> = None;
    let mut keys: HashMap<String, String> = HashMap::new();
    let mut flush = |section: &Option<String>, keys: &mut HashMap<String, String>| {
        if let (Some(name), Some(ak), Some(sk)) =
            (section, keys.get("aws_access_key_id"), keys.get("aws_secret_access_key"))
        {
            let account = keys.get("aws_account_id").cloned().unwrap_or_else(|| default_account.to_string());
            out.push((
                name.clone(),
                Credential {
                    access_key_id: ak.clone(),
                    secret_access_key: sk.clone(),
                    account_id: account,
                    ..Default::default()
                },
            ));
        }
        keys.clear();
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            flush(&section, &mut keys);
            let name = name.trim();
            section = Some(name.strip_prefix("profile ").unwrap_or(name).trim().to_string());
        } else if let Some((k, v)) = line.split_once('=') {
            keys.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    flush(&section, &mut keys);
    out
}

/// The per-user data directory, e.g. `~/.local/share/agentcore-local`.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir().unwrap_or_else(std::env::temp_dir).join("agentcore-local")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_credential_flags() {
        let c = parse_credential_flag("AK:SK", "123456789012").unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str(), c.account_id.as_str()),
            ("AK", "SK", "123456789012")
        );
        let c = parse_credential_flag("AK:S:K:111111111111", "123456789012");
        assert!(c.is_err(), "a colon in the secret makes the account part invalid");
        assert_eq!(parse_credential_flag("AK:SK:210987654321", "1").unwrap().account_id, "210987654321");
        assert!(parse_credential_flag("AK", "1").is_err());
    }

    #[test]
    fn reads_profiles_from_both_file_styles() {
        let text = "[default]\naws_access_key_id = AKIA1\naws_secret_access_key=s1\n\n# c\n[profile dev]\naws_access_key_id=AKIA2\naws_secret_access_key = s2\naws_account_id = 111122223333\n[noKeys]\nregion=us-west-2\n";
        let p = parse_profiles(text, "123456789012");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].0, "default");
        assert_eq!(p[1].1.account_id, "111122223333");
        assert_eq!(p[1].0, "dev");
    }
}
