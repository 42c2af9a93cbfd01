//! Query paths: `data.a.b["c-d"]` (Rego reference form, as `opa eval` takes)
//! or `a/b/c-d` (OPA REST form) both name the same document. Parsing only.

use crate::PolicyError;

/// A path to a document under `data`, as components.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryPath(Vec<String>);

impl QueryPath {
    /// Parses `data`, `data.a.b`, `data.a["b-c"]`, `a/b/c`, `/a/b` or `` (root).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let invalid = |reason: &str| PolicyError::InvalidPath {
            path: text.to_string(),
            reason: reason.to_string(),
        };
        let t = text.trim();
        if t == "data" || t.starts_with("data.") || t.starts_with("data[") {
            return parse_ref(&t[4..]).map(Self).map_err(|r| invalid(&r));
        }
        if t.contains(['.', '[', ' ']) && !t.contains('/') {
            return Err(invalid("expected `data.…` or a slash-separated path"));
        }
        let parts: Vec<String> = t
            .split('/')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        Ok(Self(parts))
    }

    /// A path from its components below `data`.
    pub fn from_components(components: Vec<String>) -> Self {
        Self(components)
    }

    /// The components below `data`.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The Rego reference: `data.a.b["c-d"]`.
    pub fn to_rego(&self) -> String {
        let mut s = String::from("data");
        for c in &self.0 {
            let ident = c.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_')
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
            if ident {
                s.push('.');
                s.push_str(c);
            } else {
                s.push_str("[\"");
                for ch in c.chars() {
                    match ch {
                        '"' => s.push_str("\\\""),
                        '\\' => s.push_str("\\\\"),
                        c if c.is_control() => s.push_str(&format!("\\u{:04x}", u32::from(c))),
                        c => s.push(c),
                    }
                }
                s.push_str("\"]");
            }
        }
        s
    }
}

impl std::fmt::Display for QueryPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rego())
    }
}

fn parse_ref(mut s: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('.') {
            let end = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            if end == 0 {
                return Err("empty component after `.`".into());
            }
            parts.push(r[..end].to_string());
            s = &r[end..];
        } else if let Some(r) = s.strip_prefix("[\"") {
            let end = r.find("\"]").ok_or("unterminated `[\"…\"]` component")?;
            parts.push(r[..end].to_string());
            s = &r[end + 2..];
        } else {
            return Err(format!("unexpected {:?}", s.chars().next().unwrap_or(' ')));
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_name_the_same_document() {
        let a = QueryPath::parse("data.payments.authz.allow").ok();
        let b = QueryPath::parse("payments/authz/allow").ok();
        let c = QueryPath::parse("/payments/authz/allow/").ok();
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(QueryPath::parse("data").ok().map(|p| p.0.len()), Some(0));
        assert_eq!(QueryPath::parse("").ok().map(|p| p.0.len()), Some(0));
    }

    #[test]
    fn quoted_components_round_trip() {
        let p = QueryPath::parse("data.a[\"b-c\"].d").ok();
        assert_eq!(
            p.as_ref().map(|p| p.to_rego()).as_deref(),
            Some("data.a[\"b-c\"].d")
        );
        assert_eq!(
            QueryPath::parse("a/b-c")
                .ok()
                .map(|p| p.to_rego())
                .as_deref(),
            Some("data.a[\"b-c\"]")
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        let p = QueryPath::parse("a/b\nc").ok();
        assert_eq!(
            p.map(|p| p.to_rego()).as_deref(),
            Some("data.a[\"b\\u000ac\"]")
        );
    }

    #[test]
    fn refuses_garbage() {
        assert!(QueryPath::parse("data..x").is_err());
        assert!(QueryPath::parse("data.a[1]").is_err());
        assert!(QueryPath::parse("foo.bar").is_err());
    }
}
