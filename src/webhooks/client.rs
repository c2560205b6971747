//! The HTTP side of deliveries: one `reqwest` client for every webhook (rustls on the ring
//! provider, no proxy, no redirects, a 10 s timeout), whose DNS resolver refuses non-public
//! addresses unless `WEBHOOK_ALLOW_PRIVATE` is set; and `check_target`, the same rule applied
//! when a webhook is registered.
//!
//! The check happens in the resolver the connection uses, on the very addresses it connects
//! to, so a name that resolves to a public address when checked and to a private one a moment
//! later (DNS rebinding) gains nothing: there is no second look-up. URLs with an IP address as
//! host are not resolved, and are checked before the request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};

use super::address::is_public;
use crate::domain::{Event, WebhookSecret, WebhookUrl};

/// How long a receiver has to answer.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest error text kept in the delivery log.
const MAX_ERROR_LEN: usize = 300;

pub const EVENT_ID_HEADER: &str = "sellerdesk-event-id";
pub const SIGNATURE_HEADER: &str = "sellerdesk-signature";

/// Why a webhook's target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The host is, or resolves to, an address that is not public.
    #[error("the URL's host is or resolves to a loopback, private, link-local or other non-public address")]
    NotAllowed,
    /// The host name does not resolve.
    #[error("the URL's host name does not resolve")]
    Unresolvable,
}

/// How long a host name may take to resolve, at registration and before each delivery.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The addresses of `host`, refused when any is not public (unless `allow_private`).
async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, TargetError> {
    // The system resolver may hang; a name that does not answer in time does not resolve.
    let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)));
    let addrs: Vec<SocketAddr> = lookup
        .await
        .map_err(|_| TargetError::Unresolvable)?
        .map_err(|_| TargetError::Unresolvable)?
        .collect();
    if addrs.is_empty() {
        return Err(TargetError::Unresolvable);
    }
    if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(TargetError::NotAllowed);
    }
    Ok(addrs)
}

/// The IP address a URL names as its host, if it names one (`[::1]` included).
fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Checks, when a webhook is registered, that its URL leads to allowed addresses now (its
/// deliveries are checked again, each time, by the client's resolver).
pub async fn check_target(url: &WebhookUrl, allow_private: bool) -> Result<(), TargetError> {
    if let Some(ip) = literal_ip(url.url()) {
        return if allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(TargetError::NotAllowed)
        };
    }
    let host = url.url().host_str().unwrap_or_default();
    let port = url.url().port_or_known_default().unwrap_or(443);
    resolve_checked(host, port, allow_private).await.map(drop)
}

/// The resolver of the delivery client: the system's, with the address rule applied.
struct CheckedResolver {
    allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = resolve_checked(name.as_str(), 0, allow_private).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// What came of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The receiver's status, if it answered in time.
    pub status: Option<u16>,
    /// Why it did not (or `None`).
    pub error: Option<String>,
    pub latency: Duration,
}

impl Answer {
    /// A 2xx within the timeout.
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends deliveries: one client, shared by every webhook.
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    allow_private: bool,
}

impl Deliverer {
    pub fn new(allow_private: bool) -> Self {
        let client = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(DELIVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, out of reach of the address rule.
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver { allow_private }))
            .build()
            .expect("the webhook HTTP client builds (rustls with the ring provider)");
        Self {
            client,
            allow_private,
        }
    }

    /// POSTs `body` (the JSON of `event`) to `url`, signed with `secret` at this moment.
    pub async fn send(
        &self,
        url: &str,
        secret: &WebhookSecret,
        event: &Event,
        body: Vec<u8>,
    ) -> Answer {
        let started = Instant::now();
        let failed = |error: String| Answer {
            status: None,
            error: Some(error),
            latency: started.elapsed(),
        };
        let Ok(parsed) = WebhookUrl::parse(url) else {
            return failed("the stored URL is not valid".to_owned());
        };
        if let Some(ip) = literal_ip(parsed.url()) {
            if !self.allow_private && !is_public(ip) {
                return failed(TargetError::NotAllowed.to_string());
            }
        }
        let signature = secret.sign(crate::domain::Timestamp::now().unix(), &body);
        let request = self
            .client
            .post(parsed.url().clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, HeaderValue::from_static("sellerdesk-webhooks"))
            .header(EVENT_ID_HEADER, event.id)
            .header(SIGNATURE_HEADER, signature)
            .body(body);
        match request.send().await {
            Ok(response) => Answer {
                status: Some(response.status().as_u16()),
                error: None,
                latency: started.elapsed(),
            },
            Err(e) => failed(describe(&e)),
        }
    }
}

/// A short account of a failed request, without its URL (whose query may hold a token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out after 10 s"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // The innermost cause says most (e.g. "connection refused", or the address rule).
    let mut cause: Option<String> = None;
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        cause = Some(inner.to_string());
        source = inner.source();
    }
    let mut text = match cause {
        Some(cause) if !e.is_timeout() => format!("{kind}: {cause}"),
        _ => kind.to_owned(),
    };
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventType, SellerId, Timestamp};

    fn event() -> Event {
        Event {
            id: 1,
            event_type: EventType::InventoryUpdated,
            occurred_at: Timestamp::now(),
            seller_id: SellerId::parse("A1SELLER0001").unwrap(),
            data: serde_json::value::RawValue::from_string("{}".to_owned()).unwrap(),
        }
    }

    /// A listener on 127.0.0.1 that counts the connections it accepts.
    async fn listener() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counting = accepted.clone();
        tokio::spawn(async move {
            while let Ok((_stream, _)) = listener.accept().await {
                counting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        (port, accepted)
    }

    #[tokio::test]
    async fn a_delivery_to_a_non_public_address_is_refused_before_connecting() {
        let (port, accepted) = listener().await;
        let deliverer = Deliverer::new(false);
        let secret = WebhookSecret::generate();
        for url in [
            format!("http://127.0.0.1:{port}/hook"),
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
            // A name: refused by the resolver, on the addresses it resolved.
            format!("http://localhost:{port}/hook"),
        ] {
            let answer = deliverer
                .send(&url, &secret, &event(), b"{}".to_vec())
                .await;
            assert_eq!(answer.status, None, "{url}");
            let error = answer.error.unwrap_or_default();
            assert!(error.contains("non-public address"), "{url}: {error}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn registration_checks_the_resolved_addresses() {
        let check = |url: &str, allow| {
            let url = WebhookUrl::parse(url).unwrap();
            async move { check_target(&url, allow).await }
        };
        assert_eq!(
            check("http://localhost/", false).await,
            Err(TargetError::NotAllowed)
        );
        assert_eq!(check("http://localhost/", true).await, Ok(()));
        assert_eq!(
            check("https://169.254.169.254/", false).await,
            Err(TargetError::NotAllowed)
        );
        assert_eq!(check("https://8.8.8.8/", false).await, Ok(()));
        assert_eq!(
            check("https://no-such-host.invalid/", false).await,
            Err(TargetError::Unresolvable)
        );
    }
}
