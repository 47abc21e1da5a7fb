//! The RBAC authorizer, as kube-apiserver's `plugin/pkg/auth/authorizer/rbac`
//! evaluates a request: ClusterRoleBindings first, then (for a namespaced
//! request) the RoleBindings of that namespace; a binding applies when one of
//! its subjects is the user, one of the user's groups, or the user's service
//! account; the first rule of the bound role that allows the request decides,
//! and the reason names the binding. Nothing allows → no opinion (denied),
//! with the evaluation errors (missing roles) as the reason, if any.
//!
//! Subjects are matched literally against the review's `user` and `groups`:
//! like the real SubjectAccessReview, nothing is added (no
//! `system:authenticated`, no `system:serviceaccounts`).

use super::rbac::{Binding, PolicyRule, Rbac, Subject};

/// `spec.resourceAttributes` of a SubjectAccessReview.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub namespace: String,
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

/// `spec.nonResourceAttributes` of a SubjectAccessReview.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NonResourceAttributes {
    pub path: String,
    pub verb: String,
}

/// What is asked: a resource or a non-resource URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Resource(ResourceAttributes),
    NonResource(NonResourceAttributes),
}

/// Who asks what: the part of a SubjectAccessReview's `spec` RBAC reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    pub user: String,
    pub groups: Vec<String>,
    pub action: Action,
}

impl AccessRequest {
    /// `user`, in no group, asking for nothing yet (an empty resource
    /// request); chain the builders below.
    pub fn user(user: &str) -> AccessRequest {
        AccessRequest {
            user: user.to_string(),
            groups: Vec::new(),
            action: Action::Resource(ResourceAttributes::default()),
        }
    }

    /// Only these groups, no user name.
    pub fn groups_only(groups: &[&str]) -> AccessRequest {
        AccessRequest::user("").groups(groups)
    }

    /// A service account's user name, `system:serviceaccount:NS:NAME`.
    pub fn service_account(namespace: &str, name: &str) -> AccessRequest {
        AccessRequest::user(&service_account_username(namespace, name))
    }

    pub fn groups(mut self, groups: &[&str]) -> AccessRequest {
        self.groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }

    /// Asks for `verb` on `resource` of API group `group` ("" is core).
    /// Keeps a namespace, subresource or name set before.
    pub fn can(mut self, verb: &str, group: &str, resource: &str) -> AccessRequest {
        let mut attrs = self.resource_attributes();
        attrs.verb = verb.to_string();
        attrs.group = group.to_string();
        attrs.resource = resource.to_string();
        self.action = Action::Resource(attrs);
        self
    }

    pub fn in_namespace(mut self, namespace: &str) -> AccessRequest {
        let mut attrs = self.resource_attributes();
        attrs.namespace = namespace.to_string();
        self.action = Action::Resource(attrs);
        self
    }

    pub fn subresource(mut self, subresource: &str) -> AccessRequest {
        let mut attrs = self.resource_attributes();
        attrs.subresource = subresource.to_string();
        self.action = Action::Resource(attrs);
        self
    }

    pub fn named(mut self, name: &str) -> AccessRequest {
        let mut attrs = self.resource_attributes();
        attrs.name = name.to_string();
        self.action = Action::Resource(attrs);
        self
    }

    /// Asks for `verb` on the non-resource URL `path` (e.g. `get` `/healthz`).
    pub fn non_resource(mut self, verb: &str, path: &str) -> AccessRequest {
        self.action = Action::NonResource(NonResourceAttributes {
            path: path.to_string(),
            verb: verb.to_string(),
        });
        self
    }

    fn resource_attributes(&self) -> ResourceAttributes {
        match &self.action {
            Action::Resource(attrs) => attrs.clone(),
            Action::NonResource(_) => ResourceAttributes::default(),
        }
    }
}

/// `system:serviceaccount:NAMESPACE:NAME`.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The authorizer's answer: `status.allowed` and `status.reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// `RBAC: allowed by ...` when allowed; when not, empty or the
    /// evaluation errors (`RBAC: clusterrole.rbac.authorization.k8s.io "x" not found`).
    pub reason: String,
}

