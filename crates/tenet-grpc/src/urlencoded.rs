//! Percent-decoding and query parsing with the rules opa-envoy-plugin gets
//! from Go's `net/url` (`PathUnescape`, `ParseQuery`), so `parsed_path`,
//! `parsed_query` and form bodies are the plugin's: `%XX` must be two hex
//! digits, `+` is a space only in queries, `&` separates pairs, a `;` in a
//! pair is an error, empty pairs are skipped, repeated keys keep every value
//! in order. Decoded bytes that are not UTF-8 become U+FFFD. Pure functions,
//! bounded by their input and a pair count; no I/O, no policy knowledge.

use serde_json::{Map, Value};

/// Why a path or query could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// `%` not followed by two hex digits (Go: `invalid URL escape`).
    #[error("invalid URL escape {0:?}")]
    Escape(String),
    /// A pair holds a `;` (Go refuses it as a separator).
    #[error("invalid semicolon separator in query")]
    Semicolon,
    /// More pairs than allowed.
    #[error("more than {0} query parameters")]
    TooManyParams(usize),
}

/// Decodes `%XX` escapes; with `plus_is_space`, `+` becomes a space.
pub(crate) fn unescape(text: &str, plus_is_space: bool) -> Result<String, UrlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    let h = std::str::from_utf8(h).ok()?;
                    u8::from_str_radix(h, 16)
                        .ok()
                        .filter(|_| h.bytes().all(|c| c.is_ascii_hexdigit()))
                });
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        let end = (i + 3).min(bytes.len());
                        let bad = String::from_utf8_lossy(bytes.get(i..end).unwrap_or_default());
                        return Err(UrlError::Escape(bad.into_owned()));
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// `parsed_path`: the part before `?`, percent-decoded, leading slashes
/// trimmed, split on `/` (so `""` gives `[""]`, `//a/b` gives `["a","b"]`,
/// and an escaped `%2F` splits too, as in the plugin).
pub(crate) fn parsed_path(path: &str) -> Result<Vec<String>, UrlError> {
    let raw = path.split_once('?').map_or(path, |(p, _)| p);
    let decoded = unescape(raw, false)?;
    Ok(decoded
        .trim_start_matches('/')
        .split('/')
        .map(str::to_string)
        .collect())
}

/// The query of `path` (after the first `?`; empty without one).
pub(crate) fn raw_query(path: &str) -> &str {
    path.split_once('?').map_or("", |(_, q)| q)
}

/// Go's `url.ParseQuery`: an object from each key to the list of its
/// values. Like Go, the first error is returned (Go also returns the pairs
/// it could parse, which the plugin discards).
pub(crate) fn parse_query(query: &str, max_params: usize) -> Result<Map<String, Value>, UrlError> {
    let mut out = Map::new();
    let mut count = 0usize;
    let mut first_error = None;
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        if pair.contains(';') {
            first_error.get_or_insert(UrlError::Semicolon);
            continue;
        }
        count += 1;
        if count > max_params {
            return Err(UrlError::TooManyParams(max_params));
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = match (unescape(key, true), unescape(value, true)) {
            (Ok(k), Ok(v)) => (k, v),
            (Err(e), _) | (_, Err(e)) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        match out.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
            Value::Array(values) => values.push(Value::String(value)),
            // Every entry is created as an array above.
            other => *other = Value::Array(vec![Value::String(value)]),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The cases of opa-envoy-plugin's `TestParsedPathAndQuery`
    /// (envoyauth/request_test.go) and the `//` fix of its security
    /// advisory (commit "Stop using url.Parse for request-target paths").
    #[test]
    fn paths_and_queries_as_the_plugin_parses_them() {
        for (path, parsed, query) in [
            ("/my/test/path", json!(["my", "test", "path"]), json!({})),
            (
                "/my/test/path?a=1",
                json!(["my", "test", "path"]),
                json!({"a": ["1"]}),
            ),
            (
                "/my/test/path?a=1&a=2",
                json!(["my", "test", "path"]),
                json!({"a": ["1", "2"]}),
            ),
            (
                "/my/test/path?a=1&b=2",
                json!(["my", "test", "path"]),
                json!({"a": ["1"], "b": ["2"]}),
            ),
            (
                "/my/test/path?a=1&a=new%0aline",
                json!(["my", "test", "path"]),
                json!({"a": ["1", "new\nline"]}),
            ),
            (
                "%2Fmy%2Ftest%2Fpath?a=1&a=new%0aline",
                json!(["my", "test", "path"]),
                json!({"a": ["1", "new\nline"]}),
            ),
            ("//admin/people", json!(["admin", "people"]), json!({})),
            ("", json!([""]), json!({})),
            ("/", json!([""]), json!({})),
            ("/a/?x", json!(["a", ""]), json!({"x": [""]})),
            (
                "/a?b+c=d+e&&=z",
                json!(["a"]),
                json!({"b c": ["d e"], "": ["z"]}),
            ),
            ("/a+b%20c", json!(["a+b c"]), json!({})),
            ("/%ff", json!(["\u{fffd}"]), json!({})),
        ] {
            assert_eq!(json!(parsed_path(path).unwrap()), parsed, "{path}");
            assert_eq!(
                Value::Object(parse_query(raw_query(path), 100).unwrap()),
                query,
                "{path}"
            );
        }
    }

    #[test]
    fn bad_escapes_semicolons_and_floods_are_errors() {
        assert_eq!(
            parsed_path("/a%zz").unwrap_err(),
            UrlError::Escape("%zz".into())
        );
        assert_eq!(
            parsed_path("/a%").unwrap_err(),
            UrlError::Escape("%".into())
        );
        assert_eq!(
            parsed_path("/a%4").unwrap_err(),
            UrlError::Escape("%4".into())
        );
        assert!(matches!(parse_query("a=%", 10), Err(UrlError::Escape(_))));
        assert_eq!(parse_query("a=1;b=2", 10), Err(UrlError::Semicolon));
        assert_eq!(parse_query("a&b&c", 2), Err(UrlError::TooManyParams(2)));
        // A sign is not a hex digit, though from_str_radix accepts one.
        assert!(parse_query("a=%+1", 10).is_err());
    }
}
