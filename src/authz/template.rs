//! Attribute templates: literal text with `{host.NAME}`, `{path.NAME}` (named
//! regex captures of the rule's match) and `{query.NAME}` (a query parameter).

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Host(String),
    Path(String),
    Query(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template is filled from.
#[derive(Debug, Default)]
pub struct Captures {
    pub host: HashMap<String, String>,
    pub path: HashMap<String, String>,
    pub query: HashMap<String, String>,
}

/// Why an attribute value is no template; its Display names the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{` without its `}` in `text`.
    Unclosed(String),
    /// `{host.NAME}` or `{path.NAME}` (`inner`) whose NAME no capture group has.
    NoCaptureGroup { inner: String, name: String },
    /// A placeholder (`inner`) that is none of host, path, query.
    UnknownPlaceholder(String),
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Unclosed(text) => write!(f, "`{text}`: unclosed `{{`"),
            TemplateError::NoCaptureGroup { inner, name } => write!(
                f,
                "`{{{inner}}}`: no capture group `(?P<{name}>...)` in the rule's match regexes"
            ),
            TemplateError::UnknownPlaceholder(inner) => write!(
                f,
                "`{{{inner}}}`: use {{host.NAME}}, {{path.NAME}} or {{query.NAME}}"
            ),
        }
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// Parses `text`; every `{host.X}` / `{path.X}` must name a capture group
    /// of the rule's host / path regexes.
    pub fn parse(
        text: &str,
        host_names: &[String],
        path_names: &[String],
    ) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let (literal, after) = rest.split_at(open);
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.to_string()));
            }
            let close = after
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed(text.into()))?;
            let inner = after.get(1..close).unwrap_or("");
            let part = match inner.split_once('.') {
                Some(("host", name)) if host_names.iter().any(|known| known == name) => {
                    Part::Host(name.to_string())
                }
                Some(("path", name)) if path_names.iter().any(|known| known == name) => {
                    Part::Path(name.to_string())
                }
                Some(("query", name)) if !name.is_empty() => Part::Query(name.to_string()),
                Some(("host" | "path", name)) => {
                    return Err(TemplateError::NoCaptureGroup {
                        inner: inner.into(),
                        name: name.into(),
                    })
                }
                _ => return Err(TemplateError::UnknownPlaceholder(inner.into())),
            };
            parts.push(part);
            rest = after.get(close.saturating_add(1)..).unwrap_or("");
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Fills the template; `Err` names the capture or parameter that is missing.
    pub fn render(&self, captures: &Captures) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            let value = match part {
                Part::Literal(text) => Some(text),
                Part::Host(name) => captures.host.get(name),
                Part::Path(name) => captures.path.get(name),
                Part::Query(name) => captures.query.get(name),
            };
            match value {
                Some(value) if !value.is_empty() => out.push_str(value),
                _ => {
                    return Err(match part {
                        Part::Host(name) => format!("host.{name}"),
                        Part::Path(name) => format!("path.{name}"),
                        Part::Query(name) => format!("query parameter `{name}`"),
                        Part::Literal(_) => String::new(),
                    })
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn fills_captures_and_query_parameters() {
        let template = Template::parse(
            "{host.namespace}/{path.model}-{query.v}",
            &names(&["namespace"]),
            &names(&["model"]),
        )
        .unwrap();
        let mut captures = Captures::default();
        captures.host.insert("namespace".into(), "team-a".into());
        captures.path.insert("model".into(), "iris".into());
        captures.query.insert("v".into(), "2".into());
        assert_eq!(template.render(&captures).unwrap(), "team-a/iris-2");
        captures.query.clear();
        assert_eq!(
            template.render(&captures).unwrap_err(),
            "query parameter `v`"
        );
    }

    #[test]
    fn refuses_unknown_captures_and_syntax() {
        assert_eq!(
            Template::parse("{host.ns}", &[], &[])
                .unwrap_err()
                .to_string(),
            "`{host.ns}`: no capture group `(?P<ns>...)` in the rule's match regexes"
        );
        assert_eq!(
            Template::parse("{path.x", &[], &names(&["x"])),
            Err(TemplateError::Unclosed("{path.x".into()))
        );
        assert_eq!(
            Template::parse("{user}", &[], &[]).unwrap_err().to_string(),
            "`{user}`: use {host.NAME}, {path.NAME} or {query.NAME}"
        );
        assert_eq!(
            Template::parse("pipelines.kubeflow.org", &[], &[])
                .unwrap()
                .render(&Captures::default())
                .unwrap(),
            "pipelines.kubeflow.org"
        );
    }
}
