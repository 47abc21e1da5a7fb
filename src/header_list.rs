//! A request's headers as one text and where each name and value lie in it.
//! Read from the host's serialized map, the text is the very buffer the host
//! wrote, checked as UTF-8 once: no `String` per name and value, whose
//! allocation and freeing were the largest share of a cached request's time
//! in V8 (BENCHMARKS.md, *Where the microseconds go, in Envoy*, item 10).

use std::fmt;
use std::ops::Range;

use crate::header_pairs::{self, PairSpan, PairsError};

/// Header (name, value) pairs in order; names lower case.
#[derive(Clone, Default)]
pub struct HeaderList {
    text: String,
    spans: Vec<PairSpan>,
}

impl HeaderList {
    /// The pairs of the host's serialized map (`header_pairs`), names lower
    /// case. Text that is not UTF-8 is read with U+FFFD in place of its bad
    /// bytes, as [`header_pairs::lossy`] reads it.
    pub fn from_map(mut bytes: Vec<u8>) -> Result<HeaderList, PairsError> {
        let spans = header_pairs::spans(&bytes)?;
        // The count and sizes before the first name are binary; as NULs they
        // are valid UTF-8 and the whole buffer is checked in one pass.
        let data_start = spans.first().map_or(bytes.len(), |(name, _)| name.start);
        if let Some(binary) = bytes.get_mut(..data_start) {
            binary.fill(0);
        }
        let mut list = match String::from_utf8(bytes) {
            Ok(text) => HeaderList { text, spans },
            Err(not_utf8) => return Ok(HeaderList::lossy(&not_utf8.into_bytes(), &spans)),
        };
        // Envoy stores names in lower case already: this only looks.
        for (name, _) in &list.spans {
            if let Some(name) = list.text.get_mut(name.clone()) {
                name.make_ascii_lowercase();
            }
        }
        Ok(list)
    }

    /// The pairs at `spans` of `bytes`, read as [`header_pairs::lossy`] reads
    /// them. Out of line: nearly every request's headers are UTF-8, and code
    /// a request does not run costs it nothing.
    #[cold]
    #[inline(never)]
    fn lossy(bytes: &[u8], spans: &[PairSpan]) -> HeaderList {
        let piece =
            |span: &Range<usize>| header_pairs::lossy(bytes.get(span.clone()).unwrap_or_default());
        let mut list = HeaderList::default();
        for (name, value) in spans {
            list.push(&piece(name), &piece(value));
        }
        list
    }

    /// Adds a pair at the end, its name lower-cased.
    pub fn push(&mut self, name: &str, value: &str) {
        let name = self.append(name);
        if let Some(lowered) = self.text.get_mut(name.clone()) {
            lowered.make_ascii_lowercase();
        }
        let value = self.append(value);
        self.spans.push((name, value));
    }

    fn append(&mut self, piece: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(piece);
        start..self.text.len()
    }

    /// The pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.spans
            .iter()
            .map(|(name, value)| (piece(&self.text, name), piece(&self.text, value)))
    }

    /// The names, in order (a name sent twice, twice).
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.spans.iter().map(|(name, _)| piece(&self.text, name))
    }

    /// Every value of `name` (lower case), in order. Names are compared as
    /// bytes: no character-boundary checks for the names passed over.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.spans
            .iter()
            .filter(move |(key, _)| self.is_named(key, name))
            .map(|(_, value)| piece(&self.text, value))
    }

    /// The first value of `name` (lower case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.spans
            .iter()
            .find(|(key, _)| self.is_named(key, name))
            .map(|(_, value)| piece(&self.text, value))
    }

    fn is_named(&self, key: &Range<usize>, name: &str) -> bool {
        self.text.as_bytes().get(key.clone()) == Some(name.as_bytes())
    }

    /// Keeps only the pairs `keep` answers true for, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        // By hand rather than `Vec::retain`: spans need no drop guard, and
        // this runs on every request (the pseudo-headers are lifted out).
        let mut kept = 0;
        for index in 0..self.spans.len() {
            let Some((name, value)) = self.spans.get(index) else {
                break;
            };
            if keep(piece(&self.text, name), piece(&self.text, value)) {
                self.spans.swap(kept, index);
                kept = kept.saturating_add(1);
            }
        }
        self.spans.truncate(kept);
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// A span of the list's own text: always inside it, on character boundaries.
#[inline]
fn piece<'a>(text: &'a str, span: &Range<usize>) -> &'a str {
    text.get(span.clone()).unwrap_or_default()
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for HeaderList {
    fn from_iter<T: IntoIterator<Item = (N, V)>>(pairs: T) -> Self {
        let mut list = HeaderList::default();
        for (name, value) in pairs {
            list.push(name.as_ref(), value.as_ref());
        }
        list
    }
}

/// Lists are equal when their pairs are, whatever else their text holds.
impl PartialEq for HeaderList {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for HeaderList {}

impl fmt::Debug for HeaderList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn map(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        header_pairs::encode(pairs).unwrap()
    }

    #[test]
    fn the_hosts_map_is_read_in_place_names_lowered() {
        // Sizes of 200 and 0x80 bytes: the binary part is not UTF-8 itself.
        let long = "v".repeat(200);
        let bytes = map(&[
            (b"Authorization", b"Bearer a.b.c"),
            (b"x-long", long.as_bytes()),
            (b"x-128", &[b'w'; 0x80]),
            (b"cookie", b""),
        ]);
        let list = HeaderList::from_map(bytes).unwrap();
        let w = "w".repeat(0x80);
        assert_eq!(
            list.iter().collect::<Vec<_>>(),
            [
                ("authorization", "Bearer a.b.c"),
                ("x-long", long.as_str()),
                ("x-128", w.as_str()),
                ("cookie", ""),
            ]
        );
        assert_eq!(list.len(), 4);
    }

    #[test]
    fn text_that_is_not_utf8_is_read_lossily_not_refused() {
        let bytes = map(&[(b"X-Latin1", b"caf\xe9"), (b"a", b"\xff")]);
        let list = HeaderList::from_map(bytes).unwrap();
        assert_eq!(
            list.iter().collect::<Vec<_>>(),
            [("x-latin1", "caf\u{fffd}"), ("a", "\u{fffd}")]
        );
        // A name or value split inside a character is read the same way.
        let split = map(&[(b"x", "é".as_bytes().get(..1).unwrap())]);
        assert_eq!(
            HeaderList::from_map(split)
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            [("x", "\u{fffd}")]
        );
    }

    #[test]
    fn the_empty_map_and_malformed_maps() {
        assert!(HeaderList::from_map(Vec::new()).unwrap().is_empty());
        assert!(HeaderList::from_map(vec![0, 0, 0, 0]).unwrap().is_empty());
        assert_eq!(
            HeaderList::from_map(vec![1, 0, 0, 0]),
            Err(PairsError::Truncated)
        );
    }

    #[test]
    fn pairs_pushed_retained_and_compared() {
        let mut list: HeaderList = [("A", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        assert_eq!(
            format!("{list:?}"),
            r#"[("a", "1"), ("b", "2"), ("a", "3")]"#
        );
        list.retain(|name, _| name != "b");
        let read = HeaderList::from_map(map(&[(b"a", b"1"), (b"a", b"3")])).unwrap();
        assert_eq!(list, read);
        assert_ne!(list, HeaderList::default());
    }
}
