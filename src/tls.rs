//! TLS for the client: which certificate authorities are trusted, and how a certificate problem
//! is told apart from a network failure.
//!
//! rustls with the `ring` provider: no OpenSSL to link (the wheel must run in any Odoo
//! container) and no aws-lc C/cmake build (the wheel is cross-built with zig for manylinux2014).
//! The trusted roots are the union of
//! - the Mozilla roots bundled in the wheel (`webpki-roots`), so a container without a CA
//!   package still reaches Plane Cloud;
//! - the system store, read as OpenSSL would find it, honouring `SSL_CERT_FILE` and
//!   `SSL_CERT_DIR` (`rustls-native-certs`): an internal CA installed the usual way is trusted;
//! - an explicit `ca_bundle` PEM file per client, for a self-hosted Plane behind an internal CA
//!   that the system store does not have.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::errors::CoreError;

/// A CA bundle bigger than this is not a CA bundle (the system's whole store is about 200 KiB).
pub const MAX_CA_BUNDLE_BYTES: u64 = 16 << 20;

/// The certificates of a `ca_bundle` file, read and checked once when the client is made.
#[derive(Debug, Clone)]
pub struct CaBundle {
    certs: Arc<Vec<CertificateDer<'static>>>,
    /// sha256 over the certificates: the key of the connection pool that trusts them.
    fingerprint: String,
}

impl CaBundle {
    /// Reads a PEM file of CA certificates.
    ///
    /// The path is operator configuration (Odoo's `plane.ca_bundle`), so it is checked before it
    /// is read: a regular file (not a device or a FIFO that would block or never end), of a sane
    /// size, holding at least one PEM certificate. Errors name the path and the problem, never
    /// the file's content.
    pub fn from_pem_file(path: &str) -> Result<CaBundle, CoreError> {
        let bad = |why: String| CoreError::Config(format!("ca_bundle {path:?}: {why}"));
        if path.trim().is_empty() {
            return Err(bad("the path is empty".into()));
        }
        let meta = std::fs::metadata(Path::new(path)).map_err(|e| bad(format!("{e}")))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        if meta.len() > MAX_CA_BUNDLE_BYTES {
            return Err(bad(format!(
                "{} bytes is too big for a CA bundle (at most {} MiB)",
                meta.len(),
                MAX_CA_BUNDLE_BYTES >> 20
            )));
        }
        let raw = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        CaBundle::from_pem(&raw).map_err(|why| bad(why.to_string()))
    }

    /// The certificates of PEM text; other PEM sections (keys, CRLs) are ignored.
    pub fn from_pem(pem: &[u8]) -> Result<CaBundle, &'static str> {
        let mut certs = Vec::new();
        for cert in CertificateDer::pem_slice_iter(pem) {
            certs.push(cert.map_err(|_| "not a valid PEM file")?);
        }
        if certs.is_empty() {
            return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
        }
        // Each one must be a certificate a root store accepts, or the operator would only learn
        // at the first request that the bundle was useless.
        let mut probe = RootCertStore::empty();
        for cert in &certs {
            probe
                .add(cert.clone())
                .map_err(|_| "holds a certificate that cannot be parsed as a CA certificate")?;
        }
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        for cert in &certs {
            sha2::Digest::update(&mut hasher, cert.as_ref());
        }
        Ok(CaBundle {
            certs: Arc::new(certs),
            fingerprint: hex::encode(sha2::Digest::finalize(hasher)),
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// The bundled roots plus the system store. Reading the system store parses a few hundred
/// certificates (a few milliseconds), so a process does it once (see runtime.rs).
pub fn default_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        // A missing or unreadable system store is normal in slim containers: the bundled roots
        // still work.
        log::debug!("system CA store: {err}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    log::debug!("system CA store: {added} certificates trusted, {ignored} unparsable skipped");
    roots
}

/// The rustls configuration of one connection pool: `base` roots plus the `extra` bundle.
pub fn client_config(
    base: &RootCertStore,
    extra: Option<&CaBundle>,
) -> Result<rustls::ClientConfig, CoreError> {
    let mut roots = base.clone();
    if let Some(bundle) = extra {
        for cert in bundle.certs.iter() {
            // Checked when the bundle was read.
            let _ = roots.add(cert.clone());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CoreError::Config(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The TLS failure behind a request error, if there is one. A TLS failure is a property of the
/// server's certificate or of our trust store: sending again cannot fix it, so it is not retried.
pub fn tls_failure<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error::source() skips the error it wraps (and the connector nests io::Errors):
        // step into it explicitly.
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// What to tell the operator about a TLS failure.
pub fn describe_tls_failure(err: &rustls::Error) -> String {
    match err {
        rustls::Error::InvalidCertificate(cert) => format!(
            "the server's TLS certificate was refused ({}): for a Plane behind an internal CA, \
             pass ca_bundle= (CLI --ca-bundle, Odoo plane.ca_bundle) or add the CA to the \
             system store or SSL_CERT_FILE",
            describe_certificate_error(cert)
        ),
        other => format!("TLS handshake failed ({other})"),
    }
}

fn describe_certificate_error(err: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match err {
        E::UnknownIssuer => "issued by an unknown certificate authority".into(),
        E::Expired | E::ExpiredContext { .. } => "expired".into(),
        E::NotValidYet | E::NotValidYetContext { .. } => "not valid yet".into(),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "not valid for this host name".into()
        }
        E::Revoked => "revoked".into(),
        E::BadSignature => "bad signature".into(),
        E::BadEncoding => "badly encoded".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_needs_a_certificate() {
        assert!(CaBundle::from_pem(b"").is_err());
        assert!(CaBundle::from_pem(b"just text\n").is_err());
        let not_a_cert = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(CaBundle::from_pem(not_a_cert).is_err());
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(CaBundle::from_pem(garbage).is_err());
    }

    #[test]
    fn bundle_paths_are_checked_before_reading() {
        for (path, want) in [
            ("", "empty"),
            ("/nonexistent/ca.pem", "No such file"),
            ("/dev/null", "not a regular file"),
            ("/tmp", "not a regular file"),
        ] {
            let err = CaBundle::from_pem_file(path).unwrap_err().to_string();
            assert!(err.contains(want), "{path:?}: {err}");
        }
    }
}
