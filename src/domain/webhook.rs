//! Webhooks (docs/webhooks.md): a URL that gets the outbox's events that match it, POSTed one
//! at a time in event order, each signed with the webhook's secret. Here: what a webhook is,
//! the rules of its fields, its secret, the signature of a delivery, the retry schedule, and
//! the record of each attempt. The delivery worker itself is `crate::webhooks`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use sha2::Sha256;
use utoipa::ToSchema;

use super::{EventType, SellerId, Timestamp};

/// Longest `url` accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Most sellers one webhook may name.
pub const MAX_WEBHOOK_SELLERS: usize = 100;

/// The target of a webhook: an absolute `http` or `https` URL with a host and no credentials.
/// (Whether `http` is allowed, and where the host points, are checked by the caller: they
/// depend on the configuration and on DNS.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub const RULE: &'static str =
        "must be an absolute http or https URL with a host, without user or password, \
         at most 2048 characters";

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        if value.len() > MAX_URL_LEN {
            return Err(Self::RULE);
        }
        let url = url::Url::parse(value).map_err(|_| Self::RULE)?;
        let usable = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none();
        if usable {
            Ok(Self(url))
        } else {
            Err(Self::RULE)
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }

    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }
}

/// The event types a webhook wants: at least one, each known, no repeats.
pub fn parse_event_types(types: Vec<EventType>) -> Result<Vec<EventType>, &'static str> {
    if types.is_empty() {
        return Err("must name at least one event type");
    }
    let mut distinct: Vec<EventType> = Vec::with_capacity(types.len());
    for t in types {
        if distinct.contains(&t) {
            return Err("must name each event type once");
        }
        distinct.push(t);
    }
    Ok(distinct)
}

/// A webhook's signing secret: `whsec_` and 64 hex digits (32 bytes from the operating
/// system's CSPRNG). Shown to the client once, when the webhook is created; its `Debug` never
/// shows it, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub const PREFIX: &'static str = "whsec_";

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("{}{hex}", Self::PREFIX))
    }

    /// A secret as stored.
    pub fn from_stored(secret: String) -> Self {
        Self(secret)
    }

    /// The secret itself: for the one response that shows it, for storing, and for signing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `Sellerdesk-Signature` of `body` sent at `t` (unix seconds):
    /// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. The whole secret, prefix included,
    /// is the key.
    pub fn sign(&self, t: i64, body: &[u8]) -> String {
        // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("t={t},v1={hex}")
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// A webhook to create.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: WebhookUrl,
    pub event_types: Vec<EventType>,
    /// `None`: every seller (only an admin's webhook; a seller's names their sellers).
    pub seller_ids: Option<Vec<SellerId>>,
    pub secret: WebhookSecret,
}

/// A stored webhook, as the API shows it (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Webhook {
    #[schema(example = 3)]
    pub id: i64,
    #[schema(value_type = String, example = "https://hooks.example.com/sellerdesk")]
    pub url: String,
    #[schema(value_type = Vec<String>, example = json!(["inventory.stock.low_warning", "inventory.updated"]))]
    pub event_types: Vec<EventType>,
    /// The sellers whose events it gets; null for every seller.
    #[schema(value_type = Option<Vec<String>>, example = json!(["A1SELLER0001"]))]
    pub seller_ids: Option<Vec<SellerId>>,
    /// The user who registered it.
    #[schema(example = 1)]
    pub created_by: i64,
    pub create_time: Timestamp,
    /// Every matching event up to this id has been delivered or given up.
    #[schema(example = 42)]
    pub last_event_id: i64,
    /// Since when attempts at the next event have been failing; null while none fails.
    pub failing_since: Option<Timestamp>,
    /// When the next event is tried again; null unless it is failing.
    pub next_attempt_at: Option<Timestamp>,
}

/// A webhook claimed for delivery: what the worker needs besides what the API shows.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub webhook: Webhook,
    pub secret: WebhookSecret,
    /// Failed attempts at the next event so far.
    pub attempts: u32,
}

/// What a claimed webhook is to do next.
#[derive(Debug)]
pub enum NextEvent {
    /// Deliver this event.
    Deliver(super::Event),
    /// No event up to this id matches: move the cursor there.
    Skip(i64),
    /// Nothing after the cursor.
    Idle,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// A 2xx answer within the timeout.
    Delivered,
    /// Anything else; the event is tried again later.
    Failed,
    /// Failed, and attempts at this event had been failing for the give-up time: the webhook
    /// goes on with the next event.
    GivenUp,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::GivenUp => "given_up",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Delivered, Self::Failed, Self::GivenUp]
            .into_iter()
            .find(|o| o.as_str() == value)
    }
}

/// One attempt to deliver an event, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Delivery {
    #[schema(example = 17)]
    pub id: i64,
    #[schema(example = 3)]
    pub webhook_id: i64,
    #[schema(example = 42)]
    pub event_id: i64,
    /// 1 for the first attempt at this event, then 2, 3, ...
    #[schema(example = 1)]
    pub attempt: u32,
    pub attempted_at: Timestamp,
    /// The HTTP status the receiver answered; null when no answer came.
    #[schema(example = 200)]
    pub status_code: Option<u16>,
    /// Why no answer came (timeout, connection refused, address not allowed, ...).
    #[schema(example = json!(null))]
    pub error: Option<String>,
    #[schema(example = 35)]
    pub latency_ms: u64,
    pub outcome: DeliveryOutcome,
}

