//! Two ScalingPolicies on one workload: a conflict reported on both, and neither scales it until
//! one is left. Two deciders would each write their own total to the same scale subresource
//! every second, and the replicas would follow whichever wrote last.
use super::spec::Target;

/// The condition reason of a policy that shares its target with another.
pub const REASON: &str = "ConflictingScalingPolicies";

/// The other live policies on the same workload (from the index of policy targets, which
/// matches group, kind and name whatever the version: it is the same object), as
/// `namespace/name`, sorted.
pub fn others(sharing: Vec<(String, String)>, me: Option<&str>, namespace: &str) -> Vec<String> {
    let mut found: Vec<String> = sharing
        .into_iter()
        .filter(|(uid, _)| Some(uid.as_str()) != me)
        .map(|(_, name)| format!("{namespace}/{name}"))
        .collect();
    found.sort();
    found
}

/// The condition message.
pub fn message(target: &Target, others: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut names = others
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if others.len() > SHOWN {
        names.push_str(&format!(" and {} more", others.len() - SHOWN));
    }
    format!(
        "ScalingPolicy {names} also target{} {} {}; none of them scales it until only one is left",
        if others.len() == 1 { "s" } else { "" },
        target.kind,
        target.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> Target {
        Target {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        }
    }

    #[test]
    fn every_other_policy_on_the_workload_conflicts() {
        let sharing = vec![
            ("2".into(), "b".into()),
            ("1".into(), "a".into()),
            ("3".into(), "c".into()),
        ];
        assert_eq!(others(sharing, Some("1"), "shop"), ["shop/b", "shop/c"]);
        assert!(others(vec![("1".into(), "a".into())], Some("1"), "shop").is_empty());
    }

    #[test]
    fn the_message_names_a_few_and_counts_the_rest() {
        let many: Vec<String> = (0..20).map(|i| format!("shop/p{i}")).collect();
        let text = message(&web(), &many);
        assert!(
            text.contains("shop/p0") && text.contains("and 15 more"),
            "{text}"
        );
        assert!(message(&web(), &many[..1]).contains("also targets Deployment web"));
    }
}
