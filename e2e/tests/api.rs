//! The v1alpha1 API on a real API server: the CRDs install with `kubectl apply`, the examples are
//! accepted and read back unchanged, malformed objects are rejected with readable messages, and
//! `kubectl get`/`explain` show what the CRDs promise.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use flotilla_api::{FederatedIngress, MemberCluster, ScalingPolicy};
use flotilla_e2e::{TestBed, eventually, read_yaml_documents, repo_root, without_list_indices};
use kube::Api;

const CRDS: [&str; 7] = [
    "memberclusters.federation.flotilla.dev",
    "federatedingresses.federation.flotilla.dev",
    "scalingpolicies.federation.flotilla.dev",
    "federatedobjects.federation.flotilla.dev",
    "clusterfederatedobjects.federation.flotilla.dev",
    "propagationpolicies.federation.flotilla.dev",
    "clusterpropagationpolicies.federation.flotilla.dev",
];

fn install_crds(bed: &TestBed) {
    bed.apply_crds("crds/");
    let names: Vec<String> = CRDS.iter().map(|c| format!("crd/{c}")).collect();
    let mut args = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    args.extend(names.iter().map(String::as_str));
    bed.kubectl_ok("host", &args);
}

/// Every example, applied with kubectl, reads back through the typed API with the same spec
/// (after the schema's defaults, which serde's defaults must agree with).
#[tokio::test]
async fn examples_apply_and_read_back_unchanged() {
    let bed = TestBed::get();
    install_crds(&bed);
    bed.kubectl_ok("host", &["apply", "-f", "manifests/examples/"]);

    let client = bed.client("host").await;
    let mut checked = 0;
    let mut paths: Vec<_> = std::fs::read_dir(repo_root().join("manifests/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        for doc in read_yaml_documents(&path).unwrap() {
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            let ns = doc["metadata"]["namespace"].as_str().map(str::to_string);
            match doc["kind"].as_str().unwrap() {
                "MemberCluster" => {
                    let want: MemberCluster = serde_json::from_value(doc).unwrap();
                    let got = Api::<MemberCluster>::all(client.clone())
                        .get(&name)
                        .await
                        .unwrap();
                    assert_eq!(
                        got.spec, want.spec,
                        "MemberCluster {name} changed on the way"
                    );
                }
                "FederatedIngress" => {
                    let want: FederatedIngress = serde_json::from_value(doc).unwrap();
                    let api = Api::<FederatedIngress>::namespaced(client.clone(), &ns.unwrap());
                    let got = api.get(&name).await.unwrap();
                    assert_eq!(
                        got.spec, want.spec,
                        "FederatedIngress {name} changed on the way"
                    );
                }
                "ScalingPolicy" => {
                    let want: ScalingPolicy = serde_json::from_value(doc).unwrap();
                    let api = Api::<ScalingPolicy>::namespaced(client.clone(), &ns.unwrap());
                    let got = api.get(&name).await.unwrap();
                    assert_eq!(
                        got.spec, want.spec,
                        "ScalingPolicy {name} changed on the way"
                    );
                }
                kind @ ("FederatedObject"
                | "ClusterFederatedObject"
                | "PropagationPolicy"
                | "ClusterPropagationPolicy") => {
                    let plural =
                        format!("{}s", kind.to_ascii_lowercase()).replace("policys", "policies");
                    let resource = kube::api::ApiResource::from_gvk_with_plural(
                        &kube::api::GroupVersionKind::gvk(
                            "federation.flotilla.dev",
                            "v1alpha1",
                            kind,
                        ),
                        &plural,
                    );
                    let api: Api<kube::api::DynamicObject> = match &ns {
                        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                        None => Api::all_with(client.clone(), &resource),
                    };
                    let got = serde_json::to_value(api.get(&name).await.unwrap()).unwrap();
                    assert_eq!(
                        got["spec"]["template"], doc["spec"]["template"],
                        "{kind} {name}: the template is kept as given"
                    );
                }
                _ => continue,
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "only {checked} Flotilla objects in the examples"
    );

    // The category lists every Flotilla object; printer columns show.
    let all = bed.kubectl_ok("host", &["get", "flotilla", "-A"]);
    for name in [
        "member1",
        "federatedobject.federation.flotilla.dev/payment-gateway",
        "scalingpolicy.federation.flotilla.dev/payment-gateway",
    ] {
        assert!(
            all.contains(name),
            "`kubectl get flotilla -A` lacks {name}:\n{all}"
        );
    }
    let mcl = bed.kubectl_ok("host", &["get", "mcl"]);
    assert!(
        mcl.contains("REGION") && mcl.contains("eu-west"),
        "MemberCluster columns:\n{mcl}"
    );
    let sp = bed.kubectl_ok("host", &["get", "sp", "-n", "payments"]);
    assert!(
        sp.contains("payment-gateway") && sp.contains("60"),
        "ScalingPolicy columns:\n{sp}"
    );
}

/// Objects the schema forbids are refused by the API server, and the message names the field.
#[tokio::test]
async fn malformed_objects_are_rejected_with_readable_messages() {
    let bed = TestBed::get();
    install_crds(&bed);
    let namespace = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"malformed"}}"#;
    let out = bed.kubectl_with_stdin("host", &["apply", "-f", "-"], Some(namespace));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: [(&str, &[&str]); 4] = [
        (
            // A misspelt enum value.
            r#"{"apiVersion":"federation.flotilla.dev/v1alpha1","kind":"FederatedIngress",
               "metadata":{"name":"bad-mode","namespace":"malformed"},
               "spec":{"template":{"spec":{}},"drift":{"mode":"Sometimes"}}}"#,
            &[
                "spec.drift.mode",
                "Unsupported value: \"Sometimes\"",
                "\"Enforce\"",
            ],
        ),
        (
            // A number below its minimum.
            r#"{"apiVersion":"federation.flotilla.dev/v1alpha1","kind":"FederatedIngress",
               "metadata":{"name":"bad-max","namespace":"malformed"},
               "spec":{"template":{"spec":{}},"placement":{"constraints":{"maxClusters":0}}}}"#,
            &[
                "spec.placement.constraints.maxClusters",
                "should be greater than or equal to 1",
            ],
        ),
        (
            // A required field missing.
            r#"{"apiVersion":"federation.flotilla.dev/v1alpha1","kind":"ScalingPolicy",
               "metadata":{"name":"no-max","namespace":"malformed"},
               "spec":{"targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"d"}}}"#,
            &["spec.maxReplicas", "Required value"],
        ),
        (
            // A JSON-patch path that is not a pointer.
            r#"{"apiVersion":"federation.flotilla.dev/v1alpha1","kind":"FederatedIngress",
               "metadata":{"name":"bad-path","namespace":"malformed"},
               "spec":{"template":{"spec":{}},"overrides":[{"clusterName":"member1",
                 "patches":[{"op":"replace","path":"spec.rules"}]}]}}"#,
            &[
                "spec.overrides.patches.path",
                "Invalid value: \"spec.rules\"",
                "should match '^/'",
            ],
        ),
    ];
    for (object, expected) in cases {
        // --validate=false: the API server itself must refuse it, not only kubectl's client check.
        let out = bed.kubectl_with_stdin(
            "host",
            &["create", "--validate=false", "-f", "-"],
            Some(object),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "the API server accepted a malformed object:\n{object}"
        );
        // Current API servers name list items with their index (`spec.overrides[0].patches[0].path`),
        // 1.20 does not (`spec.overrides.patches.path`): both are accepted.
        let unindexed = without_list_indices(&stderr);
        for fragment in expected {
            assert!(
                unindexed.contains(fragment),
                "rejection message lacks {fragment:?}:\n{stderr}"
            );
        }
    }
    bed.kubectl_ok(
        "host",
        &["delete", "namespace", "malformed", "--wait=false"],
    );
}

