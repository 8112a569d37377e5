//! The HTTP server of one process (`http.listen`, CONTRACT 6 and 10): `/metrics`, `/health`,
//! the dashboard page `/` with its vendored assets, `/events` (server-sent events feeding the
//! page) and `/api/state` (the same state as one JSON document).
//!
//! It runs on a thread of its own with a single-threaded tokio runtime, beside the timely
//! workers; the address is bound before that thread starts, so a port already taken is an error
//! at start. With `http.token_env`, every request must carry the token.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | binding, routing, the token check |
//! | `live.rs` | the live view the sinks feed (records, alerts, latencies) |
//! | `metrics.rs` | `/metrics` |
//! | `dashboard.rs` | `/`, its assets, `/events`, `/api/state`, `/health` |
//! | `histogram.rs` | the latency histograms |

mod dashboard;
pub mod histogram;
pub mod live;
pub mod metrics;

use crate::config::Config;
use crate::error::Error;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dataflows::control::RunControl;
use live::Live;
use std::net::SocketAddr;
use std::sync::Arc;

/// Starts the HTTP server of process `process` (`http.listen`, port + process), saying where.
pub fn serve(
    config: &Config,
    process: usize,
    control: &Arc<RunControl>,
) -> Result<Option<(HttpServer, Arc<Live>)>, Error> {
    let Some(address) = config.http.listen.for_process(process) else { return Ok(None) };
    let token = match &config.http.token_env {
        Some(name) => match std::env::var(name) {
            Ok(token) if !token.is_empty() => Some(token),
            _ => {
                return Err(Error::Usage(format!(
                    "http.token_env: the environment variable {name} is not set (it holds the bearer token the HTTP server requires)"
                )));
            }
        },
        None => None,
    };
    let live = Live::new(control.clone(), config.pipeline.aggregations.clone(), process);
    let server = HttpServer::start(address, token, live.clone())?;
    let shown = match server.address() {
        a if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        a => a.to_string(),
    };
    eprintln!("rtsa: dashboard on http://{shown}/ (metrics on /metrics, health on /health)");
    Ok(Some((server, live)))
}

/// A running HTTP server; dropping it stops it.
pub struct HttpServer {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `address` and serves `live` there; `token`, when set, is required of every request.
    pub fn start(address: SocketAddr, token: Option<String>, live: Arc<Live>) -> Result<HttpServer, Error> {
        let listener = std::net::TcpListener::bind(address).map_err(|e| Error::Io {
            what: format!(
                "http.listen {address}: cannot listen there (another rtsa, or another program, may use the port; set http.listen to another address or off)"
            ),
            source: e,
        })?;
        let address = listener.local_addr().unwrap_or(address);
        listener.set_nonblocking(true).map_err(|e| Error::Io { what: format!("http.listen {address}"), source: e })?;
        live.control().live.enable();
        live.sample_watermarks();
        let router = routes(live, token.map(Arc::<str>::from));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::Io { what: "http: cannot start its runtime".into(), source: e })?;
        let thread = std::thread::Builder::new()
            .name("rtsa-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => return tracing::error!(error = %e, "http: cannot use the listener"),
                    };
                    let served = axum::serve(listener, router).with_graceful_shutdown(async {
                        let _ = stopped.await;
                    });
                    if let Err(e) = served.await {
                        tracing::error!(error = %e, "http server stopped");
                    }
                });
            })
            .map_err(|e| Error::Io { what: "http: cannot start its thread".into(), source: e })?;
        Ok(HttpServer { address, stop: Some(stop), thread: Some(thread) })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Server-sent event streams end with the runtime; do not wait on a slow client.
        drop(self.thread.take());
    }
}

fn routes(live: Arc<Live>, token: Option<Arc<str>>) -> Router {
    let router = dashboard::routes(live);
    match token {
        Some(token) => router.layer(axum::middleware::from_fn_with_state(token, require_token)),
        None => router,
    }
}

/// Compares a presented token with the expected one in time that does not depend on where they
/// first differ (only on the presented length), so the token cannot be guessed byte by byte.
fn same(presented: &str, token: &str) -> bool {
    let (a, b) = (presented.as_bytes(), token.as_bytes());
    let differences =
        (0..a.len()).fold(a.len() ^ b.len(), |acc, i| acc | usize::from(a[i] ^ b.get(i).copied().unwrap_or(0)));
    differences == 0
}

/// Lets a request through when it carries the token as `Authorization: Bearer …` or `?token=…`.
async fn require_token(State(token): State<Arc<str>>, request: Request, next: Next) -> Response {
    let header = request.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let by_header = header.and_then(|v| v.strip_prefix("Bearer ")).is_some_and(|t| same(t, &token));
    let by_query = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair.strip_prefix("token=").is_some_and(|t| same(t, &token))));
    if by_header || by_query {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required (http.token_env)\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn a_token_matches_only_itself() {
        assert!(same("s3cret", "s3cret"));
        for other in ["", "s3cre", "s3cret!", "S3cret", "x3cret"] {
            assert!(!same(other, "s3cret"), "{other}");
        }
    }
}
