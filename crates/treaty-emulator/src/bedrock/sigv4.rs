//! SigV4 verification: the request is re-signed as received, with the
//! configured key pair and the client's own signed headers, time and
//! region, by the same signer clients use, and the signatures compared.

use super::{BedrockError, BedrockRequest};
use crate::app::Shared;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::http::StatusCode;
use std::time::{Duration, SystemTime};

/// AWS refuses signatures made more than 15 minutes from its clock.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=..., ...`.
struct Authorization<'a> {
    key_id: &'a str,
    service: &'a str,
    region: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for item in rest.split(',') {
        let (key, value) = item.trim().split_once('=')?;
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    // AKID/20240101/us-east-1/bedrock/aws4_request
    let mut scope = credential?.split('/');
    let key_id = scope.next()?;
    let _date = scope.next()?;
    let region = scope.next()?;
    let service = scope.next()?;
    if scope.next()? != "aws4_request" {
        return None;
    }
    Some(Authorization {
        key_id,
        service,
        region,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    })
}

/// Checks the request's SigV4 signature against one made with the
/// configured key pair, as Bedrock would.
pub(super) fn verify(shared: &Shared, request: &BedrockRequest) -> Result<(), BedrockError> {
    let text = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let Some(authorization) = text("authorization") else {
        return Err(BedrockError::new(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let auth = parse_authorization(authorization).ok_or_else(|| {
        BedrockError::new(
            StatusCode::FORBIDDEN,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
        )
    })?;
    if auth.key_id != shared.config.aws_access_key_id {
        return Err(BedrockError::new(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    if auth.service != "bedrock" {
        return Err(BedrockError::signature(format!(
            "Credential should be scoped to correct service: 'bedrock'. (got '{}')",
            auth.service
        )));
    }
    let date = text("x-amz-date")
        .ok_or_else(|| BedrockError::signature("Missing the x-amz-date header."))?;
    let when = parse_amz_date(date)
        .ok_or_else(|| BedrockError::signature("The x-amz-date header is not a date."))?;
    let now = SystemTime::now();
    let skew = now
        .duration_since(when)
        .or_else(|_| when.duration_since(now))
        .unwrap_or_default();
    if skew > MAX_CLOCK_SKEW {
        return Err(BedrockError::signature(
            "Signature expired: the request time is more than 15 minutes from the server's.",
        ));
    }
    // What the client signed, as received; the signer adds `x-amz-date`
    // and `x-amz-security-token` itself from the credentials and time.
    let mut signed = Vec::new();
    for name in &auth.signed_headers {
        if matches!(*name, "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        let value = text(name).ok_or_else(|| BedrockError::signature(SIGNATURE_MISMATCH))?;
        signed.push((*name, value));
    }
    let token = text("x-amz-security-token")
        .filter(|_| auth.signed_headers.contains(&"x-amz-security-token"))
        .map(str::to_owned);
    let host = text("host").unwrap_or("localhost");
    let uri = format!("http://{host}{}", request.target);
    let identity: Identity = Credentials::new(
        shared.config.aws_access_key_id.clone(),
        shared.config.aws_secret_access_key.clone(),
        token,
        None,
        "emulator",
    )
    .into();
    let expected = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name("bedrock")
        .time(when)
        .settings(SigningSettings::default())
        .build()
        .ok()
        .and_then(|params| {
            let signable = SignableRequest::new(
                request.method.as_str(),
                uri.as_str(),
                signed.iter().copied(),
                SignableBody::Bytes(&request.body),
            )
            .ok()?;
            sign(signable, &params.into()).ok()
        })
        .map(|out| out.signature().to_owned());
    // The signer always adds these; a client that did not sign them made
    // a different signature and fails the comparison below.
    let complete = ["host", "x-amz-date"]
        .iter()
        .all(|h| auth.signed_headers.contains(h));
    if !complete || expected.as_deref() != Some(auth.signature) {
        return Err(BedrockError::signature(SIGNATURE_MISMATCH));
    }
    Ok(())
}

/// `20240101T120000Z`.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let when = time::PrimitiveDateTime::parse(text, &format).ok()?;
    Some(SystemTime::from(when.assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_parse() {
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/bedrock/aws4_request, SignedHeaders=accept;host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(auth.key_id, "AKID");
        assert_eq!(auth.region, "us-east-1");
        assert_eq!(auth.service, "bedrock");
        assert_eq!(auth.signed_headers, ["accept", "host", "x-amz-date"]);
        assert_eq!(auth.signature, "abc");
        assert!(parse_authorization("Bearer x").is_none());
        assert!(parse_amz_date("20240101T120000Z").is_some());
        assert!(parse_amz_date("2024-01-01").is_none());
    }
}
