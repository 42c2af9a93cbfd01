//! Reading the `package` declaration of a Rego module without parsing Rego:
//! the bundle layer needs only the package path (to check roots and to place
//! the module), and must not depend on the evaluator. The compiler parses the
//! whole module later and reports any other syntax error.

/// The package path of a Rego module (`package a.b["c-d"]` → `["a","b","c-d"]`).
/// Skips leading blank lines and `#` comments; the first other token must be
/// `package`.
pub fn package_path(source: &str) -> Result<Vec<String>, String> {
    let mut rest = source;
    loop {
        rest = rest.trim_start();
        if let Some(comment) = rest.strip_prefix('#') {
            rest = comment.split_once('\n').map_or("", |(_, r)| r);
            continue;
        }
        break;
    }
    let Some(after) = rest.strip_prefix("package") else {
        return Err("the first statement is not `package`".into());
    };
    if !after.starts_with([' ', '\t']) {
        return Err("`package` must be followed by a path".into());
    }
    parse_ref(after.trim_start_matches([' ', '\t']))
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn parse_ref(mut s: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut expect_ident = true;
    loop {
        if expect_ident {
            if !s.starts_with(is_ident_start) {
                return Err("package path must start with an identifier".into());
            }
            let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
            parts.push(s[..end].to_string());
            s = &s[end..];
            expect_ident = false;
        } else if let Some(r) = s.strip_prefix('.') {
            s = r;
            expect_ident = true;
        } else if let Some(r) = s.strip_prefix("[\"") {
            let end = r.find('"').ok_or("unterminated string in package path")?;
            parts.push(r[..end].to_string());
            s = r[end + 1..]
                .strip_prefix(']')
                .ok_or("expected `]` in package path")?;
        } else if s.is_empty() || s.starts_with([' ', '\t', '\r', '\n', '#', ';']) {
            break;
        } else {
            return Err(format!(
                "unexpected character {:?} in package path",
                s.chars().next().unwrap_or(' ')
            ));
        }
    }
    if parts.first().is_some_and(|p| p == "data") {
        parts.remove(0);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_package_lines() {
        let p = |s| package_path(s).unwrap_or_default();
        assert_eq!(p("package a.b.c\n"), ["a", "b", "c"]);
        assert_eq!(p("# c\n\n  # d\npackage x # tail\nallow := 1"), ["x"]);
        assert_eq!(p("package a[\"b-c\"].d"), ["a", "b-c", "d"]);
        assert_eq!(p("package data.a.b"), ["a", "b"]);
    }

    #[test]
    fn refuses_non_packages() {
        assert!(package_path("allow := true").is_err());
        assert!(package_path("packagex").is_err());
        assert!(package_path("package 1a").is_err());
        assert!(package_path("").is_err());
    }
}
