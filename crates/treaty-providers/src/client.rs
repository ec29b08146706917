//! The one HTTP client every provider shares.
//!
//! It owns connection behaviour: TLS through rustls with the ring provider,
//! connect timeout, pooling and keep-alive sized for a gateway. It never
//! follows redirects (a redirect would carry the `api-key` header to
//! wherever the host points) and never picks up a proxy from the
//! environment. Per-request deadlines are not set here: they belong to
//! each call ([`crate::CallOptions`]).

use std::time::Duration;

use treaty_config::UpstreamConfig;

use crate::ProviderError;

/// Idle connections kept per host: a busy gateway holds many concurrent
/// streams to few hosts, and reconnecting (TLS included) costs latency.
const POOL_MAX_IDLE_PER_HOST: usize = 256;
/// Below the usual 120-350 s idle cut-offs of cloud load balancers, so an
/// idle pooled connection is dropped before the far side closes it.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Builds the shared HTTP client (HTTP/1.1, and HTTP/2 where TLS ALPN
/// offers it).
pub fn http_client(upstream: &UpstreamConfig) -> Result<reqwest::Client, ProviderError> {
    // reqwest is built without a crypto provider; the first caller installs
    // ring for the process. An `Err` means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_backend_rustls()
        .connect_timeout(upstream.connect_timeout)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(10))
        .http2_adaptive_window(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("treaty/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProviderError::HttpClient(e.without_url().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_with_the_ring_provider() {
        let upstream = UpstreamConfig {
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(60),
            max_attempts: 2,
        };
        assert!(http_client(&upstream).is_ok());
        // A second client in the same process is fine too.
        assert!(http_client(&upstream).is_ok());
    }
}
