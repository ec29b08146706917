//! A stand-in for STS `AssumeRoleWithWebIdentity`, so the web identity
//! credential source can be tested end to end.

use crate::app::Shared;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// `POST /sts`: `AssumeRoleWithWebIdentity` answered with the emulator's
/// key pair and a fresh session token; a token of `invalid` is refused.
pub(super) async fn sts(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let form: Vec<(String, String)> = String::from_utf8_lossy(&body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode_form(k), decode_form(v)))
        .collect();
    let get = |key: &str| {
        form.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let xml = |status: StatusCode, text: String| {
        (status, [(header::CONTENT_TYPE, "text/xml")], text).into_response()
    };
    let error = |code: &str, message: &str| {
        xml(
            StatusCode::BAD_REQUEST,
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>"
            ),
        )
    };
    if get("Action") != Some("AssumeRoleWithWebIdentity") || get("RoleArn").is_none() {
        return error(
            "InvalidAction",
            "Emulated STS: only AssumeRoleWithWebIdentity with a RoleArn.",
        );
    }
    match get("WebIdentityToken") {
        None | Some("invalid") => {
            return error(
                "InvalidIdentityToken",
                "Emulated STS: the web identity token was refused.",
            );
        }
        Some(_) => {}
    }
    static ISSUED: AtomicU64 = AtomicU64::new(1);
    let token = format!(
        "emulator-session-token-{}",
        ISSUED.fetch_add(1, Ordering::Relaxed)
    );
    let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let expires = expires
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    xml(
        StatusCode::OK,
        format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleWithWebIdentityResult><Credentials>\
             <SessionToken>{token}</SessionToken>\
             <SecretAccessKey>{}</SecretAccessKey>\
             <Expiration>{expires}</Expiration>\
             <AccessKeyId>{}</AccessKeyId>\
             </Credentials></AssumeRoleWithWebIdentityResult>\
             </AssumeRoleWithWebIdentityResponse>",
            shared.config.aws_secret_access_key, shared.config.aws_access_key_id
        ),
    )
}

/// `application/x-www-form-urlencoded` decoding (`+` and `%XX`).
fn decode_form(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        assert_eq!(decode_form("a%3Ab+c%2"), "a:b c%2");
        assert_eq!(decode_form("%E2%9C%93%zz"), "✓%zz");
    }
}
