//! What the ClusterRole aggregation controller does: a ClusterRole with an
//! `aggregationRule` gets, as its rules, the rules of every other ClusterRole
//! whose labels one of its `clusterRoleSelectors` matches. The controller
//! writes those rules into the aggregated role, so an aggregated role that is
//! itself selected passes its collected rules on (Kubeflow chains
//! `kubeflow-edit` ← `kubeflow-pipelines-edit` ← `aggregate-to-...`). The
//! rules an aggregated role's manifest wrote itself are overwritten.

use std::collections::BTreeMap;

use super::rbac::{LabelSelector, PolicyRule, Role};

/// The rules of each aggregated ClusterRole, by name: the fixed point of the
/// controller's passes (cycles included).
pub fn aggregate(cluster_roles: &BTreeMap<String, Role>) -> BTreeMap<String, Vec<PolicyRule>> {
    let mut aggregated: BTreeMap<String, Vec<PolicyRule>> = cluster_roles
        .iter()
        .filter(|(_, role)| role.aggregation_rule.is_some())
        .map(|(name, _)| (name.clone(), Vec::new()))
        .collect();
    // Each pass can only add rules, and there are finitely many, so this ends.
    loop {
        let mut changed = false;
        for (name, role) in cluster_roles {
            let Some(rule) = &role.aggregation_rule else {
                continue;
            };
            let mut rules = aggregated.get(name).cloned().unwrap_or_default();
            for (member_name, member) in cluster_roles {
                if member_name == name {
                    continue;
                }
                let labels = member.labels();
                if !rule
                    .cluster_role_selectors
                    .iter()
                    .any(|selector| selector_matches(selector, &labels))
                {
                    continue;
                }
                let member_rules = match &member.aggregation_rule {
                    Some(_) => aggregated.get(member_name).cloned().unwrap_or_default(),
                    None => member.written_rules().to_vec(),
                };
                for member_rule in member_rules {
                    if !rules.contains(&member_rule) {
                        rules.push(member_rule);
                        changed = true;
                    }
                }
            }
            aggregated.insert(name.clone(), rules);
        }
        if !changed {
            return aggregated;
        }
    }
}

/// Whether `labels` satisfy `selector` (`matchLabels` and `matchExpressions`
/// with `In`, `NotIn`, `Exists`, `DoesNotExist`). An empty selector matches
/// everything, as `metav1.LabelSelectorAsSelector` has it.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions_match = selector.match_expressions.iter().flatten().all(|req| {
        let value = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => value.is_some_and(|v| req.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !req.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_match && expressions_match
}

#[cfg(test)]
mod tests {
    use crate::apiserver::rbac::Rbac;

    #[test]
    fn chains_and_cycles_reach_a_fixed_point() {
        let rbac = Rbac::from_yaml(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: top}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {to-top: "true"}}]
rules: [{apiGroups: [""], resources: [ignored], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: middle, labels: {to-top: "true"}}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {to-middle: "true"}}, {matchExpressions: [{key: tier, operator: In, values: [low]}]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: leaf, labels: {to-middle: "true"}}
rules: [{apiGroups: [a], resources: [x], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: low, labels: {tier: low, to-top: "true"}}
rules: [{apiGroups: [a], resources: [x], verbs: [get]}, {apiGroups: [b], resources: [y], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cycle-a, labels: {to-b: "true"}}
aggregationRule: {clusterRoleSelectors: [{matchLabels: {to-a: "true"}}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cycle-b, labels: {to-a: "true"}}
aggregationRule: {clusterRoleSelectors: [{matchLabels: {to-b: "true"}}]}
"#,
        )
        .unwrap();
        let top = rbac.cluster_role_rules("top").unwrap();
        assert_eq!(top.len(), 2, "{top:?}");
        assert!(top.iter().all(|r| r.resources != ["ignored"]));
        assert_eq!(rbac.cluster_role_rules("middle").unwrap().len(), 2);
        assert_eq!(rbac.cluster_role_rules("cycle-a"), Some(&[][..]));
        assert_eq!(rbac.cluster_role_rules("missing"), None);
    }
}
