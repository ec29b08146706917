//! SigV4 signatures for Bedrock requests, computed by `aws-sigv4` (the AWS
//! SDK's own signer) with the settings the SDK uses for `bedrock`: the path
//! double-encoded, normalized, and the session token signed as
//! `x-amz-security-token`.
//!
//! It returns the headers to add (`authorization`, `x-amz-date`,
//! `x-amz-security-token`); the values that carry credentials are marked
//! sensitive so they never show in a debug print. It must never put a
//! secret in an error.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderName, HeaderValue};

use crate::UpstreamError;

/// The SigV4 service name of the Bedrock runtime.
pub(crate) const SERVICE: &str = "bedrock";

/// The headers that sign `method url` with `headers` and `body`.
///
/// `url` must be exactly the string sent (already percent-encoded), and
/// `headers` every header that is to be signed besides `host`, which the
/// signer takes from `url`.
pub(crate) fn signature_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    now: SystemTime,
) -> Result<Vec<(HeaderName, HeaderValue)>, UpstreamError> {
    let failed =
        |what: &str| UpstreamError::Protocol(format!("could not sign the request: {what}"));
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| failed("incomplete signing parameters"))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|_| failed("the URL cannot be signed"))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|_| failed("the signer refused the request"))?
        .into_parts();
    let mut out = Vec::new();
    for (name, value) in instructions.headers() {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| failed("header name"))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| failed("header value"))?;
        if name == http::header::AUTHORIZATION || name.as_str() == "x-amz-security-token" {
            value.set_sensitive(true);
        }
        out.push((name, value));
    }
    Ok(out)
}
