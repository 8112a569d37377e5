//! Webhooks as an alert channel: HTTP POST of the alert's JSON with an `Idempotency-Key` header
//! (the alert id) and, with a secret, an `X-Rtsa-Signature: sha256=<hex>` HMAC-SHA256 of the
//! body. Timeouts, connection errors, 408, 429 and 5xx are retried with exponential backoff;
//! other 4xx answers are final.

use super::queued::{Deliver, DeliveryError};
use crate::config::WebhookSinkConfig;
use dataflows::sink::SinkError;
use hmac::{KeyInit, Mac};

/// Delivers alerts to a URL.
pub struct WebhookChannel {
    client: reqwest::blocking::Client,
    url: String,
    secret: Option<Vec<u8>>,
}

/// The HMAC-SHA256 signature header value of a body.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl WebhookChannel {
    /// A channel for `config`; reads the secret from the environment or its file.
    pub fn open(config: &WebhookSinkConfig) -> Result<WebhookChannel, SinkError> {
        let unusable = |reason: String| SinkError::Unsupported { what: format!("webhook {}", config.url), reason };
        let secret = match (&config.secret_env, &config.secret_file) {
            (Some(variable), _) => Some(
                std::env::var(variable)
                    .map_err(|_| unusable(format!("environment variable {variable} (secret_env) is not set")))?
                    .into_bytes(),
            ),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| unusable(format!("secret file {}: {e}", path.display())))?
                    .trim_end()
                    .as_bytes()
                    .to_vec(),
            ),
            (None, None) => None,
        };
        let client =
            super::http_client(config.timeout.as_duration(), config.tls_ca_file.as_deref()).map_err(unusable)?;
        Ok(WebhookChannel { client, url: config.url.clone(), secret })
    }
}

impl Deliver for WebhookChannel {
    fn deliver(&mut self, key: &str, body: &str) -> Result<(), DeliveryError> {
        let mut request = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", key)
            .body(body.to_owned());
        if let Some(secret) = &self.secret {
            request = request.header("X-Rtsa-Signature", signature(secret, body.as_bytes()));
        }
        let response = request.send().map_err(|e| {
            // An untrusted certificate will not become trusted on a retry.
            let text = format!("{e:?}");
            if text.contains("certificate") || text.contains("UnknownIssuer") {
                DeliveryError::permanent(format!("the server's TLS certificate is not trusted: {e}"))
            } else {
                DeliveryError::transient(e)
            }
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let retryable = status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
            Err(DeliveryError { retryable, reason: format!("HTTP {status}") })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
