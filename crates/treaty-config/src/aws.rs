//! The `aws_*` keys of a host: the SigV4 region every `bedrock` host needs
//! and the optional explicit credentials, validated into [`AwsSettings`].
//!
//! Without explicit credentials a Bedrock host uses the standard AWS chain
//! (environment variables, shared credentials file, web identity), which
//! the provider resolves at start-up; this module never reads AWS's own
//! variables or files. The secret key and session token are [`Secret`]s
//! given as `{ env = .. }` or `{ file = .. }`, never inline.

use std::path::Path;

use treaty_domain::ProviderKind;

use crate::env::{Env, interpolate};
use crate::raw::{RawSecret, RawSecretRef};
use crate::validate::secret;
use crate::{AwsCredentials, AwsSettings, ConfigError};

const REGION_EXAMPLE: &str = r#"aws_region = "us-east-1""#;
const KEYS_EXAMPLE: &str = r#"aws_access_key_id = "${AWS_KEY_ID}"
aws_secret_access_key = { env = "AWS_SECRET" }  # or leave all three out to use the standard AWS chain"#;

/// The `aws_*` keys of one raw host, borrowed.
pub(crate) struct AwsFields<'a> {
    pub(crate) region: &'a Option<String>,
    pub(crate) access_key_id: &'a Option<String>,
    pub(crate) secret_access_key: &'a Option<RawSecret>,
    pub(crate) session_token: &'a Option<RawSecret>,
}

