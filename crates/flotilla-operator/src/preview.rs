//! `flotilla preview`: the placement decision for a FederatedIngress, FederatedObject,
//! ClusterFederatedObject, propagation policy or ScalingPolicy, with the reason for every
//! cluster, computed from the MemberClusters on the host; for a policy, also the host objects it
//! would propagate. Applies nothing.
use std::io::Read;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use serde_json::Value;

use flotilla_api::placement::Placement;
use flotilla_api::placement_status::PlacementStatus;
use flotilla_api::propagation_policy::PolicySpec;
use flotilla_api::{
    ClusterFederatedObject, ClusterPropagationPolicy, FederatedIngress, FederatedObject,
    MemberCluster, PropagationPolicy, ScalingPolicy,
};
use flotilla_controller::placement_input::{
    inventory, member_from_object, placement_spec, previous, replica_request, timestamp, to_status,
};
use flotilla_placement::{DecisionInput, ObjectNamespace, decide};

use crate::cli::PreviewArgs;
use crate::run::host_client;

/// The placement-relevant parts of either kind.
struct Subject {
    kind: &'static str,
    name: String,
    placement: Placement,
    previous: Option<PlacementStatus>,
    replicas: Option<(flotilla_api::scaling_policy::Distribution, i32)>,
    /// A policy's, to list the host objects it would propagate.
    policy: Option<(&'static str, Option<String>, PolicySpec)>,
    /// The host namespace of a namespaced object (members may admit only some).
    namespace: Option<String>,
}

/// The namespace of a namespaced object; `default` when a file gives none, as kubectl would.
fn namespace_of(meta: &kube::api::ObjectMeta) -> Option<String> {
    Some(meta.namespace.clone().unwrap_or_else(|| "default".into()))
}

const KINDS: &str = "FederatedIngress, FederatedObject, ClusterFederatedObject, PropagationPolicy, ClusterPropagationPolicy or ScalingPolicy";

pub async fn preview(args: PreviewArgs) -> anyhow::Result<()> {
    let client = host_client(&args.host).await?;
    let subject = match (&args.file, &args.kind, &args.name) {
        (Some(path), _, _) => from_document(read_document(path)?)?,
        (None, Some(kind), Some(name)) => from_host(&client, kind, name, &args.namespace).await?,
        _ => bail!("give a file (-f) or --kind and --name of an object on the host"),
    };
    let matches = match &subject.policy {
        Some(policy) => Some(policy_matches(&client, &subject.name, policy).await?),
        None => None,
    };
    let members: Vec<_> = Api::<MemberCluster>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("listing MemberClusters on the host")?
        .items
        .iter()
        .map(member_from_object)
        .collect();
    let spec = placement_spec(&subject.placement)
        .map_err(|e| anyhow::anyhow!("invalid {}: {e}", subject.kind))?;
    let clusters = inventory(&members);
    let previous = previous(subject.previous.as_ref());
    let request = subject
        .replicas
        .as_ref()
        .map(|(d, total)| replica_request(d, *total));
    let namespace_labels = match &subject.namespace {
        Some(ns) => Api::<Namespace>::all(client.clone())
            .get_opt(ns)
            .await
            .ok()
            .flatten()
            .and_then(|n| n.metadata.labels)
            .unwrap_or_default(),
        None => Default::default(),
    };
    let decision = decide(&DecisionInput {
        spec: &spec,
        clusters: &clusters,
        previous: &previous,
        now: timestamp(jiff::Timestamp::now()),
        replicas: request.as_ref(),
        namespace: subject.namespace.as_deref().map(|name| ObjectNamespace {
            name,
            labels: &namespace_labels,
        }),
    })
    .map_err(|e| anyhow::anyhow!("invalid {}: {e}", subject.kind))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_status(&decision))?);
    } else {
        println!(
            "{} {}: selected [{}]",
            subject.kind,
            subject.name,
            decision.selected.join(", ")
        );
        print!("{}", decision.explain());
        if let Some(matches) = matches {
            println!("would propagate {} host object(s) there:", matches.len());
            for m in matches {
                println!("  {m}");
            }
        }
    }
    Ok(())
}

