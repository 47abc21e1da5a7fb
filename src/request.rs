//! The request as the core sees it: a plain snapshot the host reads once.

/// Method, path and headers of one request. Header names are lower case (as Envoy
/// stores them); a header sent several times appears several times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestView {
    pub method: String,
    /// `:path`, with the query string.
    pub path: String,
    pub authority: String,
    pub headers: Vec<(String, String)>,
}

impl RequestView {
    /// Builds a view from raw pairs, lifting the pseudo-headers out.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> RequestView {
        let mut view = RequestView::default();
        for (name, value) in pairs {
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                ":method" => view.method = value,
                ":path" => view.path = value,
                ":authority" => view.authority = value,
                _ => view.headers.push((name, value)),
            }
        }
        view
    }

    /// Every value of a header, in order. `name` must be lower case.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of a header. `name` must be lower case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The path without its query string, which is what `skipPaths` match.
    pub fn path_only(&self) -> &str {
        self.path.split(['?', '#']).next().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn lifts_pseudo_headers_and_keeps_repeats() {
        let view = RequestView::from_pairs(vec![
            (":method".into(), "GET".into()),
            (":path".into(), "/a/b?x=1".into()),
            (":authority".into(), "kubeflow.example.com".into()),
            ("Cookie".into(), "a=1".into()),
            ("cookie".into(), "b=2".into()),
        ]);
        assert_eq!(view.method, "GET");
        assert_eq!(view.path_only(), "/a/b");
        assert_eq!(
            view.header_values("cookie").collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        assert_eq!(view.header("authorization"), None);
    }
}
