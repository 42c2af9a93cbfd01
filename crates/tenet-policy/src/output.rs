//! What one evaluation may give back: its result, measured before it is
//! converted to JSON, and its `print` output, capped. A policy can build a
//! result far larger than anything it allocated (1,000 references to one
//! 16 MiB string share one allocation until they are serialised, then take
//! 16 GiB), so the measure counts a shared value each time it appears, and
//! stops as soon as the limit is passed.
//!
//! This module must not allocate in proportion to the result it measures.

use regorus::Value;

/// The size of a result as the input limits measure documents (one per
/// value plus the bytes of every string and key), or `None` as soon as it
/// passes `limit`. Iterative (no recursion), with an early exit: the work is
/// bounded by `limit`, not by the result.
pub(crate) fn result_size(value: &Value, limit: u64) -> Option<u64> {
    let mut size = 0u64;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        size += match v {
            Value::String(s) => 1 + s.len() as u64,
            Value::Array(items) => {
                stack.extend(items.iter());
                1
            }
            Value::Set(items) => {
                stack.extend(items.iter());
                1
            }
            Value::Object(fields) => {
                for (k, v) in fields.iter() {
                    stack.push(k);
                    stack.push(v);
                }
                1
            }
            _ => 1,
        };
        if size > limit {
            return None;
        }
    }
    Some(size)
}

/// Appended to the last kept line when `print` output was cut.
pub(crate) const TRUNCATED: &str = " …[print output truncated]";

/// Keeps `print` lines up to `max_bytes` in total; the line that crosses
/// the limit is cut (at a character boundary) and marked, and the lines
/// after it are dropped, so decision logs cannot grow without bound.
pub(crate) fn cap_prints(mut prints: Vec<String>, max_bytes: usize) -> Vec<String> {
    let mut left = max_bytes;
    for (i, line) in prints.iter_mut().enumerate() {
        if line.len() <= left {
            left -= line.len();
            continue;
        }
        let mut cut = left;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str(TRUNCATED);
        prints.truncate(i + 1);
        break;
    }
    prints
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shared_values_count_each_time_they_appear() {
        let big = Value::String("x".repeat(1000).into());
        let many = Value::from(vec![big.clone(); 1000]);
        assert_eq!(result_size(&big, 2000), Some(1001));
        // 1,000 references to one string: a megabyte, though allocated once.
        assert_eq!(result_size(&many, 2_000_000), Some(1 + 1000 * 1001));
        assert_eq!(result_size(&many, 100_000), None);
        let object = Value::from_json_str(r#"{"ab": [1, true, null], "c": {"d": "ef"}}"#).unwrap();
        // object, "ab", array, 1, true, null, "c", object, "d", "ef"
        assert_eq!(
            result_size(&object, 100),
            Some(1 + 3 + 1 + 3 + 2 + 1 + 2 + 3)
        );
    }

    #[test]
    fn prints_are_cut_at_the_limit_with_a_marker() {
        let lines = vec!["abc".to_string(), "défg".to_string(), "h".to_string()];
        assert_eq!(cap_prints(lines.clone(), 100), lines);
        assert_eq!(
            cap_prints(lines.clone(), 5),
            vec!["abc".to_string(), format!("d{TRUNCATED}")]
        );
        assert_eq!(cap_prints(lines, 0), vec![TRUNCATED.to_string()]);
    }
}
