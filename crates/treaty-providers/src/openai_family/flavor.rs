//! What differs between OpenAI, Azure OpenAI and OpenAI-compatible servers:
//! where requests go and how they authenticate.
//!
//! Everything is worked out once, when the provider is built: URLs are
//! parsed and checked, auth headers are built and marked sensitive. This
//! module must never put a key anywhere but that header value, and never
//! print it.

use http::{HeaderName, HeaderValue};
use reqwest::Url;
use treaty_config::{AzureApiStyle, AzureAuth, Endpoint, Secret};
use treaty_domain::{HostId, ProviderKind};

use crate::ProviderError;

/// The two operations OpenAI-family hosts serve here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Chat,
    Embeddings,
    /// The model list, used as a health probe.
    Models,
}

impl Operation {
    fn segments(self) -> &'static [&'static str] {
        match self {
            Operation::Chat => &["chat", "completions"],
            Operation::Embeddings => &["embeddings"],
            Operation::Models => &["models"],
        }
    }
}

pub(crate) struct Flavor {
    pub(crate) kind: ProviderKind,
    routes: Routes,
    /// Header name and value, the value marked sensitive.
    auth: Option<(HeaderName, HeaderValue)>,
    /// The key, for scrubbing it out of upstream messages.
    secret: Option<Secret>,
}

enum Routes {
    /// One URL per operation; the model goes in the body.
    Fixed {
        chat: Url,
        embeddings: Url,
        models: Url,
    },
    /// Azure's `{base}/openai/deployments/{target}/{op}?api-version=`.
    AzureDeployments { base: Url, api_version: String },
}

impl Flavor {
    /// OpenAI itself: `{base}/v1/...`, `Authorization: Bearer`.
    pub(crate) fn openai(host: &HostId, endpoint: &Endpoint) -> Result<Self, ProviderError> {
        let key = required_key(host, endpoint, ProviderKind::Openai)?;
        Ok(Flavor {
            kind: ProviderKind::Openai,
            routes: Routes::fixed(base_url(host, &endpoint.base_url, &["v1"])?, &["v1"]),
            auth: Some(bearer(host, key)?),
            secret: Some(key.clone()),
        })
    }

    /// vLLM, Ollama, llama.cpp server: like OpenAI, with an optional key.
    pub(crate) fn compatible(host: &HostId, endpoint: &Endpoint) -> Result<Self, ProviderError> {
        let auth = match &endpoint.api_key {
            Some(key) => Some(bearer(host, key)?),
            None => None,
        };
        Ok(Flavor {
            kind: ProviderKind::OpenaiCompatible,
            routes: Routes::fixed(base_url(host, &endpoint.base_url, &["v1"])?, &["v1"]),
            auth,
            secret: endpoint.api_key.clone(),
        })
    }

    /// Azure OpenAI, in either URL style, with an `api-key` header or an
    /// Entra bearer token.
    pub(crate) fn azure(host: &HostId, endpoint: &Endpoint) -> Result<Self, ProviderError> {
        let settings = endpoint
            .azure
            .as_ref()
            .ok_or_else(|| ProviderError::MissingAzureSettings { host: host.clone() })?;
        let key = required_key(host, endpoint, ProviderKind::AzureOpenai)?;
        // Tolerate a base URL that already names the API root.
        let base = base_url(host, &endpoint.base_url, &["openai", "v1"])?;
        let base = strip_suffix(base, &["openai"]);
        let routes = match &settings.api_style {
            AzureApiStyle::Deployments { api_version } => Routes::AzureDeployments {
                base,
                api_version: api_version.clone(),
            },
            AzureApiStyle::V1 => Routes::fixed(base, &["openai", "v1"]),
        };
        let auth = match settings.auth {
            AzureAuth::ApiKey => (
                HeaderName::from_static("api-key"),
                header_value(host, key.expose())?,
            ),
            AzureAuth::Bearer => bearer(host, key)?,
        };
        Ok(Flavor {
            kind: ProviderKind::AzureOpenai,
            routes,
            auth: Some(auth),
            secret: Some(key.clone()),
        })
    }

