//! TLS to PostgreSQL with rustls, configured by libpq's `sslmode` and `sslrootcert`.
//!
//! tokio-postgres understands only `sslmode=disable|prefer|require` and no `sslrootcert`, so
//! [`split`] takes both out of the connection string (URL or `key=value`, multi-host alike),
//! hands the rest to tokio-postgres, and builds the rustls `ClientConfig` that gives each mode
//! libpq's meaning:
//!
//! | `sslmode` | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default, as in libpq) | when the server offers it, else plain | no |
//! | `require` | always | no |
//! | `verify-ca` | always | chain to a trusted root |
//! | `verify-full` | always | chain, and the host name (or IP address) connected to |
//!
//! As in libpq, a `sslrootcert` given with `prefer` or `require` makes them check the chain
//! like `verify-ca` (libpq does so whenever its root certificate file exists).
//! `sslrootcert` is a PEM file of trusted roots; `sslrootcert=system`, or no `sslrootcert` with
//! `verify-ca`/`verify-full`, trusts the system's roots. libpq would read
//! `~/.postgresql/root.crt` instead; a service in a container has no meaningful home, and a
//! managed database's CA is either public or given explicitly. As in libpq,
//! `sslrootcert=system` only goes with `verify-full` (the default mode then), since a public
//! CA vouches for anybody's certificate and only the name makes it this server's.
//!
//! Without a root to check against, `prefer` and `require` encrypt but accept any certificate,
//! which is libpq's meaning of them: protection from eavesdropping, not from an active
//! attacker. That is done with rustls' `dangerous()` verifier API, which still checks that the
//! server holds the key of the certificate it presents.

use std::{path::Path, sync::Arc};

use percent_encoding::percent_decode_str;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::WebPkiSupportedAlgorithms,
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, StoreError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's `allow` (plain first, TLS only if refused) protects nothing we want.
            _ => return Err(invalid("unsupported sslmode")),
        })
    }

    /// What tokio-postgres negotiates: the verifying modes require TLS.
    fn wire(self) -> WireMode {
        match self {
            SslMode::Disable => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
        }
    }
}

/// Where trusted roots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Roots {
    System,
    File(String),
}

/// The TLS parameters of a connection string, taken out of it.
#[derive(Debug, PartialEq, Eq)]
struct Split {
    /// The connection string without `sslmode` and `sslrootcert`, for tokio-postgres.
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

/// The tokio-postgres configuration and the TLS connector for a connection string.
pub(super) fn configure(
    url: &str,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect), StoreError> {
    let split = split(url)?;
    // The parse error names the offending option, never the URL (which may hold a password).
    let mut config: tokio_postgres::Config = split
        .rest
        .parse()
        .map_err(|error: tokio_postgres::Error| invalid(&error.to_string()))?;
    let roots = match split.sslrootcert.as_deref() {
        None | Some("") => None,
        Some("system") => Some(Roots::System),
        Some(path) => Some(Roots::File(path.to_owned())),
    };
    let mode = match (split.sslmode.as_deref(), &roots) {
        (Some(mode), _) => SslMode::parse(mode)?,
        (None, Some(Roots::System)) => SslMode::VerifyFull,
        (None, _) => SslMode::Prefer,
    };
    if roots == Some(Roots::System) && mode != SslMode::VerifyFull {
        return Err(invalid("sslrootcert=system requires sslmode=verify-full"));
    }
    config.ssl_mode(mode.wire());
    Ok((config, MakeRustlsConnect::new(client_config(mode, roots)?)))
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query or a `key=value` string, leaving
/// everything else (hosts, ports, other options) as written.
fn split(url: &str) -> Result<Split, StoreError> {
    let mut split = Split {
        rest: String::with_capacity(url.len()),
        sslmode: None,
        sslrootcert: None,
    };
    // Whether `key` is one of ours, kept aside; a later occurrence overrides, as in libpq.
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            split.sslmode = Some(value);
            true
        }
        "sslrootcert" => {
            split.sslrootcert = Some(value);
            true
        }
        _ => false,
    };
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let rest = if is_url {
        let Some((base, query)) = url.split_once('?') else {
            return Ok(Split {
                rest: url.to_owned(),
                sslmode: None,
                sslrootcert: None,
            });
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode_str(key).decode_utf8_lossy();
            if key != "sslmode" && key != "sslrootcert" {
                kept.push(pair);
                continue;
            }
            let value = percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| invalid("invalid percent-encoding"))?;
            take(&key, value.into_owned());
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut rest = String::with_capacity(url.len());
        for (key, value, text) in key_values(url)? {
            if !take(key, value) {
                rest.push_str(text);
            }
        }
        rest
    };
    split.rest = rest;
    Ok(split)
}

