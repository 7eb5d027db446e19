//! `flotilla preview`: the placement decision for a FederatedIngress or ScalingPolicy, with the
//! reason for every cluster, computed from the MemberClusters on the host. Applies nothing.
use std::io::Read;

use anyhow::{Context as _, bail};
use kube::api::{Api, ListParams};
use serde_json::Value;

use flotilla_api::placement::Placement;
use flotilla_api::placement_status::PlacementStatus;
use flotilla_api::{FederatedIngress, MemberCluster, ScalingPolicy};
use flotilla_controller::placement_input::{
    inventory, member_from_object, placement_spec, previous, replica_request, timestamp, to_status,
};
use flotilla_placement::{DecisionInput, decide};

use crate::cli::PreviewArgs;
use crate::run::host_client;

/// The placement-relevant parts of either kind.
struct Subject {
    kind: &'static str,
    name: String,
    placement: Placement,
    previous: Option<PlacementStatus>,
    replicas: Option<(flotilla_api::scaling_policy::Distribution, i32)>,
}

pub async fn preview(args: PreviewArgs) -> anyhow::Result<()> {
    let client = host_client(&args.host).await?;
    let subject = match (&args.file, &args.kind, &args.name) {
        (Some(path), _, _) => from_document(read_document(path)?)?,
        (None, Some(kind), Some(name)) => from_host(&client, kind, name, &args.namespace).await?,
        _ => bail!("give a file (-f) or --kind and --name of an object on the host"),
    };
    let members: Vec<_> = Api::<MemberCluster>::all(client)
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
    let decision = decide(&DecisionInput {
        spec: &spec,
        clusters: &clusters,
        previous: &previous,
        now: timestamp(jiff::Timestamp::now()),
        replicas: request.as_ref(),
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
    }
    Ok(())
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
                Some("FederatedIngress" | "ScalingPolicy")
            )
        })
        .context("no FederatedIngress or ScalingPolicy in the input")
}

fn from_document(doc: Value) -> anyhow::Result<Subject> {
    match doc["kind"].as_str() {
        Some("FederatedIngress") => Ok(ingress(
            serde_json::from_value(doc).context("not a valid FederatedIngress")?,
        )),
        Some("ScalingPolicy") => Ok(scaling(
            serde_json::from_value(doc).context("not a valid ScalingPolicy")?,
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
        other => bail!("unknown kind {other:?}: use federatedingress or scalingpolicy"),
    }
}

fn ingress(fi: FederatedIngress) -> Subject {
    Subject {
        kind: "FederatedIngress",
        name: fi.metadata.name.clone().unwrap_or_default(),
        placement: fi.spec.propagation.placement,
        previous: fi.status.and_then(|s| s.placement),
        replicas: None,
    }
}

fn scaling(sp: ScalingPolicy) -> Subject {
    let total = sp
        .status
        .as_ref()
        .and_then(|s| s.desired_replicas)
        .unwrap_or(sp.spec.min_replicas);
    Subject {
        kind: "ScalingPolicy",
        name: sp.metadata.name.clone().unwrap_or_default(),
        placement: sp.spec.placement,
        previous: sp.status.and_then(|s| s.placement),
        replicas: Some((sp.spec.distribution, total)),
    }
}
