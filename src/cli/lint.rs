//! Warnings for path and host regexes that probably do not mean what their
//! author meant, found by `kfauth check`.
//!
//! Every path or host pattern of a pluginConfig is a regex that may match
//! anywhere in the canonical path or host. Two mistakes make it match far more
//! than intended, which for `skipPaths` is an authentication bypass:
//!
//! - an Istio glob pasted as it is (`/dex/*`, `*.css`, `/api/**`,
//!   `/v1/{*}/runs`): as a regex, `/*` is "zero or more `/`", so `/dex/*`
//!   matches every path that contains `/dex`;
//! - no leading `^`: `/dex/` also matches `/api/x/dex/`.
//!
//! Paths are matched without their query string, so a path pattern that
//! matches a literal `?` (`\?`, `[?]`) never matches, and a `?` followed by
//! `name=` is most likely a query someone meant literally.
//!
//! The lint reads the configuration as JSON, before or besides the parser:
//! a pattern that is no valid regex still gets its suggestion (a leading `*`
//! is one), next to the parser's error.

use serde_json::Value;

/// What a pattern is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Path,
    Host,
}

impl Subject {
    fn noun(self) -> &'static str {
        match self {
            Subject::Path => "path",
            Subject::Host => "host",
        }
    }
}

/// Every path or host regex of `config` (a pluginConfig as JSON) with its
/// field, e.g. `("skipPaths[0]", "/dex/*", Path)`.
fn patterns(config: &Value) -> Vec<(String, &str, Subject)> {
    fn list<'a>(
        found: &mut Vec<(String, &'a str, Subject)>,
        field: &str,
        value: Option<&'a Value>,
        subject: Subject,
    ) {
        for (index, pattern) in value
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(pattern) = pattern.as_str() {
                found.push((format!("{field}[{index}]"), pattern, subject));
            }
        }
    }
    let mut found = Vec::new();
    list(
        &mut found,
        "skipPaths",
        config.get("skipPaths"),
        Subject::Path,
    );
    list(
        &mut found,
        "grpc.cookiePaths",
        config.pointer("/grpc/cookiePaths"),
        Subject::Path,
    );
    for (index, rule) in config
        .pointer("/authorization/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("authorization.rules[{index}].match");
        list(
            &mut found,
            &format!("{field}.paths"),
            rule.pointer("/match/paths"),
            Subject::Path,
        );
        list(
            &mut found,
            &format!("{field}.hosts"),
            rule.pointer("/match/hosts"),
            Subject::Host,
        );
    }
    found
}

/// The warnings for every path and host regex of `config`, each starting
/// with the field it is about.
pub fn lint_config(config: &Value) -> Vec<String> {
    patterns(config)
        .into_iter()
        .flat_map(|(field, pattern, subject)| {
            lint_pattern(pattern, subject)
                .into_iter()
                .map(move |warning| format!("{field}: {warning}"))
        })
        .collect()
}

/// One character of a pattern as the regex parser sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    ch: char,
    /// Preceded by a backslash (the backslash is not a token of its own).
    escaped: bool,
    /// Inside a `[...]` class.
    in_class: bool,
}

fn tokens(pattern: &str) -> Vec<Token> {
    let mut found = Vec::new();
    let mut escaped = false;
    let mut in_class = false;
    let mut class_start = false;
    for ch in pattern.chars() {
        if escaped {
            found.push(Token {
                ch,
                escaped: true,
                in_class,
            });
            escaped = false;
            class_start = false;
            continue;
        }
        match ch {
            '\\' => {
                escaped = true;
                continue;
            }
            '[' if !in_class => {
                found.push(Token {
                    ch,
                    escaped: false,
                    in_class: false,
                });
                in_class = true;
                class_start = true;
                continue;
            }
            // `[]...]` and `[^]...]` hold a literal `]`.
            ']' if in_class && !class_start => {
                in_class = false;
                found.push(Token {
                    ch,
                    escaped: false,
                    in_class: false,
                });
                continue;
            }
            _ => {}
        }
        found.push(Token {
            ch,
            escaped: false,
            in_class,
        });
        class_start = in_class && ch == '^' && class_start;
    }
    found
}

fn plain(token: Option<&Token>, ch: char) -> bool {
    token.is_some_and(|token| token.ch == ch && !token.escaped && !token.in_class)
}

