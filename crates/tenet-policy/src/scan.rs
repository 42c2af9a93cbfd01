//! What a policy calls, read from its source text: which functions and
//! builtins appear in call position (`name.path(`). Used to decide
//! determinism (time, random, uuid, http builtins make a policy
//! non-deterministic) and which entrypoints must avoid the RVM (`print`,
//! builtins tenet replaces with bounded versions). Errs on the safe side: a
//! name inside a comment or string is skipped, anything else that looks like
//! a call counts.

use std::collections::BTreeSet;

/// Builtins whose result depends on more than their arguments; a policy
/// calling any of them is never decision-cached.
pub(crate) const NONDETERMINISTIC: &[&str] = &[
    "time.now_ns",
    "rand.intn",
    "uuid.rfc4122",
    "http.send",
    "net.lookup_ip_addr",
    "opa.runtime",
    "io.jwt.decode_verify",
    "crypto.x509.parse_and_verify_certificates",
];

/// Every dotted name that appears directly before `(` outside strings and
/// comments.
pub(crate) fn calls(source: &str) -> BTreeSet<String> {
    let bytes = source.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
                i += 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
                {
                    i += 1;
                }
                let name = source[start..i].trim_end_matches('.');
                let mut j = i;
                while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
                    j += 1;
                }
                if j < bytes.len() && bytes[j] == b'(' {
                    out.insert(name.to_string());
                }
                continue;
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_calls_and_skips_strings_and_comments() {
        let src = r#"package x
# time.now_ns() in a comment
allow if {
    startswith(input.path, "/a")
    msg := sprintf("numbers.range(%d)", [1])
    t := time.now_ns ()
    y := `print(raw)`
    count(data.users) > 0
}"#;
        let c = calls(src);
        assert!(c.contains("startswith"));
        assert!(c.contains("sprintf"));
        assert!(c.contains("time.now_ns"));
        assert!(c.contains("count"));
        assert!(!c.contains("numbers.range"));
        assert!(!c.contains("print"));
        assert!(!c.contains("data.users"));
    }
}
