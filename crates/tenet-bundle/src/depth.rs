//! Nesting depth of a JSON text, measured before parsing (also used by
//! tenet-policy for request inputs). serde_json's own
//! recursion guard is fixed at 128 and reports a parse error; a tenant limit
//! must be configurable and reported as a limit, and a scan is O(n) with no
//! allocation, so it is written here by hand (no crate offers it).

/// Returns true when the JSON text nests arrays/objects deeper than `limit`.
/// Brackets inside strings (including escaped quotes) are not counted.
/// Malformed text is not judged here; the parser reports it afterwards.
pub fn json_exceeds(text: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Nesting depth of an already parsed value, iteratively (no recursion, so a
/// deep YAML document cannot overflow the stack here).
pub fn value_exceeds(value: &serde_json::Value, limit: usize) -> bool {
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match v {
            serde_json::Value::Array(a) => Box::new(a.iter()),
            serde_json::Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        if d + 1 > limit {
            return true;
        }
        stack.extend(children.map(|c| (c, d + 1)));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_structural_brackets() {
        assert!(!json_exceeds(br#"{"a": [1, {"b": "[[[[[["}]}"#, 3));
        assert!(json_exceeds(br#"{"a": [1, {"b": [2]}]}"#, 3));
        assert!(!json_exceeds(br#"{"a": "\"[[[[[\\"}"#, 1));
        assert!(json_exceeds(&vec![b'['; 1_000_000], 128));
    }

    #[test]
    fn value_depth_matches_text_depth() {
        let v: serde_json::Value = serde_json::json!({"a": [1, {"b": [2]}]});
        assert!(!value_exceeds(&v, 4));
        assert!(value_exceeds(&v, 3));
    }
}