    /// Where `op` for the deployment `target` goes.
    pub(crate) fn url(&self, op: Operation, target: &str) -> Url {
        match &self.routes {
            Routes::Fixed {
                chat,
                embeddings,
                models,
            } => match op {
                Operation::Chat => chat.clone(),
                Operation::Embeddings => embeddings.clone(),
                Operation::Models => models.clone(),
            },
            Routes::AzureDeployments { base, api_version } => {
                let mut url = base.clone();
                // `base_url` checked that the URL can take path segments;
                // `extend` percent-encodes the deployment name.
                if let Ok(mut path) = url.path_segments_mut() {
                    path.pop_if_empty().push("openai");
                    if op != Operation::Models {
                        path.extend(["deployments", target]);
                    }
                    path.extend(op.segments());
                }
                url.query_pairs_mut()
                    .append_pair("api-version", api_version);
                url
            }
        }
    }

    pub(crate) fn auth(&self) -> Option<&(HeaderName, HeaderValue)> {
        self.auth.as_ref()
    }

    pub(crate) fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }
}

impl Routes {
    fn fixed(base: Url, prefix: &[&str]) -> Routes {
        let at = |op: Operation| {
            let mut url = base.clone();
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty().extend(prefix).extend(op.segments());
            }
            url
        };
        Routes::Fixed {
            chat: at(Operation::Chat),
            embeddings: at(Operation::Embeddings),
            models: at(Operation::Models),
        }
    }
}

fn required_key<'a>(
    host: &HostId,
    endpoint: &'a Endpoint,
    kind: ProviderKind,
) -> Result<&'a Secret, ProviderError> {
    endpoint
        .api_key
        .as_ref()
        .ok_or_else(|| ProviderError::MissingKey {
            host: host.clone(),
            kind,
        })
}

fn bearer(host: &HostId, key: &Secret) -> Result<(HeaderName, HeaderValue), ProviderError> {
    let value = header_value(host, &format!("Bearer {}", key.expose()))?;
    Ok((http::header::AUTHORIZATION, value))
}

fn header_value(host: &HostId, text: &str) -> Result<HeaderValue, ProviderError> {
    let mut value = HeaderValue::from_str(text)
        .map_err(|_| ProviderError::InvalidKey { host: host.clone() })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Parses and checks a configured base URL, dropping a trailing `suffix`
/// (such as `/v1`) that the routes add themselves.
fn base_url(host: &HostId, text: &str, suffix: &[&str]) -> Result<Url, ProviderError> {
    let invalid = |reason: &str| ProviderError::InvalidBaseUrl {
        host: host.clone(),
        reason: reason.to_owned(),
    };
    // The message of a parse error never contains the URL itself.
    let url = Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not have a query or fragment"));
    }
    Ok(strip_suffix(url, suffix))
}

