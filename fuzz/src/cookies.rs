//! The harness the cookie targets share (`cookie_diet`, `session`): their
//! input (a flags byte, a size byte, then text: a line of cookie names and a
//! Cookie header per further line), what token removal already did to the
//! Cookie header (flags bits 6-7), cookie-pairs as RFC 6265 section 4.2.1
//! reads them, and the check of a rewrite that drops some pairs.

use kfauth::outcome::HeaderEdits;

/// What token removal (`fromCookies`) did before the target runs.
pub enum Prior {
    Untouched,
    CookieRemoved,
    /// The Cookie header it left (the input's last line).
    CookieSet(String),
}

/// A cookie target's input.
pub struct Input {
    pub flags: u8,
    pub size: u8,
    /// The first line, `,`-separated, empty names dropped.
    pub names: Vec<String>,
    /// The client's Cookie headers.
    pub cookie_headers: Vec<String>,
    pub prior: Prior,
}

impl Input {
    /// `None` when `data` is shorter than the two bytes.
    pub fn parse(data: &[u8]) -> Option<Input> {
        let [flags, size, rest @ ..] = data else {
            return None;
        };
        let text = String::from_utf8_lossy(rest);
        let mut lines = text.split('\n');
        let names = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect();
        let mut cookie_headers: Vec<String> = lines.map(str::to_string).collect();
        let prior = match flags >> 6 {
            0 | 1 => Prior::Untouched,
            2 => Prior::CookieRemoved,
            _ => Prior::CookieSet(cookie_headers.pop().unwrap_or_default()),
        };
        Some(Input {
            flags: *flags,
            size: *size,
            names,
            cookie_headers,
            prior,
        })
    }

    /// The names as `&str`.
    pub fn name_list(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    /// The edits token removal made.
    pub fn prior_edits(&self) -> HeaderEdits {
        match &self.prior {
            Prior::Untouched => HeaderEdits::default(),
            Prior::CookieRemoved => HeaderEdits {
                remove: vec!["cookie".into()],
                ..HeaderEdits::default()
            },
            Prior::CookieSet(cookie) => HeaderEdits {
                remove: vec!["cookie".into()],
                set: vec![
                    ("x-other".into(), "1".into()),
                    ("cookie".into(), cookie.clone()),
                ],
                ..HeaderEdits::default()
            },
        }
    }

    /// What would go upstream before the target: the Cookie header token
    /// removal left, or the client's.
    pub fn current(&self) -> Vec<String> {
        match &self.prior {
            Prior::Untouched => self.cookie_headers.clone(),
            Prior::CookieRemoved => Vec::new(),
            Prior::CookieSet(cookie) => vec![cookie.clone()],
        }
    }
}

/// RFC 6265's OWS: SP and HTAB.
pub fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// The cookie-pairs of a Cookie header: split by `;`, OWS around them.
pub fn pairs_of(header: &str) -> impl Iterator<Item = &str> {
    header
        .split(';')
        .map(trim_ows)
        .filter(|pair| !pair.is_empty())
}

pub fn name_of(pair: &str) -> &str {
    trim_ows(pair.split_once('=').map_or(pair, |(name, _)| name))
}

/// Checks a rewrite that drops the pairs whose name `drops` and keeps the
/// others: the client's Cookie header is removed, every other edit is as
/// before, the kept pairs are sent as one header byte for byte and in order,
/// and no empty Cookie header is set.
pub fn assert_rewritten(
    prior: &HeaderEdits,
    edits: &HeaderEdits,
    kept: &[&str],
    drops: impl Fn(&str) -> bool,
) {
    assert!(edits.remove.iter().any(|name| name == "cookie"));
    let others = |edits: &HeaderEdits| -> Vec<(String, String)> {
        edits
            .set
            .iter()
            .filter(|(name, _)| name != "cookie")
            .cloned()
            .collect()
    };
    assert_eq!(others(edits), others(prior));
    let cookies: Vec<&str> = edits
        .set
        .iter()
        .filter(|(name, _)| name == "cookie")
        .map(|(_, value)| value.as_str())
        .collect();
    if kept.is_empty() {
        assert!(
            cookies.is_empty(),
            "an empty Cookie header was set: {cookies:?}"
        );
        return;
    }
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let sent: Vec<&str> = cookies[0].split("; ").collect();
    assert_eq!(sent, kept, "kept cookies changed");
    for pair in pairs_of(cookies[0]) {
        assert!(!drops(name_of(pair)), "a dropped cookie is left: {pair}");
    }
}