/// An attempt to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub event_id: i64,
    pub attempt: u32,
    pub attempted_at: Timestamp,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub outcome: DeliveryOutcome,
}

/// The delivery state of a claimed webhook after an attempt (or after skipping events that do
/// not match), written only while `owner` still holds the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookProgress {
    pub webhook_id: i64,
    pub owner: String,
    pub last_event_id: i64,
    pub attempts: u32,
    pub failing_since: Option<Timestamp>,
    pub next_attempt_at: Option<Timestamp>,
    /// The lease renewed to this time.
    pub lease_until: Timestamp,
    pub delivery: Option<NewDelivery>,
}

/// When failed deliveries are tried again: after `base`, then twice as long each time, at
/// most `cap`, until attempts at one event have failed for `give_up_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// 1 s, 2 s, 4 s, ... at most 1 h apart, given up 24 h after the first failure.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failures`-th failed attempt at one event (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }

    /// The state after an attempt at `event_id` ended `delivered` or not, at `now`: the next
    /// cursor, attempts, failing-since and next-attempt time, and the outcome to record.
    pub fn after_attempt(
        &self,
        target: &WebhookTarget,
        event_id: i64,
        delivered: bool,
        now: Timestamp,
    ) -> (
        i64,
        u32,
        Option<Timestamp>,
        Option<Timestamp>,
        DeliveryOutcome,
    ) {
        let cursor = target.webhook.last_event_id;
        if delivered {
            return (event_id, 0, None, None, DeliveryOutcome::Delivered);
        }
        let since = target.webhook.failing_since.unwrap_or(now);
        let failing_for = Duration::from_micros(
            now.micros()
                .saturating_sub(since.micros())
                .max(0)
                .unsigned_abs(),
        );
        if failing_for >= self.give_up_after {
            return (event_id, 0, None, None, DeliveryOutcome::GivenUp);
        }
        let failures = target.attempts + 1;
        let next = now.plus(self.delay(failures));
        (
            cursor,
            failures,
            Some(since),
            Some(next),
            DeliveryOutcome::Failed,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_http_or_https_with_a_host_and_no_credentials() {
        for good in [
            "https://hooks.example.com/sellerdesk",
            "http://127.0.0.1:8080/x?y=1",
            "https://[::1]/",
        ] {
            assert!(WebhookUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/relative",
            "hooks.example.com",
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "mailto:a@example.com",
        ] {
            assert_eq!(WebhookUrl::parse(bad), Err(WebhookUrl::RULE), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(WebhookUrl::parse(&long).is_err());
    }

    #[test]
    fn event_types_are_at_least_one_and_each_once() {
        assert!(parse_event_types(vec![]).is_err());
        assert!(parse_event_types(vec![
            EventType::InventoryUpdated,
            EventType::InventoryUpdated
        ])
        .is_err());
        assert_eq!(
            parse_event_types(vec![EventType::InventoryUpdated]),
            Ok(vec![EventType::InventoryUpdated])
        );
    }

    #[test]
    fn secrets_are_random_prefixed_and_never_shown_by_debug() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(a.expose().len(), 6 + 64);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // Computed independently: Python's hmac.new(b"key", b'1700000000.{"id":1}', sha256).
        let secret = WebhookSecret::from_stored("key".to_owned());
        assert_eq!(
            secret.sign(1_700_000_000, br#"{"id":1}"#),
            "t=1700000000,v1=1d542af0cd7355fefa5c19021ad89d3e2afd77ebff5448db280f180e013d2651"
        );
    }

    #[test]
    fn retries_double_from_the_base_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let delays: Vec<u64> = (1..=14).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]
        );
        assert_eq!(policy.delay(u32::MAX), policy.cap);
    }

    fn target(failing_since: Option<Timestamp>, attempts: u32) -> WebhookTarget {
        WebhookTarget {
            webhook: Webhook {
                id: 1,
                url: "https://example.com/".to_owned(),
                event_types: vec![EventType::InventoryUpdated],
                seller_ids: None,
                created_by: 1,
                create_time: Timestamp::now(),
                last_event_id: 10,
                failing_since,
                next_attempt_at: None,
            },
            secret: WebhookSecret::generate(),
            attempts,
        }
    }

    #[test]
    fn a_failure_is_retried_until_it_has_failed_for_the_give_up_time() {
        let policy = RetryPolicy::default();
        let now = Timestamp::now();
        let (cursor, attempts, since, next, outcome) =
            policy.after_attempt(&target(None, 0), 11, false, now);
        assert_eq!((cursor, attempts, since), (10, 1, Some(now)));
        assert_eq!(next, Some(now.plus(Duration::from_secs(1))));
        assert_eq!(outcome, DeliveryOutcome::Failed);

        let day_ago = now.minus(Duration::from_secs(24 * 3600));
        let (cursor, attempts, since, next, outcome) =
            policy.after_attempt(&target(Some(day_ago), 30), 11, false, now);
        assert_eq!((cursor, attempts, since, next), (11, 0, None, None));
        assert_eq!(outcome, DeliveryOutcome::GivenUp);

        let (cursor, attempts, since, next, outcome) =
            policy.after_attempt(&target(Some(day_ago), 30), 11, true, now);
        assert_eq!((cursor, attempts, since, next), (11, 0, None, None));
        assert_eq!(outcome, DeliveryOutcome::Delivered);
    }
}
