//! Routing: which channels an alert goes to, by severity, kind or rule. Without routes every
//! alert goes to every alert channel.

use super::Alert;
use crate::spec::{RouteConfig, SinkKind};

/// The routes of a config, with the channel kinds that exist.
#[derive(Clone, Debug)]
pub struct Router {
    routes: Vec<RouteConfig>,
}

impl Router {
    /// A router over `routes`.
    pub fn new(routes: Vec<RouteConfig>) -> Router {
        Router { routes }
    }

    /// Whether `alert` goes to the channel of kind `channel`.
    pub fn routes_to(&self, alert: &Alert, channel: SinkKind) -> bool {
        if self.routes.is_empty() {
            return true;
        }
        self.routes.iter().any(|route| {
            (route.severity.is_empty() || route.severity.contains(&alert.severity))
                && (route.kind.is_empty() || route.kind.contains(&alert.kind.rule_kind()))
                && (route.rule.is_empty() || route.rule.iter().any(|r| r == alert.rule.as_str()))
                && route.channels.contains(&channel)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::tests::sample;
    use crate::spec::{RuleKind, Severity};

    #[test]
    fn routes_by_severity_kind_and_rule() {
        let router = Router::new(vec![
            RouteConfig {
                severity: vec![Severity::Critical, Severity::High],
                channels: vec![SinkKind::Webhook],
                ..Default::default()
            },
            RouteConfig { kind: vec![RuleKind::Zscore], channels: vec![SinkKind::Redis], ..Default::default() },
            RouteConfig { channels: vec![SinkKind::Jsonl], ..Default::default() },
        ]);
        let critical = sample();
        assert!(router.routes_to(&critical, SinkKind::Webhook));
        assert!(router.routes_to(&critical, SinkKind::Jsonl));
        assert!(!router.routes_to(&critical, SinkKind::Redis));
        let mut low = sample();
        low.severity = Severity::Low;
        assert!(!router.routes_to(&low, SinkKind::Webhook));
        assert!(Router::new(Vec::new()).routes_to(&low, SinkKind::Kafka));
    }
}