/// Does `pattern` look like an Istio glob rather than a regex?
fn glob_signal(pattern: &str, subject: Subject) -> Option<&'static str> {
    let tokens = tokens(pattern);
    let body = match tokens.first() {
        Some(first) if plain(Some(first), '^') => tokens.get(1..).unwrap_or_default(),
        _ => tokens.as_slice(),
    };
    if plain(body.first(), '*') {
        return Some("a leading `*`");
    }
    if pattern.contains("{*}") || pattern.contains("{**}") {
        return Some("an Istio path template (`{*}`, `{**}`)");
    }
    let mut previous: Option<&Token> = None;
    for (index, token) in body.iter().enumerate() {
        if plain(Some(token), '*') && plain(previous, '*') {
            return Some("`**`");
        }
        if subject == Subject::Path && plain(Some(token), '*') && plain(previous, '/') {
            return Some(if index.saturating_add(1) == body.len() {
                "a trailing `/*`"
            } else {
                "`*` after `/`"
            });
        }
        previous = Some(token);
    }
    None
}

/// Does `text` look like plain text (so that `.` in it is meant literally)?
fn literal_looking(text: &str) -> bool {
    !text.contains(['\\', '[', ']', '(', ')', '{', '}', '+', '?', '|', '^', '$'])
}

fn literal(text: &str) -> String {
    if literal_looking(text) {
        regex_lite::escape(text)
    } else {
        text.to_string()
    }
}

/// The anchored regex an Istio glob means: `/dex/*` → `^/dex/` (a prefix),
/// `*.css` → `^.*\.css$` (a suffix), `/a/*/b` → `^/a/[^/]*/b$`, `{*}` one
/// path segment, `{**}` any number of them; hosts: `*.example.com` →
/// `^.+\.example\.com$`.
fn glob_to_regex(glob: &str, subject: Subject) -> String {
    let body = glob.strip_prefix('^').unwrap_or(glob);
    let body = body.strip_suffix('$').unwrap_or(body);
    let prefix_match = body.ends_with('*') && !body.ends_with("{*}") && !body.ends_with("{**}");
    let body = if prefix_match {
        body.trim_end_matches('*')
    } else {
        body
    };
    let mut regex = String::from("^");
    let rest = match body.strip_prefix('*') {
        Some(rest) => {
            regex.push_str(match subject {
                Subject::Path => ".*",
                Subject::Host => ".+",
            });
            rest.trim_start_matches('*')
        }
        None => body,
    };
    let segment = match subject {
        Subject::Path => "[^/]*",
        Subject::Host => "[^.]*",
    };
    let mut chunk = String::new();
    let mut rest = rest;
    while !rest.is_empty() {
        let (piece, after) = if let Some(after) = rest.strip_prefix("{**}") {
            (Some(".+"), after)
        } else if let Some(after) = rest.strip_prefix("{*}") {
            (Some("[^/]+"), after)
        } else if let Some(after) = rest.strip_prefix("**") {
            (Some(".*"), after)
        } else if let Some(after) = rest.strip_prefix('*') {
            (Some(segment), after)
        } else {
            let mut chars = rest.chars();
            if let Some(ch) = chars.next() {
                chunk.push(ch);
            }
            (None, chars.as_str())
        };
        if let Some(piece) = piece {
            regex.push_str(&literal(&chunk));
            chunk.clear();
            regex.push_str(piece);
        }
        rest = after;
    }
    regex.push_str(&literal(&chunk));
    if regex == "^" {
        return "^.*".into();
    }
    if !prefix_match {
        regex.push('$');
    }
    regex
}

/// The top-level alternatives of `tokens` (split at `|` outside groups and classes).
fn branches(tokens: &[Token]) -> Vec<&[Token]> {
    let mut found = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (index, token) in tokens.iter().enumerate() {
        if token.escaped || token.in_class {
            continue;
        }
        match token.ch {
            '(' => depth = depth.saturating_add(1),
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => {
                found.push(tokens.get(start..index).unwrap_or_default());
                start = index.saturating_add(1);
            }
            _ => {}
        }
    }
    found.push(tokens.get(start..).unwrap_or_default());
    found
}