fn strip_suffix(mut url: Url, suffix: &[&str]) -> Url {
    let segments: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    if segments.len() >= suffix.len() && segments[segments.len() - suffix.len()..] == *suffix {
        let keep = &segments[..segments.len() - suffix.len()];
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear().extend(keep);
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use treaty_config::AzureSettings;

    fn host() -> HostId {
        HostId::new("h").unwrap()
    }

    fn endpoint(base: &str, key: Option<&str>, azure: Option<AzureSettings>) -> Endpoint {
        Endpoint {
            base_url: base.into(),
            api_key: key.map(Secret::new),
            azure,
            gemini: None,
            aws: None,
        }
    }

    fn urls(f: &Flavor, target: &str) -> (String, String) {
        (
            f.url(Operation::Chat, target).to_string(),
            f.url(Operation::Embeddings, target).to_string(),
        )
    }

    fn auth(f: &Flavor) -> Option<(String, String)> {
        f.auth().map(|(n, v)| {
            assert!(v.is_sensitive());
            (n.to_string(), v.to_str().unwrap().to_owned())
        })
    }

    #[test]
    fn openai_urls_and_bearer() {
        for base in [
            "https://api.openai.com",
            "https://api.openai.com/",
            "https://api.openai.com/v1",
            "https://api.openai.com/v1/",
        ] {
            let f = Flavor::openai(&host(), &endpoint(base, Some("sk-test"), None)).unwrap();
            assert_eq!(
                urls(&f, "gpt-4o"),
                (
                    "https://api.openai.com/v1/chat/completions".into(),
                    "https://api.openai.com/v1/embeddings".into()
                ),
                "{base}"
            );
            assert_eq!(
                auth(&f),
                Some(("authorization".into(), "Bearer sk-test".into()))
            );
        }
    }

    #[test]
    fn openai_needs_a_key() {
        let err = Flavor::openai(&host(), &endpoint("https://api.openai.com", None, None));
        assert!(matches!(err, Err(ProviderError::MissingKey { .. })));
    }

    #[test]
    fn compatible_keeps_the_path_prefix_and_the_key_is_optional() {
        let e = endpoint("http://127.0.0.1:4010/onprem-vllm", None, None);
        let f = Flavor::compatible(&host(), &e).unwrap();
        assert_eq!(
            urls(&f, "meta-llama/Llama-3.1-8B"),
            (
                "http://127.0.0.1:4010/onprem-vllm/v1/chat/completions".into(),
                "http://127.0.0.1:4010/onprem-vllm/v1/embeddings".into()
            )
        );
        assert_eq!(auth(&f), None);
        let e = endpoint("http://vllm:8000/v1", Some("tok"), None);
        let f = Flavor::compatible(&host(), &e).unwrap();
        assert_eq!(urls(&f, "m").0, "http://vllm:8000/v1/chat/completions");
        assert_eq!(
            auth(&f),
            Some(("authorization".into(), "Bearer tok".into()))
        );
    }

    #[test]
    fn azure_deployments_style_with_api_key() {
        let settings = AzureSettings {
            api_style: AzureApiStyle::Deployments {
                api_version: "2024-10-21".into(),
            },
            auth: AzureAuth::ApiKey,
        };
        let e = endpoint(
            "http://127.0.0.1:4010/azure-eastus",
            Some("k1"),
            Some(settings),
        );
        let f = Flavor::azure(&host(), &e).unwrap();
        assert_eq!(
            urls(&f, "gpt-4o-prod"),
            (
                "http://127.0.0.1:4010/azure-eastus/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21".into(),
                "http://127.0.0.1:4010/azure-eastus/openai/deployments/gpt-4o-prod/embeddings?api-version=2024-10-21".into()
            )
        );
        assert_eq!(auth(&f), Some(("api-key".into(), "k1".into())));
        // Deployment names are path segments, never path syntax.
        assert!(
            f.url(Operation::Chat, "a/../b")
                .path()
                .contains("a%2F..%2Fb")
        );
    }

    #[test]
    fn azure_v1_style_with_entra_token() {
        let settings = AzureSettings {
            api_style: AzureApiStyle::V1,
            auth: AzureAuth::Bearer,
        };
        for base in [
            "https://x.openai.azure.com",
            "https://x.openai.azure.com/openai/v1/",
        ] {
            let e = endpoint(base, Some("eyJ0"), Some(settings.clone()));
            let f = Flavor::azure(&host(), &e).unwrap();
            assert_eq!(
                urls(&f, "ignored"),
                (
                    "https://x.openai.azure.com/openai/v1/chat/completions".into(),
                    "https://x.openai.azure.com/openai/v1/embeddings".into()
                ),
                "{base}"
            );
            assert_eq!(
                auth(&f),
                Some(("authorization".into(), "Bearer eyJ0".into()))
            );
        }
    }

    #[test]
    fn azure_needs_settings_and_a_key() {
        let e = endpoint("https://x.openai.azure.com", Some("k"), None);
        assert!(matches!(
            Flavor::azure(&host(), &e),
            Err(ProviderError::MissingAzureSettings { .. })
        ));
        let settings = AzureSettings {
            api_style: AzureApiStyle::V1,
            auth: AzureAuth::ApiKey,
        };
        let e = endpoint("https://x.openai.azure.com", None, Some(settings));
        assert!(matches!(
            Flavor::azure(&host(), &e),
            Err(ProviderError::MissingKey { .. })
        ));
    }

    #[test]
    fn bad_base_urls_and_keys_are_refused_without_echoing_them() {
        for base in ["ftp://x", "not a url", "http://h/x?y=1", "mailto:a@b"] {
            let err = Flavor::compatible(&host(), &endpoint(base, None, None));
            assert!(
                matches!(err, Err(ProviderError::InvalidBaseUrl { .. })),
                "{base}"
            );
        }
        let err = Flavor::openai(&host(), &endpoint("https://a", Some("bad\nkey"), None))
            .err()
            .unwrap();
        assert!(matches!(err, ProviderError::InvalidKey { .. }));
        assert!(!err.to_string().contains("bad"));
    }
}