/// The AWS settings of host `key`: required and checked for `bedrock`
/// hosts, refused on every other kind.
pub(crate) fn aws_settings(
    key: &str,
    provider: ProviderKind,
    has_api_key: bool,
    h: AwsFields<'_>,
    base_dir: &Path,
    env: &dyn Env,
) -> Result<Option<AwsSettings>, ConfigError> {
    if provider != ProviderKind::Bedrock {
        for (field, set) in [
            ("aws_region", h.region.is_some()),
            ("aws_access_key_id", h.access_key_id.is_some()),
            ("aws_secret_access_key", h.secret_access_key.is_some()),
            ("aws_session_token", h.session_token.is_some()),
        ] {
            if set {
                return Err(ConfigError::invalid(
                    format!("{key}.{field}"),
                    format!("`{field}` applies to bedrock hosts only"),
                    r#"provider = "bedrock""#,
                ));
            }
        }
        return Ok(None);
    }
    if has_api_key {
        return Err(ConfigError::invalid(
            format!("{key}.api_key"),
            "bedrock hosts sign requests with AWS credentials, not an API key; \
             remove `api_key` and name the credentials (or use the standard AWS chain)",
            KEYS_EXAMPLE,
        ));
    }
    let region = h.region.as_deref().ok_or_else(|| {
        ConfigError::invalid(
            format!("{key}.aws_region"),
            "bedrock hosts need the AWS region their requests are signed for",
            REGION_EXAMPLE,
        )
    })?;
    let region = interpolate(region, env)
        .map_err(|m| ConfigError::invalid(format!("{key}.aws_region"), m, REGION_EXAMPLE))?;
    if !is_region(&region) {
        return Err(ConfigError::invalid(
            format!("{key}.aws_region"),
            format!("{region:?} is not an AWS region name"),
            REGION_EXAMPLE,
        ));
    }

    let credentials = match (h.access_key_id, h.secret_access_key) {
        (None, None) => {
            if h.session_token.is_some() {
                return Err(ConfigError::invalid(
                    format!("{key}.aws_session_token"),
                    "a session token goes with an explicit access key pair",
                    KEYS_EXAMPLE,
                ));
            }
            None
        }
        (Some(id), Some(raw_secret)) => {
            let id_key = format!("{key}.aws_access_key_id");
            let access_key_id = interpolate(id, env)
                .map_err(|m| ConfigError::invalid(&id_key, m, KEYS_EXAMPLE))?
                .trim()
                .to_owned();
            if access_key_id.is_empty() || !access_key_id.chars().all(|c| c.is_ascii_alphanumeric())
            {
                // The value is not echoed: a secret pasted here by mistake
                // must not reach a log.
                return Err(ConfigError::invalid(
                    id_key,
                    "an access key id is letters and digits only (e.g. AKIA...)",
                    KEYS_EXAMPLE,
                ));
            }
            let secret_access_key = secret(
                &format!("{key}.aws_secret_access_key"),
                copy(raw_secret),
                base_dir,
                env,
            )?;
            let session_token = match h.session_token {
                None => None,
                Some(raw) => Some(secret(
                    &format!("{key}.aws_session_token"),
                    copy(raw),
                    base_dir,
                    env,
                )?),
            };
            Some(AwsCredentials {
                access_key_id,
                secret_access_key,
                session_token,
            })
        }
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                format!("{key}.aws_secret_access_key"),
                "`aws_access_key_id` needs its secret access key",
                KEYS_EXAMPLE,
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                format!("{key}.aws_access_key_id"),
                "`aws_secret_access_key` needs its access key id",
                KEYS_EXAMPLE,
            ));
        }
    };
    Ok(Some(AwsSettings {
        region,
        credentials,
    }))
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`...:
/// lowercase words and digits joined by single hyphens.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The raw host is borrowed by several validators; secrets are read from a
/// copy of their reference.
fn copy(raw: &RawSecret) -> RawSecret {
    match raw {
        RawSecret::Ref(r) => RawSecret::Ref(RawSecretRef {
            env: r.env.clone(),
            file: r.file.clone(),
        }),
        RawSecret::Inline(any) => RawSecret::Inline(*any),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{Config, ConfigError, MapEnv};

    const BEDROCK: &str = r#"
[[hosts]]
id = "bedrock-useast1"
cloud = "aws"
region = "us-east"
provider = "bedrock"
base_url = "https://bedrock-runtime.us-east-1.amazonaws.com/"
aws_region = "us-east-1"
models = [{ name = "claude", target = "anthropic.claude-3-5-sonnet-20240620-v1:0" }]

[[tenants]]
id = "acme"
segment = "enterprise"
data_region = "us"

[[channels]]
id = "direct"
kind = "first_party"

[[products]]
id = "api"
kind = "api"
models = ["claude"]
"#;

    fn env() -> MapEnv {
        MapEnv::new()
            .with("AWS_KEY_ID", "AKIDEXAMPLE")
            .with("AWS_SECRET", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
            .with("AWS_TOKEN", "session-token-1")
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/etc/treaty"), &env())
    }

    fn with(extra: &str) -> String {
        BEDROCK.replace(
            "aws_region = \"us-east-1\"\n",
            &format!("aws_region = \"us-east-1\"\n{extra}\n"),
        )
    }

    #[test]
    fn a_bedrock_host_with_the_standard_chain() {
        let c = load(BEDROCK).unwrap();
        let aws = c.hosts[0].endpoint.aws.as_ref().unwrap();
        assert_eq!(aws.region, "us-east-1");
        assert!(aws.credentials.is_none());
        assert_eq!(
            c.hosts[0].endpoint.base_url,
            "https://bedrock-runtime.us-east-1.amazonaws.com"
        );
    }

    #[test]
    fn explicit_credentials_are_read_and_never_printed() {
        let c = load(&with(
            "aws_access_key_id = \"${AWS_KEY_ID}\"\n\
             aws_secret_access_key = { env = \"AWS_SECRET\" }\n\
             aws_session_token = { env = \"AWS_TOKEN\" }",
        ))
        .unwrap();
        let creds = c.hosts[0]
            .endpoint
            .aws
            .as_ref()
            .unwrap()
            .credentials
            .as_ref()
            .unwrap();
        assert_eq!(creds.access_key_id, "AKIDEXAMPLE");
        assert_eq!(
            creds.secret_access_key.expose(),
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        );
        assert_eq!(
            creds.session_token.as_ref().map(|s| s.expose()),
            Some("session-token-1")
        );
        let debug = format!("{c:?}");
        assert!(!debug.contains("wJalr") && !debug.contains("session-token-1"));
    }

    #[test]
    fn errors_name_the_host_key_and_show_an_example() {
        let cases = [
            (
                BEDROCK.replace("aws_region = \"us-east-1\"\n", ""),
                "hosts[0].aws_region",
                "aws_region = \"us-east-1\"",
            ),
            (
                BEDROCK.replace("\"us-east-1\"\n", "\"US East\"\n"),
                "hosts[0].aws_region",
                "not an AWS region",
            ),
            (
                with("aws_access_key_id = \"AKIDEXAMPLE\""),
                "hosts[0].aws_secret_access_key",
                "needs its secret",
            ),
            (
                with("aws_secret_access_key = { env = \"AWS_SECRET\" }"),
                "hosts[0].aws_access_key_id",
                "needs its access key id",
            ),
            (
                with("aws_session_token = { env = \"AWS_TOKEN\" }"),
                "hosts[0].aws_session_token",
                "explicit access key pair",
            ),
            (
                with(
                    "aws_access_key_id = \"AKIDEXAMPLE\"\naws_secret_access_key = \"inline-secret\"",
                ),
                "hosts[0].aws_secret_access_key",
                "never written in the config",
            ),
            (
                with(
                    "aws_access_key_id = \"AKID/oops\"\naws_secret_access_key = { env = \"AWS_SECRET\" }",
                ),
                "hosts[0].aws_access_key_id",
                "letters and digits",
            ),
            (
                with("api_key = { env = \"AWS_SECRET\" }"),
                "hosts[0].api_key",
                "not an API key",
            ),
        ];
        for (text, key, needle) in cases {
            let err = load(&text).unwrap_err();
            assert_eq!(err.key(), Some(key), "{err}");
            let message = err.to_string();
            assert!(message.contains(needle), "{message}");
            assert!(message.contains("example"), "{message}");
            assert!(!message.contains("inline-secret"), "{message}");
            assert!(!message.contains("wJalr"), "{message}");
        }
        let err = Config::from_toml(
            &with(
                "aws_access_key_id = \"AKIDEXAMPLE\"\naws_secret_access_key = { env = \"NOPE\" }",
            ),
            Path::new("."),
            &env(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("NOPE is not set"), "{err}");
    }

    #[test]
    fn aws_keys_are_refused_on_other_hosts() {
        let text = BEDROCK
            .replace("provider = \"bedrock\"", "provider = \"openai_compatible\"")
            .replace(
                "base_url = \"https://bedrock-runtime.us-east-1.amazonaws.com/\"",
                "base_url = \"http://127.0.0.1:8000\"",
            );
        let err = load(&text).unwrap_err();
        assert_eq!(err.key(), Some("hosts[0].aws_region"), "{err}");
        assert!(err.to_string().contains("bedrock hosts only"), "{err}");
    }
}
