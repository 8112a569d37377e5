//! Timely and differential operators, one per file, each an extension trait or a builder function.

pub mod batch_sink;
pub mod event_source;
pub mod session_windows;
pub mod window_partials;
pub mod window_results;
