//! Properties of the generated CRDs that the API server and `kubectl explain` rely on.
use flotilla_api::crd_files;
use serde_json::Value;

/// Every property has a description, so `kubectl explain` never shows a blank field.
fn undocumented(path: &str, schema: &Value, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let here = format!("{path}.{name}");
            // apiVersion/kind/metadata are the standard envelope; the API server documents them.
            let envelope =
                path.is_empty() && matches!(name.as_str(), "apiVersion" | "kind" | "metadata");
            if !envelope && prop.get("description").is_none() {
                out.push(here.clone());
            }
            undocumented(&here, prop, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(&format!("{path}[]"), items, out);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        undocumented(&format!("{path}{{}}"), extra, out);
    }
}

fn schema_of(file: &flotilla_api::CrdFile) -> Value {
    let version = &file.crd.spec.versions[0];
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema).expect("schema serializes")
}

#[test]
fn every_property_is_documented() {
    for file in crd_files() {
        let mut missing = Vec::new();
        undocumented("", &schema_of(&file), &mut missing);
        assert!(
            missing.is_empty(),
            "{}: properties without description: {missing:?}",
            file.file_name
        );
    }
}

#[test]
fn kinds_have_short_names_category_and_status() {
    for file in crd_files() {
        let names = &file.crd.spec.names;
        assert!(
            names.short_names.as_ref().is_some_and(|s| !s.is_empty()),
            "{}",
            file.file_name
        );
        assert_eq!(
            names.categories.as_deref(),
            Some(&["flotilla".to_string()][..])
        );
        let version = &file.crd.spec.versions[0];
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        assert!(
            version
                .additional_printer_columns
                .as_ref()
                .is_some_and(|c| c.len() >= 3)
        );
    }
}

#[test]
fn schemas_are_structural_enough_for_kubernetes_1_20() {
    // No anyOf/oneOf without a type, which 1.20 rejects as non-structural, and no $ref. CEL rules
    // (`x-kubernetes-validations`, unknown to 1.20) are there for current servers: the chart
    // leaves them out on older ones (see the test below), kubectl users pass --validate=false.
    for file in crd_files() {
        let text = serde_json::to_string(&schema_of(&file)).expect("json");
        assert!(
            !text.contains("\"$ref\""),
            "{}: unresolved $ref",
            file.file_name
        );
    }
}

#[test]
fn the_chart_keeps_cel_rules_only_where_the_server_runs_them() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guard = r#"{{- if semverCompare ">=1.28-0" .Capabilities.KubeVersion.Version }}"#;
    let mut rules = 0;
    for file in crd_files() {
        let path = root
            .join("charts/flotilla/templates/crds")
            .join(&file.file_name);
        let text = std::fs::read_to_string(&path).expect("the chart's copy (make crds)");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim() == "x-kubernetes-validations:" {
                rules += 1;
                assert_eq!(
                    lines.get(i.wrapping_sub(1)).copied(),
                    Some(guard),
                    "{}:{}: CEL rules without the version guard",
                    file.file_name,
                    i + 1
                );
            }
        }
    }
    assert!(rules > 0, "no CEL rules in the chart");
}

#[test]
fn enums_are_closed_in_the_schema() {
    let fi = crd_files()
        .into_iter()
        .find(|f| f.file_name.starts_with("federatedingresses"))
        .expect("FI crd");
    let schema = schema_of(&fi);
    let mode = &schema["properties"]["spec"]["properties"]["drift"]["properties"]["mode"];
    assert_eq!(mode["enum"], serde_json::json!(["ReportOnly", "Enforce"]));
}

#[test]
fn committed_yaml_matches_the_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    for file in crd_files() {
        let committed = std::fs::read_to_string(dir.join(&file.file_name))
            .unwrap_or_else(|e| panic!("crds/{} missing ({e}); run `make crds`", file.file_name));
        assert_eq!(
            committed,
            file.to_yaml().expect("yaml"),
            "crds/{} is stale; run `make crds`",
            file.file_name
        );
    }
}

fn unbounded_integers(path: &str, schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("integer")
                && (map.get("minimum").is_none() || map.get("maximum").is_none())
            {
                out.push(path.to_string());
            }
            for (k, v) in map {
                unbounded_integers(&format!("{path}.{k}"), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                unbounded_integers(&format!("{path}[{i}]"), v, out);
            }
        }
        _ => {}
    }
}

/// An integer the schema lets through but the Rust type cannot hold would make the object
/// undecodable after it is stored.
#[test]
fn every_integer_has_bounds() {
    for file in crd_files() {
        let mut missing = Vec::new();
        unbounded_integers("", &schema_of(&file), &mut missing);
        assert!(
            missing.is_empty(),
            "{}: unbounded integers {missing:?}",
            file.file_name
        );
    }
}
