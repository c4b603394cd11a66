//! The emulator's credential key, and everything derived from it.
//!
//! Temporary credentials need a secret the emulator can recompute to verify signatures, but the
//! database should not hold secrets (it is copied around, attached to bug reports, inspected). So
//! the secret access key and session token of an issued credential are HMACs of its access key id
//! under one random key that lives in its own file beside the database (mode 0600). The store keeps
//! only who a credential belongs to and when it expires; without the key file it is useless.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// File name of the key, inside the data dir.
pub const KEY_FILE_NAME: &str = "credential-key";
const KEY_BYTES: usize = 32;
/// The alphabet AWS access key ids and unique ids are written in (upper-case base32).
const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

#[derive(Clone)]
pub struct CredentialKey([u8; KEY_BYTES]);

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialKey(..)")
    }
}

impl CredentialKey {
    /// A key that lives as long as the process (`--in-memory`).
    pub fn ephemeral() -> CredentialKey {
        CredentialKey(rand::rng().random())
    }

    /// The key in `data_dir`, created (durably, readable by the owner only) on first use.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<CredentialKey> {
        let path = data_dir.join(KEY_FILE_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{} is not a credential key ({} bytes, expected {KEY_BYTES}); move it aside \
                             (temporary credentials issued so far stop working)",
                            path.display(),
                            bytes.len()
                        ),
                    )
                })?;
                Ok(CredentialKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = CredentialKey::ephemeral();
                write_private(data_dir, &path, &key.0)?;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    fn mac(&self, label: &str, data: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// The secret access key of an issued credential: 40 characters, like AWS's.
    pub fn secret_for(&self, access_key_id: &str) -> String {
        let mac = self.mac("secret-access-key", access_key_id.as_bytes());
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&mac[..30])
    }

    /// The session token of an issued credential (opaque to clients; checked by recomputing it).
    pub fn session_token_for(&self, access_key_id: &str) -> String {
        let mut token = self.mac("session-token/1", access_key_id.as_bytes()).to_vec();
        token.extend_from_slice(&self.mac("session-token/2", access_key_id.as_bytes()));
        base64::engine::general_purpose::STANDARD.encode(token)
    }

    /// A metadata-service token bound to one sandbox, valid until `expires_ms`.
    pub fn metadata_token(&self, sandbox_id: &str, expires_ms: i64) -> String {
        let mac = self.mac("metadata-token", format!("{sandbox_id}\0{expires_ms}").as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{expires_ms}.{}", hex::encode(&mac[..20])))
    }

    /// The expiry of `token` if it is a metadata token this key made for `sandbox_id`.
    pub fn check_metadata_token(&self, token: &str, sandbox_id: &str) -> Option<i64> {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (expires, _) = decoded.split_once('.')?;
        let expires_ms: i64 = expires.parse().ok()?;
        let expected = self.metadata_token(sandbox_id, expires_ms);
        bool::from(expected.as_bytes().ct_eq(token.trim().as_bytes())).then_some(expires_ms)
    }
}

/// Create `path` with `bytes`, mode 0600, fsynced (file and directory) before it is used.
fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let staging = dir.join(format!(".{KEY_FILE_NAME}.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&staging)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    // A concurrent first start may have created the key meanwhile: theirs wins, ours is dropped.
    if let Err(e) = std::fs::hard_link(&staging, path) {
        let _ = std::fs::remove_file(&staging);
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(e);
        }
        return Ok(());
    }
    std::fs::remove_file(&staging)?;
    std::fs::File::open(dir)?.sync_all()
}

fn random_id(prefix: &str, len: usize) -> String {
    let mut rng = rand::rng();
    let tail: String = (0..len).map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char).collect();
    format!("{prefix}{tail}")
}

/// A fresh temporary access key id: `ASIA` and 16 base32 characters, as STS issues them.
pub fn new_access_key_id() -> String {
    random_id("ASIA", 16)
}

/// The unique id of a role (`AROA…`, 21 characters), stable for one role ARN as IAM's is.
pub fn role_id(role_arn: &str) -> String {
    let digest = Sha256::digest(role_arn.as_bytes());
    let tail: String = digest.iter().take(17).map(|b| ID_ALPHABET[(*b as usize) % ID_ALPHABET.len()] as char).collect();
    format!("AROA{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_values_depend_on_key_and_id() {
        let (a, b) = (CredentialKey::ephemeral(), CredentialKey::ephemeral());
        let id = new_access_key_id();
        assert!(id.starts_with("ASIA") && id.len() == 20, "{id}");
        assert_eq!(a.secret_for(&id).len(), 40);
        assert_eq!(a.secret_for(&id), a.secret_for(&id));
        assert_ne!(a.secret_for(&id), b.secret_for(&id));
        assert_ne!(a.session_token_for(&id), a.session_token_for(&new_access_key_id()));
        assert_eq!(role_id("arn:aws:iam::123456789012:role/R").len(), 21);
        assert_eq!(role_id("arn:aws:iam::123456789012:role/R"), role_id("arn:aws:iam::123456789012:role/R"));
    }

    #[test]
    fn metadata_tokens_are_bound_to_their_sandbox() {
        let key = CredentialKey::ephemeral();
        let token = key.metadata_token("sandbox-a", 1_000);
        assert_eq!(key.check_metadata_token(&token, "sandbox-a"), Some(1_000));
        assert_eq!(key.check_metadata_token(&token, "sandbox-b"), None);
        assert_eq!(CredentialKey::ephemeral().check_metadata_token(&token, "sandbox-a"), None);
        assert_eq!(key.check_metadata_token("garbage", "sandbox-a"), None);
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = CredentialKey::load_or_create(dir.path()).unwrap();
        let again = CredentialKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.secret_for("ASIAX"), again.secret_for("ASIAX"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE_NAME)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(KEY_FILE_NAME), b"short").unwrap();
        assert!(CredentialKey::load_or_create(dir.path()).is_err());
    }
}