/// The host objects `policy` would propagate (ignoring other policies), one line each.
async fn policy_matches(
    client: &kube::Client,
    name: &str,
    (kind, namespace, spec): &(&'static str, Option<String>, PolicySpec),
) -> anyhow::Result<Vec<String>> {
    use flotilla_controller::policy::{dependencies, plan};
    use kube::api::{DynamicObject, GroupVersionKind};
    let mut kinds: Vec<GroupVersionKind> = spec
        .resource_selectors
        .iter()
        .map(|s| {
            let (g, v) = s
                .api_version
                .rsplit_once('/')
                .unwrap_or(("", s.api_version.as_str()));
            GroupVersionKind::gvk(g, v, &s.kind)
        })
        .collect();
    if spec.propagate_dependencies {
        kinds.extend(
            dependencies::KINDS
                .iter()
                .map(|k| GroupVersionKind::gvk("", "v1", k)),
        );
    }
    let mut values = Vec::new();
    for gvk in kinds {
        let Ok((resource, _)) = kube::discovery::oneshot::pinned_kind(client, &gvk).await else {
            eprintln!(
                "note: the host does not serve {} {}",
                gvk.api_version(),
                gvk.kind
            );
            continue;
        };
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        for o in api.list(&ListParams::default()).await?.items {
            values.push((
                resource.api_version.clone(),
                resource.kind.clone(),
                serde_json::to_value(o)?,
            ));
        }
    }
    let objects: Vec<plan::HostObject> = values
        .iter()
        .map(|(api_version, kind, value)| plan::HostObject {
            api_version,
            kind,
            value,
        })
        .collect();
    let policy = plan::Policy {
        kind,
        namespace: namespace.as_deref(),
        name,
        spec,
    };
    // The operator's allowlist, when its environment variable is set here too.
    let allow = match std::env::var("FLOTILLA_FEDERATED_KINDS") {
        Ok(text) => {
            flotilla_controller::allowlist::Allowlist::parse(&text).map_err(anyhow::Error::msg)?
        }
        Err(_) => flotilla_controller::allowlist::Allowlist::default(),
    };
    let planned = plan::plan(std::slice::from_ref(&policy), &objects, &allow);
    if let Some((reason, message)) = planned
        .outcomes
        .get(&policy.id())
        .and_then(|o| o.invalid.clone())
    {
        bail!("{}: {reason}: {message}", policy.id());
    }
    Ok(planned
        .records
        .iter()
        .map(|r| {
            let source = r
                .object
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(plan::SOURCE_ANNOTATION))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let dependency = r
                .object
                .pointer("/metadata/labels")
                .and_then(|l| l.get(plan::DEPENDENCY_LABEL))
                .is_some();
            format!(
                "{source}{} → {} {}",
                if dependency { " (dependency)" } else { "" },
                r.kind,
                r.name
            )
        })
        .collect())
}

fn read_document(path: &std::path::Path) -> anyhow::Result<Value> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).context("parsing YAML")?;
    docs.into_iter()
        .find(|d| {
            matches!(
                d["kind"].as_str(),
                Some(
                    "FederatedIngress"
                        | "ScalingPolicy"
                        | "FederatedObject"
                        | "ClusterFederatedObject"
                        | "PropagationPolicy"
                        | "ClusterPropagationPolicy"
                )
            )
        })
        .with_context(|| format!("no {KINDS} in the input"))
}

fn from_document(doc: Value) -> anyhow::Result<Subject> {
    match doc["kind"].as_str() {
        Some("FederatedIngress") => Ok(ingress(
            serde_json::from_value(doc).context("not a valid FederatedIngress")?,
        )),
        Some("ScalingPolicy") => Ok(scaling(
            serde_json::from_value(doc).context("not a valid ScalingPolicy")?,
        )),
        Some("FederatedObject") => Ok(object(
            serde_json::from_value(doc).context("not a valid FederatedObject")?,
        )),
        Some("ClusterFederatedObject") => Ok(cluster_object(
            serde_json::from_value(doc).context("not a valid ClusterFederatedObject")?,
        )),
        Some("PropagationPolicy") => Ok(namespaced_policy(
            serde_json::from_value(doc).context("not a valid PropagationPolicy")?,
        )),
        Some("ClusterPropagationPolicy") => Ok(cluster_policy(
            serde_json::from_value(doc).context("not a valid ClusterPropagationPolicy")?,
        )),
        other => bail!("cannot preview kind {other:?}"),
    }
}

