//! TLS termination, for deployments with no proxy in front: the
//! certificate chain and private key come from PEM files and are read
//! again when either file changes, so a renewed certificate (certbot,
//! cert-manager's symlink swap) takes effect without a restart. A change
//! that does not load (a half-written file, a key that does not match)
//! keeps the last good pair in service and says why in the log.
//!
//! rustls with the ring provider, as everywhere else in Treaty; HTTP/1.1
//! is the only protocol offered (ALPN), matching the plain listener.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Why a certificate and key pair could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate", .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("the key in {} does not match the certificate in {}: {reason}", key.display(), cert.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// The files a TLS listener serves, and how often they are checked.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub reload_interval: Duration,
}

impl TlsFiles {
    pub fn from_config(tls: &treaty_config::TlsConfig) -> TlsFiles {
        TlsFiles {
            cert_file: tls.cert_file.clone(),
            key_file: tls.key_file.clone(),
            reload_interval: tls.reload_interval,
        }
    }
}

/// A TLS acceptor whose certificate follows its files.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<Reloading>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.resolver.files)
            .finish()
    }
}

impl Tls {
    /// Loads the pair now (an error here stops the server from starting);
    /// call [`Tls::watch`] to follow later changes.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (bytes, key) = read_pair(&files, &provider)?;
        let resolver = Arc::new(Reloading {
            files,
            provider: provider.clone(),
            current: Mutex::new((bytes, Arc::new(key))),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Certificate {
                path: resolver.files.cert_file.clone(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
        })
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Checks the files every `reload_interval` until the returned task is
    /// dropped or aborted, and serves a changed pair once it loads.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let resolver = self.resolver.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(resolver.files.reload_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                resolver.reload_if_changed();
            }
        })
    }
}

/// Serves the last pair that loaded.
struct Reloading {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    /// The files' bytes when they last loaded, and what they gave.
    current: Mutex<(Vec<u8>, Arc<CertifiedKey>)>,
}

impl fmt::Debug for Reloading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloading")
            .field("files", &self.files)
            .finish()
    }
}

impl Reloading {
    fn reload_if_changed(&self) {
        // Comparing the bytes, not the modification times: a symlink swap
        // can keep a timestamp, and two small files every few seconds cost
        // nothing.
        let read =
            read(&self.files.cert_file).and_then(|cert| Ok((cert, read(&self.files.key_file)?)));
        let (cert_pem, key_pem) = match read {
            Ok(pems) => pems,
            Err(e) => return self.failed(e),
        };
        if self.lock().0 == [cert_pem.as_slice(), key_pem.as_slice()].concat() {
            return;
        }
        match parse_pair(&self.files, cert_pem, key_pem, &self.provider) {
            Ok((bytes, key)) => {
                *self.lock() = (bytes, Arc::new(key));
                tracing::info!(
                    cert_file = %self.files.cert_file.display(),
                    "TLS certificate reloaded"
                );
            }
            Err(e) => self.failed(e),
        }
    }

    fn failed(&self, error: TlsError) {
        tracing::error!(%error, "TLS certificate not reloaded; serving the previous one");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<u8>, Arc<CertifiedKey>)> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.lock().1.clone())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and checks both files: the bytes read (to notice the next
/// change) and the pair as rustls serves it.
fn read_pair(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<(Vec<u8>, CertifiedKey), TlsError> {
    let cert_pem = read(&files.cert_file)?;
    let key_pem = read(&files.key_file)?;
    parse_pair(files, cert_pem, key_pem, provider)
}

fn parse_pair(
    files: &TlsFiles,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    provider: &CryptoProvider,
) -> Result<(Vec<u8>, CertifiedKey), TlsError> {
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate {
            path: files.cert_file.clone(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(files.cert_file.clone()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key {
        path: files.key_file.clone(),
        reason: e.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Mismatch {
            cert: files.cert_file.clone(),
            key: files.key_file.clone(),
            reason: e.to_string(),
        })?;
    Ok(([cert_pem, key_pem].concat(), certified))
}
