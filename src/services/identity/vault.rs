//! The token vault's encryption at rest: every secret the Identity service keeps (API keys, OAuth2
//! client secrets, cached access and refresh tokens, the emulator's own signing keys) is sealed
//! with AES-256-GCM before it reaches SQLite, so the database file never holds one in plain text.
//!
//! The key lives beside the database in `<data dir>/identity/token-vault.key` (32 random bytes,
//! mode 0600), created on first start. Each sealed value is `nonce (12 bytes) || ciphertext || tag`,
//! with the value's purpose (e.g. the provider ARN and field) as associated data: a ciphertext
//! copied into another row does not open there. A database moved without its key file cannot be
//! read; the Identity operations then answer `DecryptionFailure`, as the service does when KMS
//! refuses.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

pub const KEY_FILE: &str = "token-vault.key";
const KEY_LEN: usize = 32;
/// Versioned so a later key or cipher change can tell old values apart.
const AAD_PREFIX: &str = "agentcore-local token vault v1|";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot read or create the token vault key {path}: {source}")]
    KeyFile { path: PathBuf, source: std::io::Error },
    #[error("the token vault key {path} is {len} bytes; expected {KEY_LEN}. Restore the key file that belongs to this database")]
    KeyLength { path: PathBuf, len: usize },
    #[error("a secret could not be decrypted with this data directory's token vault key (was the key file replaced?)")]
    Decrypt,
    #[error("the system random source failed")]
    Random,
}

pub struct Vault {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Vault {
    /// The vault of a data directory: its key file is read, or created when absent.
    pub fn open(data_dir: &Path) -> Result<Vault, VaultError> {
        let dir = data_dir.join("identity");
        let path = dir.join(KEY_FILE);
        let key_file = |source| VaultError::KeyFile { path: path.clone(), source };
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == KEY_LEN => Ok(Vault::with_key(&bytes)),
            Ok(bytes) => Err(VaultError::KeyLength { path, len: bytes.len() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir).map_err(key_file)?;
                let key = random_key()?;
                write_new_key(&dir, &path, &key).map_err(key_file)?;
                Ok(Vault::with_key(&key))
            }
            Err(e) => Err(key_file(e)),
        }
    }

    /// A vault whose key lives only in memory (`--in-memory`: nothing survives anyway).
    pub fn ephemeral() -> Result<Vault, VaultError> {
        Ok(Vault::with_key(&random_key()?))
    }

    fn with_key(bytes: &[u8]) -> Vault {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key");
        Vault { key: LessSafeKey::new(unbound), rng: SystemRandom::new() }
    }

    /// Encrypt `plain` for the purpose `context` (which must be given again to open it).
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| VaultError::Random)?;
        let mut out = plain.to_vec();
        let aad = format!("{AAD_PREFIX}{context}");
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad.as_bytes()), &mut out)
            .map_err(|_| VaultError::Decrypt)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&out);
        Ok(sealed)
    }

    pub fn open_sealed(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < NONCE_LEN {
            return Err(VaultError::Decrypt);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Decrypt)?;
        let mut buf = body.to_vec();
        let aad = format!("{AAD_PREFIX}{context}");
        let plain =
            self.key.open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf).map_err(|_| VaultError::Decrypt)?;
        Ok(plain.to_vec())
    }

    pub fn seal_str(&self, context: &str, plain: &str) -> Result<Vec<u8>, VaultError> {
        self.seal(context, plain.as_bytes())
    }

    pub fn open_str(&self, context: &str, sealed: &[u8]) -> Result<String, VaultError> {
        String::from_utf8(self.open_sealed(context, sealed)?).map_err(|_| VaultError::Decrypt)
    }

    /// `n` bytes from the system's random source (ids, codes, signing keys).
    pub fn random_bytes(&self, n: usize) -> Result<Vec<u8>, VaultError> {
        let mut out = vec![0u8; n];
        self.rng.fill(&mut out).map_err(|_| VaultError::Random)?;
        Ok(out)
    }
}

fn random_key() -> Result<[u8; KEY_LEN], VaultError> {
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new().fill(&mut key).map_err(|_| VaultError::Random)?;
    Ok(key)
}

/// Write the key where no other user can read it, durably, and only then under its final name:
/// a crash leaves either no key file or a complete one.
fn write_new_key(dir: &Path, path: &Path, key: &[u8]) -> std::io::Result<()> {
    let staging = dir.join(format!(".{KEY_FILE}.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&staging)?;
    file.write_all(key)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&staging, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(dir.path()).unwrap();
        let sealed = vault.seal_str("apikey:arn:x", "sk-live-123").unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"sk-live-123"), "ciphertext must not contain the secret");
        assert_eq!(vault.open_str("apikey:arn:x", &sealed).unwrap(), "sk-live-123");
        assert!(vault.open_str("apikey:arn:y", &sealed).is_err(), "bound to its context");
        // The key file survives: a second open reads the same key.
        let again = Vault::open(dir.path()).unwrap();
        assert_eq!(again.open_str("apikey:arn:x", &sealed).unwrap(), "sk-live-123");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("identity").join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key file is private to its owner");
        }
        assert!(Vault::ephemeral().unwrap().open_str("apikey:arn:x", &sealed).is_err(), "another key cannot open it");
    }
}
