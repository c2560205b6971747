//! The request id: kept from a sane incoming `X-Request-ID`, made up otherwise, and handed to
//! handlers and later layers as the `RequestId` extension. Setting it on the request and the
//! response is `request_context`'s job (`context.rs`).

use axum::http::HeaderValue;
use rand::RngCore;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest incoming request id we keep; a longer one is replaced.
const MAX_INCOMING_LEN: usize = 64;

/// The id of the current request, as an extension for handlers and later layers.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

/// Keeps a sane incoming `X-Request-ID` (≤ 64 of `[A-Za-z0-9._-]`), else makes a new one.
pub(super) fn keep_or_make(incoming: Option<&HeaderValue>) -> HeaderValue {
    let sane = |v: &&HeaderValue| {
        let bytes = v.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_INCOMING_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if let Some(value) = incoming.filter(sane) {
        return value.clone();
    }
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&hex).expect("hex digits are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_incoming_id_is_kept_and_anything_else_replaced() {
        let kept = HeaderValue::from_static("abc-123_x.y");
        assert_eq!(keep_or_make(Some(&kept)), kept);
        let too_long = "a".repeat(MAX_INCOMING_LEN + 1);
        for incoming in [
            None,
            Some(HeaderValue::from_static("")),
            Some(HeaderValue::from_static("has space")),
            Some(HeaderValue::from_static("semi;colon")),
            Some(HeaderValue::from_str(&too_long).unwrap()),
        ] {
            let made = keep_or_make(incoming.as_ref());
            assert_ne!(Some(&made), incoming.as_ref(), "{incoming:?}");
            assert_eq!(made.len(), 32, "{incoming:?}");
            assert!(
                made.as_bytes().iter().all(u8::is_ascii_hexdigit),
                "{incoming:?}"
            );
        }
    }
}