/// Index of the `)` closing the group opened at `tokens[0]`.
fn group_end(tokens: &[Token]) -> Option<usize> {
    let mut depth = 0usize;
    for (index, token) in tokens.iter().enumerate() {
        if token.escaped || token.in_class {
            continue;
        }
        match token.ch {
            '(' => depth = depth.saturating_add(1),
            ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

/// Is every way through `tokens` anchored at the start (`^`, `\A`), or
/// explicitly unanchored (`.*`)?
fn anchored(tokens: &[Token]) -> bool {
    branches(tokens).iter().all(|branch| {
        let mut branch: &[Token] = branch;
        loop {
            // Inline flags, `(?i)`, change nothing about where the match starts.
            if plain(branch.first(), '(') && plain(branch.get(1), '?') {
                if let Some(end) = group_end(branch) {
                    let inside = branch.get(2..end).unwrap_or_default();
                    if !inside.is_empty()
                        && inside
                            .iter()
                            .all(|t| t.ch.is_ascii_alphabetic() || t.ch == '-')
                    {
                        branch = branch.get(end.saturating_add(1)..).unwrap_or_default();
                        continue;
                    }
                }
            }
            break;
        }
        let first = branch.first();
        if plain(first, '^') || first.is_some_and(|t| t.escaped && t.ch == 'A') {
            return true;
        }
        if plain(first, '.') && (plain(branch.get(1), '*')) {
            return true;
        }
        if plain(first, '(') {
            if let Some(end) = group_end(branch) {
                let mut inside = branch.get(1..end).unwrap_or_default();
                // `(?:...)`, `(?P<name>...)`, `(?<name>...)`
                if plain(inside.first(), '?') {
                    let skip = match inside.get(1).map(|t| t.ch) {
                        Some(':') => 2,
                        Some('P') | Some('<') => inside
                            .iter()
                            .position(|t| t.ch == '>')
                            .map_or(0, |at| at.saturating_add(1)),
                        _ => 0,
                    };
                    inside = inside.get(skip..).unwrap_or_default();
                }
                return !inside.is_empty() && anchored(inside);
            }
        }
        false
    })
}

/// What is wrong with one pattern; empty when nothing is.
fn lint_pattern(pattern: &str, subject: Subject) -> Vec<String> {
    let mut warnings = Vec::new();
    let noun = subject.noun();
    if let Some(signal) = glob_signal(pattern, subject) {
        warnings.push(format!(
            "`{pattern}` looks like an Istio {noun} glob ({signal}), but kfauth reads a regex that may match anywhere in the {noun}{}; for the glob's meaning write `{}`",
            if subject == Subject::Path && pattern.contains("/*") {
                " (`/*` is zero or more `/`)"
            } else {
                ""
            },
            glob_to_regex(pattern, subject),
        ));
    } else if !anchored(&tokens(pattern)) {
        let suggestion = if branches(&tokens(pattern)).len() > 1 {
            format!("^(?:{pattern})")
        } else {
            format!("^{pattern}")
        };
        warnings.push(format!(
            "`{pattern}` is not anchored (no leading `^`), so it matches anywhere in the {noun}{}; write `{suggestion}`",
            match subject {
                Subject::Path => " (`/x/dex/` matches `/dex/`)",
                Subject::Host => " (`a.example.com.evil.net` matches `a\\.example\\.com`)",
            }
        ));
    }
    if subject == Subject::Path {
        if let Some(problem) = literal_question_mark(pattern) {
            warnings.push(format!(
                "`{pattern}` {problem}, but kfauth matches the path without its query string, so it never matches the request it seems to (an authorization rule reads parameters with `{{query.NAME}}`)"
            ));
        }
    }
    warnings
}

/// A `?` in a path pattern that stands for the query separator.
fn literal_question_mark(pattern: &str) -> Option<&'static str> {
    let tokens = tokens(pattern);
    for (index, token) in tokens.iter().enumerate() {
        if token.ch != '?' {
            continue;
        }
        if token.escaped || token.in_class {
            return Some("matches a literal `?`");
        }
        let previous = index.checked_sub(1).and_then(|at| tokens.get(at));
        // `(?...)` is a group, `*?`, `+?`, `??`, `}?` are lazy quantifiers.
        if previous.is_some_and(|p| !p.escaped && !p.in_class && "(*+?}".contains(p.ch)) {
            continue;
        }
        let after = tokens.get(index.saturating_add(1)..).unwrap_or_default();
        let name_len = after
            .iter()
            .take_while(|t| !t.in_class && (t.ch.is_ascii_alphanumeric() || "_-.".contains(t.ch)))
            .count();
        if name_len > 0 && after.get(name_len).is_some_and(|t| t.ch == '=') {
            return Some(
                "has `?NAME=`, a query string (as a regex, this `?` only makes the character before it optional)",
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(pattern: &str) -> Vec<String> {
        lint_pattern(pattern, Subject::Path)
    }

    #[test]
    fn pasted_istio_globs_get_the_anchored_regex() {
        for (glob, regex) in [
            ("/dex/*", "^/dex/"),
            ("/dex/**", "^/dex/"),
            ("^/dex/*", "^/dex/"),
            ("*.css", "^.*\\.css$"),
            ("*/healthz", "^.*/healthz$"),
            ("/api/*/runs", "^/api/[^/]*/runs$"),
            ("/v1/{*}/runs", "^/v1/[^/]+/runs$"),
            ("/v1/{**}", "^/v1/.+$"),
            ("/static/**/x.js", "^/static/.*/x\\.js$"),
            ("*", "^.*"),
        ] {
            let warnings = path(glob);
            assert_eq!(warnings.len(), 1, "{glob}: {warnings:?}");
            assert!(
                warnings[0].contains("Istio path glob"),
                "{glob}: {warnings:?}"
            );
            assert!(
                warnings[0].ends_with(&format!("write `{regex}`")),
                "{glob}: {warnings:?}"
            );
            // The suggestion itself passes the lint and is a valid regex.
            assert_eq!(path(regex), Vec::<String>::new(), "{regex}");
            assert!(regex_lite::Regex::new(regex).is_ok(), "{regex}");
        }
        let host = lint_pattern("*.example.com", Subject::Host);
        assert_eq!(host.len(), 1, "{host:?}");
        assert!(
            host[0].ends_with("write `^.+\\.example\\.com$`"),
            "{host:?}"
        );
    }

    #[test]
    fn the_suggested_regex_means_what_the_glob_meant() {
        let matches =
            |regex: &str, path: &str| regex_lite::Regex::new(regex).unwrap().is_match(path);
        let suggested = glob_to_regex("/dex/*", Subject::Path);
        assert!(matches(&suggested, "/dex/auth"));
        assert!(!matches(&suggested, "/api/dex/"));
        assert!(!matches(&suggested, "/dexter"));
        // What the glob does as a regex: `/dex` then any number of `/`, anywhere.
        assert!(matches("/dex/*", "/pipeline/dex"));
    }

    #[test]
    fn unanchored_patterns_are_warned_about_with_the_anchored_form() {
        let warnings = path("/dex/");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("not anchored"), "{warnings:?}");
        assert!(warnings[0].ends_with("write `^/dex/`"), "{warnings:?}");
        let warnings = path("^/dex/|/oauth2/");
        assert!(
            warnings[0].ends_with("write `^(?:^/dex/|/oauth2/)`"),
            "{warnings:?}"
        );
        let host = lint_pattern("iris\\.example\\.com", Subject::Host);
        assert!(host[0].contains("not anchored"), "{host:?}");
        for fine in [
            "^/dex/",
            "\\A/dex/",
            "(?i)^/dex/",
            "^/dex/|^/oauth2/",
            "(^/a|^/b)",
            "(?:^/a|^/b)/c",
            "(?P<x>^/a)",
            ".*/healthz$",
            "^/ml_metadata",
            "^/v1/models/(?P<model>[^/:]+):predict$",
            "^/a/[*]",
            "^/a/\\*",
        ] {
            assert_eq!(path(fine), Vec::<String>::new(), "{fine}");
        }
        assert_eq!(
            lint_pattern(
                "^(?P<isvc>[^.]+)\\.(?P<namespace>[^.]+)\\.example\\.com$",
                Subject::Host
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_question_mark_meant_literally_never_matches_a_path() {
        for pattern in [
            "^/runs\\?namespace=a",
            "^/runs[?]",
            "^/pipeline/apis/v2beta1/runs?namespace=team-a",
        ] {
            let warnings = path(pattern);
            assert_eq!(warnings.len(), 1, "{pattern}: {warnings:?}");
            assert!(
                warnings[0].contains("without its query string"),
                "{warnings:?}"
            );
        }
        for fine in [
            "^/runs?$",
            "^/a(?:/b)?$",
            "^/a.*?b",
            "^/a+?",
            "^(?P<n>x)?=",
            "^/x{1,2}?",
        ] {
            assert_eq!(path(fine), Vec::<String>::new(), "{fine}");
        }
        // Hosts never hold a query either, but `?` there is not this mistake.
        assert_eq!(lint_pattern("^a\\?b$", Subject::Host), Vec::<String>::new());
    }

    #[test]
    fn every_path_and_host_field_is_linted_and_named() {
        let config = json!({
            "skipPaths": ["^/ok/", "/dex/*"],
            "grpc": {"cookiePaths": ["/ml_metadata"]},
            "authorization": {"rules": [
                {"match": {"paths": ["^/fine$"]}},
                {"match": {"paths": ["^/runs\\?x"], "hosts": ["*.example.com"]}}
            ]}
        });
        let warnings = lint_config(&config);
        let fields: Vec<&str> = warnings
            .iter()
            .map(|w| w.split(": ").next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "skipPaths[1]",
                "grpc.cookiePaths[0]",
                "authorization.rules[1].match.paths[0]",
                "authorization.rules[1].match.hosts[0]"
            ],
            "{warnings:?}"
        );
        assert!(lint_config(&json!({"skipPaths": ["^/dex/"]})).is_empty());
        assert!(lint_config(&json!("not an object")).is_empty());
    }
}
