//! The human-readable rendering of a decision: one aligned line per cluster, then one line per
//! unmet constraint. Controllers put it in status; the `preview` command prints it.
//!
//! ```text
//! member-a  Selected  priority 0  PrimaryHealthy: priority 0, the best rank
//! member-b  Standby   priority 1  LowerPriority: a better-ranked failover group supplies the selection
//! member-c  Filtered  -           NotInClusterList: not listed in placement.clusters
//! ```
use std::fmt;

use crate::decision::{ClusterVerdict, Decision};

impl ClusterVerdict {
    fn priority_column(&self) -> String {
        self.priority
            .map_or_else(|| "-".to_owned(), |p| format!("priority {p}"))
    }
}

impl fmt::Display for ClusterVerdict {
    /// One unaligned line: `name  Verdict  priority N  Reason: message  replicas N`.
    /// (Width 0 pads nothing.)
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_line(f, self, 0, 0, 0)
    }
}

fn write_line(
    f: &mut fmt::Formatter<'_>,
    v: &ClusterVerdict,
    name_width: usize,
    verdict_width: usize,
    priority_width: usize,
) -> fmt::Result {
    write!(
        f,
        "{:name_width$}  {:verdict_width$}  {:priority_width$}  {}",
        v.name,
        v.verdict,
        v.priority_column(),
        v.reason
    )?;
    if !v.message.is_empty() {
        write!(f, ": {}", v.message)?;
    }
    if let Some(replicas) = v.replicas {
        write!(f, "  replicas {replicas}")?;
    }
    Ok(())
}

impl fmt::Display for Decision {
    /// Every cluster on its own aligned line (sorted by name), then `unsatisfied: ...` lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_width = self
            .clusters
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        let verdict_width = self
            .clusters
            .iter()
            .map(|c| c.verdict.as_str().len())
            .max()
            .unwrap_or(0);
        let priority_width = self
            .clusters
            .iter()
            .map(|c| c.priority_column().len())
            .max()
            .unwrap_or(0);
        for c in &self.clusters {
            write_line(f, c, name_width, verdict_width, priority_width)?;
            writeln!(f)?;
        }
        for u in &self.unsatisfied {
            writeln!(f, "unsatisfied: {u}")?;
        }
        Ok(())
    }
}

impl Decision {
    /// The explanation as a string (the same as `to_string()`).
    pub fn explain(&self) -> String {
        self.to_string()
    }
}