impl Rbac {
    /// Evaluates `request` the way the RBAC authorizer does.
    pub fn authorize(&self, request: &AccessRequest) -> Decision {
        let mut errors = Vec::new();
        let namespace = match &request.action {
            Action::Resource(attrs) => attrs.namespace.as_str(),
            Action::NonResource(_) => "",
        };
        let cluster_bindings = self.cluster_role_bindings.values();
        let namespace_bindings = self
            .role_bindings_in(namespace)
            .filter(|_| !namespace.is_empty());
        for binding in cluster_bindings.chain(namespace_bindings) {
            let binding_namespace = binding.namespace();
            let Some(subject) = binding
                .subjects()
                .iter()
                .find(|subject| applies_to(subject, request, binding_namespace))
            else {
                continue;
            };
            let Some(rules) = self.bound_rules(binding, &mut errors) else {
                continue;
            };
            if rules.iter().any(|rule| rule_allows(rule, &request.action)) {
                return Decision {
                    allowed: true,
                    reason: format!("RBAC: allowed by {}", describe(binding, subject)),
                };
            }
        }
        // utilerrors.NewAggregate prints one error bare, several in brackets.
        let reason = match errors.as_slice() {
            [] => String::new(),
            [one] => format!("RBAC: {one}"),
            many => format!("RBAC: [{}]", many.join(", ")),
        };
        Decision {
            allowed: false,
            reason,
        }
    }

    /// Shorthand for `authorize(request).allowed`.
    pub fn allows(&self, request: &AccessRequest) -> bool {
        self.authorize(request).allowed
    }

    fn bound_rules(&self, binding: &Binding, errors: &mut Vec<String>) -> Option<&[PolicyRule]> {
        let role_ref = &binding.role_ref;
        let rules = match role_ref.kind.as_str() {
            "ClusterRole" => self.cluster_role_rules(&role_ref.name),
            _ => self.role_rules(binding.namespace(), &role_ref.name),
        };
        if rules.is_none() {
            errors.push(format!(
                "{}.rbac.authorization.k8s.io {:?} not found",
                role_ref.kind.to_lowercase(),
                role_ref.name
            ));
        }
        rules
    }
}

/// `appliesTo` of the RBAC rule resolver.
fn applies_to(subject: &Subject, request: &AccessRequest, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => request.user == subject.name,
        "Group" => request.groups.contains(&subject.name),
        "ServiceAccount" => {
            let namespace = match subject.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => ns,
                _ => binding_namespace,
            };
            !namespace.is_empty()
                && request.user == service_account_username(namespace, &subject.name)
        }
        _ => false,
    }
}

/// How the RBAC authorizer names the binding that allowed a request.
fn describe(binding: &Binding, subject: &Subject) -> String {
    let role = format!("{} {:?}", binding.role_ref.kind, binding.role_ref.name);
    let who = match subject.kind.as_str() {
        "ServiceAccount" => {
            let namespace = match subject.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => ns,
                _ => binding.namespace(),
            };
            format!(
                "ServiceAccount {:?}",
                format!("{}/{namespace}", subject.name)
            )
        }
        kind => format!("{kind} {:?}", subject.name),
    };
    if binding.namespace().is_empty() {
        format!("ClusterRoleBinding {:?} of {role} to {who}", binding.name())
    } else {
        let name = format!("{}/{}", binding.name(), binding.namespace());
        format!("RoleBinding {name:?} of {role} to {who}")
    }
}

/// `RuleAllows` of the RBAC authorizer.
pub fn rule_allows(rule: &PolicyRule, action: &Action) -> bool {
    match action {
        Action::Resource(attrs) => {
            let combined = if attrs.subresource.is_empty() {
                attrs.resource.clone()
            } else {
                format!("{}/{}", attrs.resource, attrs.subresource)
            };
            verb_matches(rule, &attrs.verb)
                && any_or_equal(&rule.api_groups, &attrs.group)
                && resource_matches(rule, &combined, &attrs.subresource)
                && (rule.resource_names.is_empty() || rule.resource_names.contains(&attrs.name))
        }
        Action::NonResource(attrs) => {
            verb_matches(rule, &attrs.verb) && non_resource_url_matches(rule, &attrs.path)
        }
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    any_or_equal(&rule.verbs, verb)
}

fn any_or_equal(values: &[String], requested: &str) -> bool {
    values.iter().any(|v| v == "*" || v == requested)
}

/// `*`, the exact `resource/subresource`, or `*/subresource`.
fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty()
                && r.len() == subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(subresource))
    })
}

/// `*`, the exact path, or a prefix ending in `*`.
fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|url| {
        url == "*"
            || url == path
            || (url.ends_with('*') && path.starts_with(url.trim_end_matches('*')))
    })
}
