//! The dashboard page and what feeds it: `/` (one HTML page built into the binary, with uPlot
//! vendored beside it), `/events` (the live state as server-sent events, one a second and one at
//! once on connect, so the page is alive within a second of start), `/api/state` (the same
//! state once, as JSON), and `/health` (200 while the pipeline runs, 503 once it is failing).

use super::live::Live;
use super::metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use dataflows::control::wall_clock_ms;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

const PAGE: &str = include_str!("assets/dashboard.html");
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("assets/uPlot.LICENSE");

/// How often the page gets the state.
const EVERY: Duration = Duration::from_secs(1);

/// The routes of the page, its feed, `/metrics` and `/health`.
pub fn routes(live: Arc<Live>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/uPlot.iife.min.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], UPLOT_JS) }))
        .route("/uPlot.min.css", get(|| async { ([(header::CONTENT_TYPE, "text/css")], UPLOT_CSS) }))
        .route("/uPlot.LICENSE", get(|| async { UPLOT_LICENSE }))
        .route("/events", get(events))
        .route(
            "/api/state",
            get(|State(live): State<Arc<Live>>| async move { axum::Json(live.snapshot(wall_clock_ms())) }),
        )
        .route("/health", get(health))
        .route("/metrics", get(scrape))
        .with_state(live)
}

async fn events(State(live): State<Arc<Live>>) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = futures_util::stream::unfold((live, ticks), |(live, mut ticks)| async move {
        ticks.tick().await;
        let state = live.snapshot(wall_clock_ms()).to_string();
        Some((Ok(Event::default().event("state").data(state)), (live, ticks)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn health(State(live): State<Arc<Live>>) -> Response {
    let now = wall_clock_ms();
    let control = live.control();
    let (status, failure) = live.status();
    let watermark = control.watermarks.min();
    let body = serde_json::json!({
        "status": status,
        "failure": failure,
        "process": live.process(),
        "uptime_seconds": now.saturating_sub(live.started_at()) as f64 / 1000.0,
        "events_in": dataflows::control::Counters::get(&control.counters.events_in),
        "watermark": watermark,
        "watermark_lag_seconds": watermark.map(|w| now.saturating_sub(w) as f64 / 1000.0),
    });
    let code = if failure.is_some() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, axum::Json(body)).into_response()
}

async fn scrape(State(live): State<Arc<Live>>) -> Response {
    match metrics::encode(&live, wall_clock_ms()) {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics\n").into_response(),
    }
}
