//! The test bed API servers' audit logs: every write (create, update, patch, delete) with the
//! user agent that sent it, and every read (get, list, watch) by Flotilla's member
//! ServiceAccounts (group `system:serviceaccounts:flotilla-system`), which is what the member
//! request benchmark counts. Operator replicas name themselves in their user agent
//! (`flotilla/<version> (<identity>)`), so the servers' own record tells which replica wrote
//! what, and when the server received it: a check that does not rely on the operator's word.
use std::path::Path;

use jiff::Timestamp;
use serde_json::Value;

use crate::TestBed;

/// One request as an API server recorded it.
#[derive(Debug, Clone)]
pub struct AuditedWrite {
    pub cluster: String,
    /// When the API server received the request.
    pub at: Timestamp,
    pub verb: String,
    pub resource: String,
    pub uri: String,
    pub code: u16,
}

impl AuditedWrite {
    /// The server accepted it (2xx).
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

impl TestBed {
    /// Every write the replica `identity` sent to the host and the members, oldest first.
    pub fn audited_writes(&self, identity: &str) -> Vec<AuditedWrite> {
        const WRITES: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
        self.audited(identity)
            .into_iter()
            .filter(|r| WRITES.contains(&r.verb.as_str()))
            .collect()
    }

    /// Every request the replica `identity` sent that the servers recorded (writes anywhere,
    /// reads by the member ServiceAccounts), oldest first.
    pub fn audited(&self, identity: &str) -> Vec<AuditedWrite> {
        let suffix = format!("({identity})");
        let mut out = Vec::new();
        for cluster in std::iter::once("host".to_string()).chain(self.members()) {
            let dir = self.state_dir().join(&cluster);
            for log in audit_logs(&dir) {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                out.extend(
                    text.lines()
                        .filter(|l| l.contains(&suffix))
                        .filter_map(|l| {
                            let event: Value = serde_json::from_str(l).ok()?;
                            let agent = event["userAgent"].as_str()?;
                            if !agent.starts_with("flotilla/") || !agent.ends_with(&suffix) {
                                return None;
                            }
                            Some(AuditedWrite {
                                cluster: cluster.clone(),
                                at: event["requestReceivedTimestamp"].as_str()?.parse().ok()?,
                                verb: event["verb"].as_str()?.to_string(),
                                resource: event["objectRef"]["resource"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_string(),
                                uri: event["requestURI"].as_str().unwrap_or_default().to_string(),
                                code: event["responseStatus"]["code"]
                                    .as_u64()
                                    .and_then(|c| u16::try_from(c).ok())
                                    .unwrap_or(0),
                            })
                        }),
                );
            }
        }
        out.sort_by_key(|w| w.at);
        out
    }
}

/// `audit.log` and its rotated backups (`audit-<time>.log`).
fn audit_logs(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("audit") && n.ends_with(".log"))
                })
                .collect()
        })
        .unwrap_or_default()
}
