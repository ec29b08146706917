//! Where a Bedrock host's AWS credentials come from, resolved once when
//! the provider is built, in the order the AWS SDKs use:
//!
//! 1. explicit credentials in the host's config (`aws_access_key_id`, ...);
//! 2. `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 3. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//!    `~/.aws/credentials`), profile `AWS_PROFILE` or `default`, static keys
//!    only;
//! 4. web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, as on
//!    EKS): an unsigned STS `AssumeRoleWithWebIdentity` call to
//!    `AWS_ENDPOINT_URL_STS` or `https://sts.{region}.amazonaws.com`, its
//!    temporary credentials cached until five minutes before they expire
//!    and the token file re-read at each renewal (Kubernetes rotates it).
//!
//! Not supported (the provider fails to start and says so): the
//! `~/.aws/config` file, SSO, `credential_process`, role-chaining profiles,
//! ECS container credentials and EC2 instance metadata. The whole
//! `aws-config` crate would bring those, with its own HTTP stack and
//! runtime; Treaty reuses its rustls client instead and keeps to what
//! servers actually run with.
//!
//! This module never logs a credential and never puts one in an error:
//! errors name the source (a variable, a file path, the STS error code).

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use percent_encoding::utf8_percent_encode;
use reqwest::Url;
use tokio::time::Instant;
use treaty_config::{AwsSettings, Env};
use treaty_domain::HostId;

use super::UNRESERVED;
use crate::redact::redact;
use crate::{ProviderError, UpstreamError};

/// Temporary credentials are renewed this long before they expire, so a
/// request signed just before expiry still reaches AWS in time.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// What Treaty asks STS for; AWS's default is one hour too.
const SESSION_SECONDS: u32 = 3600;
/// STS answers are small; anything larger is not STS.
const MAX_STS_BYTES: usize = 64 << 10;

/// Resolved credentials for one host.
pub(crate) struct CredentialChain {
    source: Source,
    /// Web identity only: the current temporary credentials. A std mutex,
    /// held for a clone only, never across an await.
    cached: Mutex<Option<(Credentials, SystemTime)>>,
    /// Web identity only: one STS call at a time, so a burst of requests
    /// at expiry makes one call, not hundreds. Held across the STS call on
    /// purpose; requests that find fresh credentials never touch it.
    renewing: tokio::sync::Mutex<()>,
}

enum Source {
    Static {
        credentials: Credentials,
        origin: &'static str,
    },
    WebIdentity(WebIdentity),
}

struct WebIdentity {
    token_file: PathBuf,
    role_arn: String,
    session_name: String,
    sts: Url,
}

impl std::fmt::Debug for CredentialChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialChain(")?;
        f.write_str(self.origin())?;
        f.write_str(")")
    }
}

impl CredentialChain {
    /// The first source that applies; an error when none does.
    pub(crate) fn resolve(
        host: &HostId,
        settings: &AwsSettings,
        env: &dyn Env,
    ) -> Result<Self, ProviderError> {
        let fail = |reason: String| ProviderError::AwsCredentials {
            host: host.clone(),
            reason,
        };
        let var = |name: &str| env.var(name).filter(|v| !v.trim().is_empty());
        let source = if let Some(c) = &settings.credentials {
            Source::Static {
                credentials: credentials(
                    c.access_key_id.clone(),
                    c.secret_access_key.expose().to_owned(),
                    c.session_token.as_ref().map(|t| t.expose().to_owned()),
                ),
                origin: "config",
            }
        } else if let (Some(id), Some(secret)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        {
            Source::Static {
                credentials: credentials(id, secret, var("AWS_SESSION_TOKEN")),
                origin: "environment",
            }
        } else if let Some(found) = profile(env).map_err(fail)? {
            Source::Static {
                credentials: found,
                origin: "shared credentials file",
            }
        } else if let (Some(token_file), Some(role_arn)) =
            (var("AWS_WEB_IDENTITY_TOKEN_FILE"), var("AWS_ROLE_ARN"))
        {
            let sts_text = var("AWS_ENDPOINT_URL_STS")
                .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com", settings.region));
            let sts = Url::parse(&sts_text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| fail("AWS_ENDPOINT_URL_STS is not an http(s) URL".into()))?;
            Source::WebIdentity(WebIdentity {
                token_file: PathBuf::from(token_file),
                role_arn,
                session_name: var("AWS_ROLE_SESSION_NAME")
                    .unwrap_or_else(|| format!("treaty-{host}")),
                sts,
            })
        } else {
            return Err(fail(
                "none in the host's config (aws_access_key_id), in AWS_ACCESS_KEY_ID/\
                 AWS_SECRET_ACCESS_KEY, in the shared credentials file, or from web identity \
                 (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN)"
                    .into(),
            ));
        };
        Ok(CredentialChain {
            source,
            cached: Mutex::new(None),
            renewing: tokio::sync::Mutex::new(()),
        })
    }

    /// Where the credentials come from, for logs.
    pub(crate) fn origin(&self) -> &'static str {
        match &self.source {
            Source::Static { origin, .. } => origin,
            Source::WebIdentity(_) => "web identity",
        }
    }

    /// The static secret and session token, to scrub from upstream messages.
    pub(crate) fn static_secrets(&self) -> Vec<String> {
        match &self.source {
            Source::Static { credentials, .. } => {
                let mut out = vec![credentials.secret_access_key().to_owned()];
                out.extend(credentials.session_token().map(str::to_owned));
                out
            }
            Source::WebIdentity(_) => Vec::new(),
        }
    }