async fn from_host(
    client: &kube::Client,
    kind: &str,
    name: &str,
    namespace: &str,
) -> anyhow::Result<Subject> {
    match kind.to_ascii_lowercase().as_str() {
        "federatedingress" | "federatedingresses" | "fing" => {
            let fi = Api::<FederatedIngress>::namespaced(client.clone(), namespace)
                .get(name)
                .await?;
            Ok(ingress(fi))
        }
        "scalingpolicy" | "scalingpolicies" | "sp" => {
            let sp = Api::<ScalingPolicy>::namespaced(client.clone(), namespace)
                .get(name)
                .await?;
            Ok(scaling(sp))
        }
        "federatedobject" | "federatedobjects" | "fobj" => Ok(object(
            Api::<FederatedObject>::namespaced(client.clone(), namespace)
                .get(name)
                .await?,
        )),
        "clusterfederatedobject" | "clusterfederatedobjects" | "cfobj" => Ok(cluster_object(
            Api::<ClusterFederatedObject>::all(client.clone())
                .get(name)
                .await?,
        )),
        "propagationpolicy" | "propagationpolicies" | "pp" => Ok(namespaced_policy(
            Api::<PropagationPolicy>::namespaced(client.clone(), namespace)
                .get(name)
                .await?,
        )),
        "clusterpropagationpolicy" | "clusterpropagationpolicies" | "cpp" => Ok(cluster_policy(
            Api::<ClusterPropagationPolicy>::all(client.clone())
                .get(name)
                .await?,
        )),
        other => bail!("unknown kind {other:?}: use one of {KINDS}"),
    }
}

fn ingress(fi: FederatedIngress) -> Subject {
    Subject {
        namespace: namespace_of(&fi.metadata),
        kind: "FederatedIngress",
        name: fi.metadata.name.clone().unwrap_or_default(),
        placement: fi.spec.propagation.placement,
        previous: fi.status.and_then(|s| s.placement),
        replicas: None,
        policy: None,
    }
}

fn object(fo: FederatedObject) -> Subject {
    let divided = fo
        .spec
        .replicas
        .as_ref()
        .filter(|r| r.mode == flotilla_api::federated_object::ReplicaMode::Divided);
    let total = fo
        .spec
        .template
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .and_then(|t| i32::try_from(t).ok());
    Subject {
        namespace: namespace_of(&fo.metadata),
        kind: "FederatedObject",
        name: fo.metadata.name.clone().unwrap_or_default(),
        replicas: divided.zip(total).map(|(r, t)| (r.distribution.clone(), t)),
        placement: fo.spec.propagation.placement,
        previous: fo.status.and_then(|s| s.placement),
        policy: None,
    }
}

fn cluster_object(fo: ClusterFederatedObject) -> Subject {
    Subject {
        namespace: None,
        kind: "ClusterFederatedObject",
        name: fo.metadata.name.clone().unwrap_or_default(),
        placement: fo.spec.propagation.placement,
        previous: fo.status.and_then(|s| s.placement),
        replicas: None,
        policy: None,
    }
}

fn namespaced_policy(p: PropagationPolicy) -> Subject {
    Subject {
        namespace: namespace_of(&p.metadata),
        kind: "PropagationPolicy",
        name: p.metadata.name.clone().unwrap_or_default(),
        placement: p.spec.policy.propagation.placement.clone(),
        previous: None,
        replicas: None,
        policy: Some((
            "PropagationPolicy",
            p.metadata.namespace.clone(),
            p.spec.policy,
        )),
    }
}

fn cluster_policy(p: ClusterPropagationPolicy) -> Subject {
    Subject {
        namespace: None,
        kind: "ClusterPropagationPolicy",
        name: p.metadata.name.clone().unwrap_or_default(),
        placement: p.spec.policy.propagation.placement.clone(),
        previous: None,
        replicas: None,
        policy: Some(("ClusterPropagationPolicy", None, p.spec.policy)),
    }
}

fn scaling(sp: ScalingPolicy) -> Subject {
    let total = sp
        .status
        .as_ref()
        .and_then(|s| s.desired_replicas)
        .unwrap_or(sp.spec.min_replicas);
    Subject {
        namespace: namespace_of(&sp.metadata),
        kind: "ScalingPolicy",
        name: sp.metadata.name.clone().unwrap_or_default(),
        placement: sp.spec.placement,
        previous: sp.status.and_then(|s| s.placement),
        replicas: Some((sp.spec.distribution, total)),
        policy: None,
    }
}
