//! MemberCluster: one member cluster joined to the federation.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::placement::ClusterTaint;

/// A member cluster: where its API server is reached (through a kubeconfig in a Secret), where it
/// sits (region, zone, labels) and what it accepts (taints). Flotilla probes its health and
/// records it in status. Placement selects clusters by this object's labels.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "federation.flotilla.dev",
    version = "v1alpha1",
    kind = "MemberCluster",
    plural = "memberclusters",
    shortname = "mcl",
    category = "flotilla",
    status = "MemberClusterStatus",
    doc = "A member cluster of the Flotilla federation.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(
        name = "Zone",
        type_ = "string",
        json_path = ".spec.zone",
        priority = 1
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.kubernetesVersion"
    ),
    printcolumn(
        name = "Latency",
        type_ = "integer",
        json_path = ".status.probeLatencyMilliseconds",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MemberClusterSpec {
    /// The Secret, in the operator's namespace, holding a kubeconfig for this member.
    pub secret_ref: SecretKeyReference,

    /// The member's region. Exposed to placement as the label `topology.kubernetes.io/region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// The member's zone. Exposed to placement as the label `topology.kubernetes.io/zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,

    /// Taints keep objects that do not tolerate them off this cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<ClusterTaint>,

    /// How the member's health is probed. The defaults ride out a one-second blip and detect a
    /// dead member in about two seconds.
    #[serde(default)]
    pub probe: ProbeSettings,

    /// Which host namespaces may place objects into this member. Absent: every namespace.
    /// Present: only the namespaces listed in `names` or whose labels match `selector` (an
    /// empty `namespaces: {}` admits none). Objects of other namespaces are filtered out of this
    /// member with reason `NamespaceNotAllowed`; ScalingPolicies of other namespaces do not scale
    /// here. Cluster-scoped objects (ClusterFederatedObject) are not restricted: creating one
    /// takes cluster-wide rights on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<NamespaceAccess>,
}

/// Host namespaces admitted into a member: listed by name, or selected by their labels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceAccess {
    /// Host namespaces admitted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub names: Vec<String>,
    /// Host namespaces admitted by their labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// A key of a Secret in the operator's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key holding the kubeconfig.
    #[serde(default = "default_kubeconfig_key")]
    pub key: String,
}

fn default_kubeconfig_key() -> String {
    "kubeconfig".to_string()
}

/// Bounds of the probe settings: the schema rejects values outside them, and the controller clamps
/// objects stored before the bounds existed. Without an upper bound, one member with an hour-long
/// timeout or a threshold of millions could keep its health Unknown (and start-up waiting) for
/// that long.
pub mod probe_bounds {
    pub const PERIOD_MILLISECONDS: (u32, u32) = (100, 60_000);
    pub const TIMEOUT_MILLISECONDS: (u32, u32) = (50, 30_000);
    pub const THRESHOLD: (u32, u32) = (1, 100);
}

/// Health probing of the member's `/readyz` endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSettings {
    /// Time between the start of two probes, in milliseconds (100 to 60000).
    #[serde(default = "default_period_ms")]
    #[schemars(range(min = 100, max = 60_000))]
    pub period_milliseconds: u32,
    /// A probe that takes longer than this fails, in milliseconds (50 to 30000).
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 50, max = 30_000))]
    pub timeout_milliseconds: u32,
    /// Consecutive failures before the member is marked NotReady (1 to 100).
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_threshold: u32,
    /// Consecutive successes before a NotReady member is marked Ready again (1 to 100).
    #[serde(default = "default_success_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub success_threshold: u32,
}

impl ProbeSettings {
    /// The settings brought within [`probe_bounds`]: objects written before the schema had
    /// upper bounds keep their values in etcd, and must not freeze probing either.
    pub fn clamped(&self) -> Self {
        use probe_bounds::*;
        let clamp = |v: u32, (min, max): (u32, u32)| v.clamp(min, max);
        Self {
            period_milliseconds: clamp(self.period_milliseconds, PERIOD_MILLISECONDS),
            timeout_milliseconds: clamp(self.timeout_milliseconds, TIMEOUT_MILLISECONDS),
            failure_threshold: clamp(self.failure_threshold, THRESHOLD),
            success_threshold: clamp(self.success_threshold, THRESHOLD),
        }
    }
}

fn default_period_ms() -> u32 {
    500
}
fn default_timeout_ms() -> u32 {
    500
}
fn default_failure_threshold() -> u32 {
    4
}
fn default_success_threshold() -> u32 {
    2
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            period_milliseconds: default_period_ms(),
            timeout_milliseconds: default_timeout_ms(),
            failure_threshold: default_failure_threshold(),
            success_threshold: default_success_threshold(),
        }
    }
}

/// What Flotilla last observed of the member.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberClusterStatus {
    /// `Ready` (the member answers its readiness endpoint with the stored credentials) and
    /// `CredentialsValid`, each with a reason and message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// When the member was last probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// Round-trip time of the last successful probe, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_latency_milliseconds: Option<u32>,
    /// The member API server's version, for example `v1.20.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[cfg(test)]
mod probe_tests {
    use super::*;

    #[test]
    fn defaults_are_within_bounds() {
        let defaults = ProbeSettings::default();
        assert_eq!(defaults.clamped(), defaults);
    }

    #[test]
    fn old_out_of_range_values_are_clamped() {
        let wild = ProbeSettings {
            period_milliseconds: 3_600_000,
            timeout_milliseconds: 0,
            failure_threshold: 1_000_000,
            success_threshold: 0,
        };
        assert_eq!(
            wild.clamped(),
            ProbeSettings {
                period_milliseconds: 60_000,
                timeout_milliseconds: 50,
                failure_threshold: 100,
                success_threshold: 1,
            }
        );
    }

    /// The schema carries the same bounds as the clamp.
    #[test]
    fn the_schema_has_the_bounds() {
        let schema = serde_json::to_value(schemars::schema_for!(ProbeSettings)).expect("json");
        let props = &schema["properties"];
        for (field, (min, max)) in [
            ("periodMilliseconds", probe_bounds::PERIOD_MILLISECONDS),
            ("timeoutMilliseconds", probe_bounds::TIMEOUT_MILLISECONDS),
            ("failureThreshold", probe_bounds::THRESHOLD),
            ("successThreshold", probe_bounds::THRESHOLD),
        ] {
            assert_eq!(
                props[field]["minimum"].as_f64(),
                Some(f64::from(min)),
                "{field}"
            );
            assert_eq!(
                props[field]["maximum"].as_f64(),
                Some(f64::from(max)),
                "{field}"
            );
        }
    }
}