    /// Credentials to sign with now, renewing temporary ones when due.
    pub(crate) async fn get(
        &self,
        http: &reqwest::Client,
        deadline: Instant,
    ) -> Result<Credentials, UpstreamError> {
        let web = match &self.source {
            Source::Static { credentials, .. } => return Ok(credentials.clone()),
            Source::WebIdentity(web) => web,
        };
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let _one_at_a_time = self.renewing.lock().await;
        // Another request may have renewed them while this one waited.
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let (credentials, expires) = web.assume_role(http, deadline).await?;
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((credentials.clone(), expires));
        Ok(credentials)
    }

    fn fresh(&self) -> Option<Credentials> {
        let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        let (credentials, expires) = cached.as_ref()?;
        let renew_at = expires.checked_sub(RENEW_BEFORE).unwrap_or(*expires);
        (SystemTime::now() < renew_at).then(|| credentials.clone())
    }
}

fn credentials(id: String, secret: String, token: Option<String>) -> Credentials {
    Credentials::new(id, secret, token, None, "treaty")
}

/// Static keys from the shared credentials file, if it has the profile.
/// A profile named by `AWS_PROFILE` that is missing or incomplete is an
/// error (the operator asked for it); a missing default file is not.
fn profile(env: &dyn Env) -> Result<Option<Credentials>, String> {
    let var = |name: &str| env.var(name).filter(|v| !v.trim().is_empty());
    let named = var("AWS_PROFILE");
    let name = named.clone().unwrap_or_else(|| "default".to_owned());
    let path = match var("AWS_SHARED_CREDENTIALS_FILE") {
        Some(path) => PathBuf::from(path),
        None => match var("HOME") {
            Some(home) => PathBuf::from(home).join(".aws").join("credentials"),
            None => return Ok(None),
        },
    };
    // Read once at start-up, before any request: not on the hot path.
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(_) if named.is_none() => return Ok(None),
        Err(e) => {
            return Err(format!(
                "AWS_PROFILE is {name:?} but {} cannot be read ({})",
                path.display(),
                e.kind()
            ));
        }
    };
    let section = ini_section(&text, &name);
    let get = |key: &str| {
        section
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Some(credentials(id, secret, get("aws_session_token")))),
        _ if named.is_none() && section.is_empty() => Ok(None),
        _ => Err(format!(
            "profile {name:?} in {} has no aws_access_key_id/aws_secret_access_key \
             (SSO, credential_process and role profiles are not supported)",
            path.display()
        )),
    }
}

/// The `key = value` pairs of `[name]` in an INI file, as AWS writes them:
/// `#` and `;` start comment lines, keys and values are trimmed.
pub(crate) fn ini_section(text: &str, name: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = header.trim() == name;
            continue;
        }
        if inside && let Some((key, value)) = line.split_once('=') {
            out.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

impl WebIdentity {
    /// One `AssumeRoleWithWebIdentity` call. The call is unsigned: the
    /// token is the credential.
    async fn assume_role(
        &self,
        http: &reqwest::Client,
        deadline: Instant,
    ) -> Result<(Credentials, SystemTime), UpstreamError> {
        let token = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|e| UpstreamError::Status {
                status: 403,
                retry_after: None,
                message: format!(
                    "the web identity token file {} cannot be read ({})",
                    self.token_file.display(),
                    e.kind()
                ),
                code: Some("WebIdentityTokenUnreadable".into()),
            })?;
        let form = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", self.role_arn.as_str()),
            ("RoleSessionName", self.session_name.as_str()),
            ("DurationSeconds", &SESSION_SECONDS.to_string()),
            ("WebIdentityToken", token.trim()),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, UNRESERVED)))
        .collect::<Vec<_>>()
        .join("&");
        let request = http
            .post(self.sts.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form);
        let call = crate::CallOptions {
            first_byte_timeout: deadline.saturating_duration_since(Instant::now()),
            deadline,
            request_id: "sts".into(),
            traceparent: None,
        };
        let response = crate::exchange::send(request, &call).await?;
        let status = response.status().as_u16();
        let body = crate::exchange::read_body(response, deadline, MAX_STS_BYTES).await?;
        let text = String::from_utf8_lossy(&body);
        if !(200..300).contains(&status) {
            // `<Code>InvalidIdentityToken</Code><Message>...</Message>`
            let code = xml_value(&text, "Code");
            let message = xml_value(&text, "Message").unwrap_or_default();
            return Err(UpstreamError::Status {
                // STS's own throttling and outages stay retryable; anything
                // else means these credentials will not work.
                status: if matches!(status, 429 | 500..=599) {
                    status
                } else {
                    403
                },
                retry_after: None,
                message: format!(
                    "STS AssumeRoleWithWebIdentity failed (HTTP {status}): {}",
                    redact(&message, Some(token.trim()))
                ),
                code,
            });
        }
        let field = |name: &str| {
            xml_value(&text, name)
                .ok_or_else(|| UpstreamError::Protocol(format!("the STS reply has no {name}")))
        };
        let expires = time::OffsetDateTime::parse(
            &field("Expiration")?,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|_| UpstreamError::Protocol("the STS reply's Expiration is not a date".into()))?;
        let expires = SystemTime::from(expires);
        Ok((
            Credentials::new(
                field("AccessKeyId")?,
                field("SecretAccessKey")?,
                Some(field("SessionToken")?),
                Some(expires),
                "treaty-web-identity",
            ),
            expires,
        ))
    }
}

/// The text of the first `<name>...</name>` element, entities decoded.
/// STS replies are flat and machine-written; this is all of XML they need.
pub(crate) fn xml_value(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    let raw = text[start..end].trim();
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}
