//! Labels and annotations Flotilla puts on the objects it manages, and well-known cluster labels.

/// Marks every object Flotilla creates in a member; watches and pruning select on it.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "flotilla";
/// The host object's namespace, on a member copy.
pub const ORIGIN_NAMESPACE: &str = "federation.flotilla.dev/origin-namespace";
/// The host object's name, on a member copy.
pub const ORIGIN_NAME: &str = "federation.flotilla.dev/origin-name";
/// The host object's kind, on a member copy.
pub const ORIGIN_KIND: &str = "federation.flotilla.dev/origin-kind";
/// The host object's uid, on a member copy (an annotation: uids are not label-selectable by design).
pub const ORIGIN_UID: &str = "federation.flotilla.dev/origin-uid";
/// Marks a host Secret as member credentials: the operator watches and reads only Secrets
/// labelled `federation.flotilla.dev/member-credentials=true`, never the others in its namespace.
pub const MEMBER_CREDENTIALS: &str = "federation.flotilla.dev/member-credentials";
/// The value of [`MEMBER_CREDENTIALS`].
pub const MEMBER_CREDENTIALS_VALUE: &str = "true";
/// The server-side-apply field manager Flotilla uses everywhere.
pub const FIELD_MANAGER: &str = "flotilla";

/// The MemberCluster label placement derives from `spec.region`.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// The MemberCluster label placement derives from `spec.zone`.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
