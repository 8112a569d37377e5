//! The errors of the `rtsa` package: each says whose fault it is ([`Fault`]) and whether a retry
//! may help, and maps to the exit code of CONTRACT section 1 (2 for the user's usage or config,
//! 1 for everything that went wrong while running). `main` prints an error once, here formatted.

use crate::config::ConfigErrors;
use dataflows::sink::SinkError;
use dataflows::source::SourceError;
use thiserror::Error;

/// Whose fault an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The user's command line, config or input: fix it and run again.
    User,
    /// A file system, broker, database or endpoint: it may work on a retry.
    External,
    /// A bug in rtsa (a broken invariant, a worker that panicked).
    Internal,
}

/// An error of a command.
#[derive(Debug, Error)]
pub enum Error {
    /// The config is invalid: every problem, each with its key path.
    #[error("invalid config {origin}:\n{errors}")]
    Config {
        /// The file (or "the embedded default").
        origin: String,
        /// The problems.
        errors: ConfigErrors,
    },
    /// Wrong command-line use (a hostfile without enough addresses, a bad flag value).
    #[error("{0}")]
    Usage(String),
    /// A source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A sink failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A Kafka broker refused or failed a request.
    #[error("kafka {brokers}: {what}")]
    Kafka {
        /// The brokers asked.
        brokers: String,
        /// What failed, and why.
        what: String,
        /// Whether the user must fix something (a missing topic) rather than wait.
        user: bool,
    },
    /// Reading or writing a local file, a terminal or a child process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint cannot be used: taken under another config (the user's to decide: exit 2),
    /// or the store cannot be read.
    #[error("checkpoint {name}: {what}")]
    Checkpoint {
        /// The pipeline's checkpoint name.
        name: String,
        /// What is wrong.
        what: String,
        /// Whether the user must decide (a changed config) rather than wait.
        user: bool,
    },
    /// The pipeline failed while running (its first failure, as the workers recorded it).
    #[error("{0}")]
    Run(String),
    /// A broken invariant: a bug in rtsa.
    #[error("internal error (a bug in rtsa): {0}")]
    Internal(String),
}

impl Error {
    /// An I/O failure of `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }

    /// A Kafka failure the user must fix (a missing topic, a bad setting).
    pub fn kafka_user(brokers: &str, what: impl Into<String>) -> Error {
        Error::Kafka { brokers: brokers.to_owned(), what: what.into(), user: true }
    }

    /// A Kafka failure of the broker or the network.
    pub fn kafka(brokers: &str, what: impl Into<String>) -> Error {
        Error::Kafka { brokers: brokers.to_owned(), what: what.into(), user: false }
    }

    /// Whose fault it is.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Config { .. } | Error::Usage(_) => Fault::User,
            Error::Source(SourceError::Unsupported { .. }) | Error::Sink(SinkError::Unsupported { .. }) => Fault::User,
            Error::Kafka { user: true, .. } | Error::Checkpoint { user: true, .. } => Fault::User,
            Error::Source(_)
            | Error::Sink(_)
            | Error::Kafka { .. }
            | Error::Checkpoint { .. }
            | Error::Io { .. }
            | Error::Run(_) => Fault::External,
            Error::Internal(_) => Fault::Internal,
        }
    }

    /// Whether running again unchanged may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Source(e) => e.retryable(),
            Error::Sink(e) => e.retryable(),
            other => other.fault() == Fault::External,
        }
    }

    /// The process exit code: 2 for bad usage or an invalid config, 1 for a failure while running.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. } | Error::Usage(_) | Error::Checkpoint { user: true, .. } => 2,
            _ => 1,
        }
    }

    /// The lines to print on stderr: one per problem.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Error::Config { origin, errors } => std::iter::once(format!("rtsa: invalid config {origin}:"))
                .chain(errors.0.iter().map(|problem| format!("error: {problem}")))
                .collect(),
            other => vec![format!("rtsa: error: {other}")],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_config_errors_exit_2_and_the_rest_1() {
        let config =
            Error::Config { origin: "x.yaml".into(), errors: ConfigErrors(vec!["a: bad".into(), "b: bad".into()]) };
        assert_eq!((config.exit_code(), config.fault()), (2, Fault::User));
        assert_eq!(config.lines(), vec!["rtsa: invalid config x.yaml:", "error: a: bad", "error: b: bad"]);
        assert_eq!(Error::Usage("--process 3 must be below --processes 2".into()).exit_code(), 2);
        let missing = Error::kafka_user("127.0.0.1:9092", "topic events does not exist");
        assert_eq!((missing.exit_code(), missing.fault(), missing.retryable()), (1, Fault::User, false));
        let down = Error::kafka("127.0.0.1:9092", "cannot read metadata");
        assert_eq!((down.fault(), down.retryable()), (Fault::External, true));
        assert_eq!(Error::Internal("x".into()).fault(), Fault::Internal);
    }
}
