//! HTTPS, the redirect listener, certificate reload and the production checks, against the
//! real binary with certificates made in the test.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::process::{
    command, free_port, output_within, signal, start, wait_for_exit, wait_until_healthy,
};
use crate::raw_http::{RawRequest, RawResponse};

/// Accepts any certificate: the tests compare the presented certificate with the one they
/// expect instead (a self-signed test certificate has no CA to chain to).
#[derive(Debug)]
struct RecordOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for RecordOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// GET `path` over HTTPS: the response and the certificate the server presented.
async fn https_get(port: u16, path: &str) -> std::io::Result<(RawResponse, Vec<u8>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordOnly(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c[0].as_ref().to_vec())
        .unwrap_or_default();
    tls.write_all(&RawRequest::get(path).host("localhost").to_bytes())
        .await?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    Ok((RawResponse::parse(&response), certificate))
}

/// Writes a new self-signed certificate for localhost into `dir`; returns its DER.
fn write_certificate(dir: &Path) -> Vec<u8> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem()).unwrap();
    certified.cert.der().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_with_hsts_redirects_plain_http_and_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_certificate(dir.path());
    let (port, redirect_port) = (free_port(), free_port());
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let (mut server, _console) = start(
        dir.path(),
        port,
        &[
            ("TLS_CERT_PATH", &cert),
            ("TLS_KEY_PATH", &key),
            ("HTTP_REDIRECT_PORT", &redirect_port.to_string()),
            ("PUBLIC_HOST", "localhost"),
        ],
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let (response, presented) = loop {
        match https_get(port, "/health").await {
            Ok((response, certificate)) if response.status == 200 => break (response, certificate),
            _ => assert!(Instant::now() < deadline, "HTTPS came up"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(presented, first, "the configured certificate is served");
    assert!(
        response
            .header("strict-transport-security")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("max-age=")),
        "{}",
        response.raw
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = RawRequest::get("/health")
        .host("localhost")
        .try_send(port)
        .map(|r| r.raw)
        .unwrap_or_default();
    assert!(!plain.starts_with("HTTP/"), "{plain:?}");

    // The redirect listener sends everything to the same path on HTTPS.
    let redirected = RawRequest::get("/api/v1/inventory?page=2")
        .host(&format!("localhost:{redirect_port}"))
        .send(redirect_port);
    assert_eq!(redirected.status, 308, "{}", redirected.raw);
    let location = format!("https://localhost:{port}/api/v1/inventory?page=2");
    assert_eq!(
        redirected.header("location"),
        Some(location.as_str()),
        "{}",
        redirected.raw
    );

    // Whatever Host a request names, the redirect goes to PUBLIC_HOST, never elsewhere.
    for host in ["evil.example", "evil.example:443", "localhost@evil.example"] {
        let redirected = RawRequest::get("/x").host(host).send(redirect_port);
        assert_eq!(redirected.status, 308, "{host}: {}", redirected.raw);
        let location = format!("https://localhost:{port}/x");
        assert_eq!(
            redirected.header("location"),
            Some(location.as_str()),
            "{host}: {}",
            redirected.raw
        );
    }

    // A renewed certificate is picked up on SIGHUP, without a restart.
    let second = write_certificate(dir.path());
    assert_ne!(first, second);
    signal(&server, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((response, certificate)) = https_get(port, "/health").await {
            if certificate == second {
                assert_eq!(response.status, 200, "{}", response.raw);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate is served after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server.try_wait().unwrap(),
        None,
        "SIGHUP did not stop the server"
    );
    signal(&server, "TERM");
    assert!(wait_for_exit(&mut server).success());
}

#[test]
fn production_refuses_to_start_without_tls_or_with_a_weak_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = "k".repeat(48);
    for (vars, named) in [
        (vec![("SECRET_KEY", key.as_str())], "TLS"),
        (
            vec![
                ("SECRET_KEY", "too-short"),
                ("TLS_TERMINATED_UPSTREAM", "true"),
            ],
            "SECRET_KEY",
        ),
        (
            vec![
                (
                    "SECRET_KEY",
                    "change-me-to-a-random-string-of-at-least-32-bytes",
                ),
                ("TLS_TERMINATED_UPSTREAM", "true"),
            ],
            "SECRET_KEY",
        ),
        (vec![("TLS_TERMINATED_UPSTREAM", "true")], "SECRET_KEY"),
    ] {
        let mut all = vec![
            ("APP_ENV", "production"),
            ("DATABASE_URL", "sqlite://prod.db"),
        ];
        all.extend(vars.iter().copied());
        let output = output_within(command(dir.path(), &[], &all), Duration::from_secs(20));
        assert!(!output.status.success(), "{vars:?} must not start");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{vars:?}: {stderr}");
    }
}

#[test]
fn behind_a_tls_proxy_only_trusted_https_requests_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let key = "k".repeat(48);
    let (mut server, _console) = start(
        dir.path(),
        port,
        &[
            ("APP_ENV", "production"),
            ("DATABASE_URL", "sqlite://prod.db"),
            ("SECRET_KEY", &key),
            ("TLS_TERMINATED_UPSTREAM", "true"),
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    );
    wait_until_healthy(port);
    let inventory = || RawRequest::get("/api/v1/inventory");
    assert_eq!(inventory().send(port).status, 403, "no X-Forwarded-Proto");
    let forwarded = |proto: &str| {
        inventory()
            .header("X-Forwarded-Proto", proto)
            .send(port)
            .status
    };
    assert_eq!(forwarded("http"), 403);
    assert_eq!(forwarded("https"), 401, "served (and asks for a token)");
    let refused = inventory().send(port);
    let envelope = refused.json();
    assert!(
        envelope["message"] == "HTTPS required" && envelope["request_id"].is_string(),
        "{}",
        refused.raw
    );
    assert!(
        refused.header("strict-transport-security").is_some(),
        "{}",
        refused.raw
    );
    signal(&server, "TERM");
    assert!(wait_for_exit(&mut server).success());
}