/// The `key=value` pairs of a libpq connection string, each with its exact text (leading
/// whitespace included), so one can be removed without rewriting the others. Values are
/// unquoted and unescaped as libpq does: `'…'` quotes, `\` escapes the next character.
fn key_values(text: &str) -> Result<Vec<(&str, String, &str)>, StoreError> {
    let mut pairs = Vec::new();
    let mut rest = text;
    loop {
        let start = text.len() - rest.len();
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(pairs);
        }
        let key_len = rest
            .find(|character: char| character == '=' || character.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_len];
        rest = rest[key_len..].trim_start();
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| invalid("expected = after an option"))?
            .trim_start();
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let quoted = rest.starts_with('\'');
        if quoted {
            chars.next();
        }
        let mut end = rest.len();
        let mut closed = !quoted;
        while let Some((at, character)) = chars.next() {
            match character {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '\'' if quoted => {
                    end = at + 1;
                    closed = true;
                    break;
                }
                character if !quoted && character.is_whitespace() => {
                    end = at;
                    break;
                }
                character => value.push(character),
            }
        }
        if !closed {
            return Err(invalid("unterminated quoted value"));
        }
        rest = &rest[end..];
        pairs.push((key, value, &text[start..text.len() - rest.len()]));
    }
}

fn client_config(mode: SslMode, roots: Option<Roots>) -> Result<ClientConfig, StoreError> {
    // Our own provider, not the process default: the gRPC server's TLS must not decide ours.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error(&error.to_string()))?;
    let check_chain = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => roots.is_some(),
        SslMode::VerifyCa | SslMode::VerifyFull => true,
    };
    let algorithms = provider.signature_verification_algorithms;
    let chain = match (check_chain, mode) {
        (false, _) => None,
        (true, SslMode::VerifyFull) => {
            let roots = load_roots(roots.as_ref().unwrap_or(&Roots::System))?;
            return Ok(builder.with_root_certificates(roots).with_no_client_auth());
        }
        (true, _) => {
            let roots = Arc::new(load_roots(roots.as_ref().unwrap_or(&Roots::System))?);
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|error| tls_error(&error.to_string()))?;
            Some(verifier)
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Lenient { algorithms, chain }))
        .with_no_client_auth())
}

fn load_roots(roots: &Roots) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(tls_error("no system root certificates found"));
            }
        }
        Roots::File(path) => {
            let unreadable = |error: &dyn std::fmt::Display| {
                tls_error(&format!("cannot read sslrootcert {path}: {error}"))
            };
            for certificate in CertificateDer::pem_file_iter(Path::new(path))
                .map_err(|error| unreadable(&error))?
            {
                store
                    .add(certificate.map_err(|error| unreadable(&error))?)
                    .map_err(|error| unreadable(&error))?;
            }
            if store.is_empty() {
                return Err(tls_error(&format!(
                    "sslrootcert {path} holds no certificate"
                )));
            }
        }
    }
    Ok(store)
}

fn invalid(why: &str) -> StoreError {
    StoreError::Internal(format!("invalid database url: {why}"))
}

fn tls_error(why: &str) -> StoreError {
    StoreError::Internal(format!("database tls: {why}"))
}

/// A verifier more lenient than rustls' own, for the modes that do not check the name:
/// `verify-ca` (and `prefer`/`require` with a root) checks the chain only; `prefer`/`require`
/// without a root check nothing, as libpq (see the module documentation). Either way the
/// handshake signature is checked against the presented key.
#[derive(Debug)]
struct Lenient {
    algorithms: WebPkiSupportedAlgorithms,
    /// Checks the chain (and the name, whose failure is ignored); `None` accepts any
    /// certificate.
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain before the name, so a name mismatch means the chain is good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, Option<String>, Option<String>) {
        let split = split(url).unwrap();
        (split.rest, split.sslmode, split.sslrootcert)
    }

    #[test]
    fn tls_parameters_are_taken_out_of_urls() {
        assert_eq!(
            parts(
                "postgres://u:p@h1:5432,h2:5433/db?sslmode=verify-ca&target_session_attrs=read-write&sslrootcert=%2Fetc%2Fca.pem"
            ),
            (
                "postgres://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write".into(),
                Some("verify-ca".into()),
                Some("/etc/ca.pem".into())
            )
        );
        assert_eq!(
            parts("postgresql://h/db?sslmode=require"),
            ("postgresql://h/db".into(), Some("require".into()), None)
        );
        assert_eq!(
            parts("postgres://h/db"),
            ("postgres://h/db".into(), None, None)
        );
    }

    #[test]
    fn tls_parameters_are_taken_out_of_key_values() {
        assert_eq!(
            parts(
                "host=h1,h2 sslmode = verify-full password='a b\\'c' sslrootcert='/x y/ca.pem' dbname=d"
            ),
            (
                "host=h1,h2 password='a b\\'c' dbname=d".into(),
                Some("verify-full".into()),
                Some("/x y/ca.pem".into())
            )
        );
        assert!(split("host=h sslmode='require").is_err());
    }

    #[test]
    fn modes_follow_libpq() {
        let mode = |url: &str| configure(url).map(|(config, _)| config.get_ssl_mode());
        assert_eq!(mode("host=h").unwrap(), WireMode::Prefer);
        assert_eq!(mode("host=h sslmode=disable").unwrap(), WireMode::Disable);
        assert_eq!(mode("host=h sslmode=require").unwrap(), WireMode::Require);
        // The system's roots may be absent where the tests run; only the mode matters here.
        assert!(matches!(
            mode("host=h sslrootcert=system sslmode=require"),
            Err(StoreError::Internal(why)) if why.contains("verify-full")
        ));
        assert!(mode("host=h sslmode=allow").is_err());
        assert!(mode("host=h sslmode=verify-ca sslrootcert=/nonexistent/ca.pem").is_err());
    }
}
