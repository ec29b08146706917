//! Webhook signatures: `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
//! Signing the timestamp with the body lets a receiver refuse replays
//! outside a tolerance window; the `v1=` prefix leaves room for another
//! scheme later, and a header may list several signatures (comma
//! separated) so a receiver can accept the old and the new secret while
//! one is rotated. Comparison is constant-time; this module never logs.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The only scheme so far.
const SCHEME: &str = "v1=";

/// The MAC over `"{timestamp}.{body}"`; `None` only if the key is refused,
/// which HMAC does for no length (long keys are hashed first).
fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The `X-Treaty-Signature` value for `body` sent at `timestamp` (unix
/// seconds, as sent in `X-Treaty-Timestamp`).
pub(crate) fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> Option<String> {
    let tag = mac(secret, timestamp, body)?.finalize().into_bytes();
    Some(format!("{SCHEME}{}", hex::encode(tag)))
}

/// For receivers: true when `signature_header` holds a `v1=` signature of
/// `body` at `timestamp` made with `secret`, and `timestamp` (unix seconds)
/// is within `tolerance_secs` of `now_unix` either way. Several
/// comma-separated signatures may be given; one valid one is enough.
/// Compares in constant time.
pub fn verify_signature(
    secret: &[u8],
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> bool {
    let Ok(sent) = timestamp.trim().parse::<i64>() else {
        return false;
    };
    if now_unix.abs_diff(sent) > tolerance_secs.unsigned_abs() {
        return false;
    }
    signature_header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix(SCHEME))
        .filter_map(|tag| hex::decode(tag).ok())
        .any(|tag| {
            // The trimmed text is what was signed: `sign` never pads it.
            mac(secret, timestamp.trim(), body).is_some_and(|mac| mac.verify_slice(&tag).is_ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec-test";
    const NOW: i64 = 1_700_000_000;

    fn signed(body: &[u8]) -> String {
        sign(SECRET, &NOW.to_string(), body).unwrap()
    }

    #[test]
    fn a_fresh_signature_verifies() {
        let header = signed(b"{\"a\":1}");
        assert!(header.starts_with("v1=") && header.len() == 3 + 64);
        assert!(verify_signature(
            SECRET,
            "1700000000",
            &header,
            b"{\"a\":1}",
            NOW,
            300
        ));
        // Clock skew either way within the window is fine.
        assert!(verify_signature(
            SECRET,
            "1700000000",
            &header,
            b"{\"a\":1}",
            NOW - 300,
            300
        ));
        assert!(verify_signature(
            SECRET,
            "1700000000",
            &header,
            b"{\"a\":1}",
            NOW + 300,
            300
        ));
    }

    #[test]
    fn tampering_or_a_stale_timestamp_is_refused() {
        let header = signed(b"{\"a\":1}");
        let ok = |secret: &[u8], ts: &str, sig: &str, body: &[u8], now: i64| {
            verify_signature(secret, ts, sig, body, now, 300)
        };
        assert!(
            !ok(SECRET, "1700000000", &header, b"{\"a\":2}", NOW),
            "body"
        );
        assert!(
            !ok(SECRET, "1700000001", &header, b"{\"a\":1}", NOW),
            "timestamp"
        );
        assert!(
            !ok(b"other", "1700000000", &header, b"{\"a\":1}", NOW),
            "secret"
        );
        assert!(
            !ok(SECRET, "1700000000", &header, b"{\"a\":1}", NOW + 301),
            "stale"
        );
        assert!(
            !ok(SECRET, "1700000000", &header, b"{\"a\":1}", NOW - 301),
            "future"
        );
        let flipped = format!("{}0", &header[..header.len() - 1]);
        assert!(
            !ok(SECRET, "1700000000", &flipped, b"{\"a\":1}", NOW),
            "tag"
        );
        let other_scheme = header.replace("v1=", "v0=");
        assert!(
            !ok(SECRET, "1700000000", &other_scheme, b"{\"a\":1}", NOW),
            "scheme"
        );
        assert!(
            !ok(SECRET, "not-a-number", &header, b"{\"a\":1}", NOW),
            "ts"
        );
        assert!(!ok(SECRET, "1700000000", "v1=zz", b"{\"a\":1}", NOW), "hex");
        assert!(!ok(SECRET, "1700000000", "", b"{\"a\":1}", NOW), "empty");
    }

    #[test]
    fn one_valid_signature_among_several_is_enough() {
        let header = format!("v1={}, {}", "00".repeat(32), signed(b"x"));
        assert!(verify_signature(
            SECRET,
            "1700000000",
            &header,
            b"x",
            NOW,
            300
        ));
    }
}