#[test]
fn list_indices_are_removed_from_field_paths() {
    assert_eq!(
        without_list_indices("spec.overrides[0].patches[12].path: Invalid value: \"[1]\" [x] [3"),
        "spec.overrides.patches.path: Invalid value: \"\" [x] [3"
    );
}

/// `kubectl explain` shows the doc comments of the Rust types.
#[tokio::test]
async fn kubectl_explain_shows_field_documentation() {
    let bed = TestBed::get();
    install_crds(&bed);
    // The API server publishes each CRD's schema into its OpenAPI document shortly after the CRD
    // is established, one CRD at a time; wait for each rather than racing it.
    let explain = |field: &'static str, wanted: &'static str| {
        let bed = &bed;
        async move {
            eventually(
                &format!("explain {field}"),
                Duration::from_secs(30),
                || async {
                    let out = bed.kubectl("host", &["explain", field]);
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    Ok(text.contains(wanted).then_some(text))
                },
            )
            .await
            .unwrap()
        }
    };
    let text = explain("federatedingress.spec.placement", "failoverPriority").await;
    assert!(
        text.contains("Ordered preference"),
        "explain output:\n{text}"
    );
    explain(
        "membercluster.spec.probe.failureThreshold",
        "Consecutive failures",
    )
    .await;
}

/// The CRD names this test waits for are the generated ones.
#[test]
fn expected_crd_names_match_the_generated_files() {
    let generated: Vec<String> = flotilla_api::crd_files()
        .into_iter()
        .map(|f| f.crd.metadata.name.unwrap())
        .collect();
    assert_eq!(generated, CRDS.map(String::from).to_vec());
}
