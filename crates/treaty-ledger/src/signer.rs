//! The log's signing key, kept outside the store: the [`Signer`] trait, its
//! first implementation over an Ed25519 key read from a file or an
//! environment variable, and `keygen`.
//!
//! The key signs checkpoints (C2SP signed notes) and placement receipts.
//! Its name is the log's *origin*: the first line of every checkpoint and
//! the key name in every signature line. The store only ever sees public
//! keys. [`Signer`] is the extension point for keys that never leave a
//! device (an HSM, a cloud KMS): such a signer implements `sign` by asking
//! the device; nothing else in the ledger touches key material.
//!
//! Key files hold one line, Go's `note` private key text
//! (`PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`), and are
//! written with mode 0600. This module never logs or prints a secret.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::LedgerError;
use crate::note::{SecretKey, VerifierKey};

/// What signs the log's checkpoints and receipts.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The note verifier key: the key name (the log's origin), its id and
    /// the Ed25519 public key.
    fn verifier(&self) -> &VerifierKey;

    /// An Ed25519 signature of `message`.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], LedgerError>;
}

/// A signer holding an Ed25519 key in memory (read from a file or an
/// environment variable).
pub struct KeySigner {
    key: SecretKey,
    verifier: VerifierKey,
    source: String,
}

impl fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySigner({}, from {})", self.verifier, self.source)
    }
}

impl Signer for KeySigner {
    fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], LedgerError> {
        Ok(self.key.sign(message))
    }
}

impl KeySigner {
    pub fn new(key: SecretKey, source: impl Into<String>) -> KeySigner {
        KeySigner {
            verifier: key.verifier(),
            key,
            source: source.into(),
        }
    }

    /// Reads a key file (as `treaty ledger keygen` writes it).
    pub fn from_file(path: &Path) -> Result<KeySigner, LedgerError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            LedgerError::Key(format!(
                "cannot read the ledger key {}: {e}",
                path.display()
            ))
        })?;
        warn_if_readable_by_others(path);
        let key = SecretKey::parse(&text)
            .map_err(|e| LedgerError::Key(format!("{}: {e}", path.display())))?;
        Ok(KeySigner::new(key, path.display().to_string()))
    }

    /// Reads the key text from an environment variable's value.
    pub fn from_env_value(name: &str, value: &str) -> Result<KeySigner, LedgerError> {
        let key = SecretKey::parse(value)
            .map_err(|e| LedgerError::Key(format!("environment variable {name}: {e}")))?;
        Ok(KeySigner::new(key, format!("${name}")))
    }

    /// The key as an `Arc<dyn Signer>`.
    pub fn shared(self) -> Arc<dyn Signer> {
        Arc::new(self)
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the ledger key file is readable by other users; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Writes a new key named `name` to `path` (mode 0600), refusing to
/// overwrite a file. Returns the public verifier key.
pub fn keygen(path: &Path, name: &str) -> Result<VerifierKey, LedgerError> {
    let key = SecretKey::generate(name).map_err(|e| LedgerError::Key(e.to_string()))?;
    write_key_file(path, &key)?;
    Ok(key.verifier())
}

/// Writes `key` to a new file at `path` with mode 0600.
pub fn write_key_file(path: &Path, key: &SecretKey) -> Result<(), LedgerError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        LedgerError::Key(format!(
            "cannot create the ledger key file {}: {e}",
            path.display()
        ))
    })?;
    file.write_all(format!("{}\n", key.encode()).as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Where the ledger's key comes from.
#[derive(Debug, Clone, Default)]
pub enum SignerSource {
    /// A key file; `generate`: create it (0600) when it does not exist.
    File { path: PathBuf, generate: bool },
    /// An environment variable holding the key text (already read).
    Env { name: String, value: String },
    /// A signer the caller built (an HSM or KMS adapter, a test key).
    Signer(Arc<dyn Signer>),
    /// Nothing configured: a key file beside the SQLite store, created on
    /// first start (see [`crate::Ledger::open`]).
    #[default]
    Auto,
}

/// The default origin (key name) of a log whose key Treaty generates.
pub fn default_origin() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty() && !h.contains(|c: char| c.is_whitespace() || c == '+'))
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/treaty-ledger")
}

/// The signer `source` names for a log on `store` (the same key
/// [`crate::Ledger::open`] would use), e.g. to sign a receipt offline.
pub fn signer_for(
    source: &SignerSource,
    store: &treaty_store::Store,
) -> Result<Arc<dyn Signer>, LedgerError> {
    let auto = store
        .sqlite_file()
        .map(|db| db.with_extension("ledger.key"));
    load(source, auto.as_deref())
}

/// Loads (or, where allowed, creates) the key `source` names.
pub(crate) fn load(
    source: &SignerSource,
    auto_path: Option<&Path>,
) -> Result<Arc<dyn Signer>, LedgerError> {
    match source {
        SignerSource::Signer(s) => Ok(s.clone()),
        SignerSource::Env { name, value } => Ok(KeySigner::from_env_value(name, value)?.shared()),
        SignerSource::File { path, generate } => load_file(path, *generate),
        SignerSource::Auto => {
            let path = auto_path.ok_or_else(|| {
                LedgerError::Key(
                    "no ledger signing key is configured and the store is not a local file: \
                     set ledger.signing_key = { file = \"...\" } (create one with `treaty ledger keygen --out FILE`)"
                        .into(),
                )
            })?;
            load_file(path, true)
        }
    }
}

fn load_file(path: &Path, generate: bool) -> Result<Arc<dyn Signer>, LedgerError> {
    if generate && !path.exists() {
        let vkey = keygen(path, &default_origin())?;
        tracing::warn!(
            path = %path.display(),
            public_key = %vkey,
            "no ledger signing key was configured: generated one (mode 0600); \
             keep it off the store's disk and back it up, and publish the public key"
        );
    }
    Ok(KeySigner::from_file(path)?.shared())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_private_file_that_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.key");
        let vkey = keygen(&path, "example.com/log").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let signer = KeySigner::from_file(&path).unwrap();
        assert_eq!(signer.verifier(), &vkey);
        assert!(
            keygen(&path, "example.com/log").is_err(),
            "never overwrites"
        );
        assert!(!format!("{signer:?}").contains("PRIVATE"));
        let text = std::fs::read_to_string(&path).unwrap();
        let from_env = KeySigner::from_env_value("K", &text).unwrap();
        assert_eq!(from_env.verifier(), &vkey);
        assert!(KeySigner::from_env_value("K", "nonsense").is_err());
    }
}
