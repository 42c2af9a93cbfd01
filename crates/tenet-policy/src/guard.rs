//! Bounded replacements for regorus builtins that size an allocation or a
//! loop from their arguments. `numbers.range(1, 1e13)` makes regorus call
//! `Vec::with_capacity(10^13)`, which aborts the whole process; a `sprintf`
//! width of 10^12 or a `replace` with an empty pattern does the same through
//! a string. Each guard checks the size the call would produce against the
//! tenant's [`EvalLimits`] and, when it fits, delegates to regorus's own
//! builtin so the answer is exactly regorus's.
//!
//! Guards are interpreter extensions (extensions take priority over builtins
//! in regorus's interpreter). The RVM cannot run extensions, so an entrypoint
//! of a policy that calls any [`GUARDED`] builtin is evaluated by the
//! interpreter (see `policy`). This module must not change any answer that
//! stays within the limits.

use crate::EvalLimits;
use anyhow::{anyhow, bail};
use regorus::unstable::{Expr, Ref, Span};
use regorus::{Engine, Value};

/// Builtins replaced by a bounded version: (name, number of arguments).
pub(crate) const GUARDED: &[(&str, u8)] = &[
    ("numbers.range", 2),
    ("numbers.range_step", 3),
    ("net.cidr_expand", 1),
    ("sprintf", 2),
    ("replace", 3),
    ("strings.replace_n", 2),
    ("regex.replace", 3),
    ("bits.lsh", 2),
];

/// Registers every guard on `engine`.
pub(crate) fn register(engine: &mut Engine, limits: &EvalLimits) -> anyhow::Result<()> {
    for &(name, nargs) in GUARDED {
        let limits = limits.clone();
        let extension = move |args: Vec<Value>| -> anyhow::Result<Value> {
            check(name, &args, &limits)?;
            delegate(name, &args)
        };
        engine.add_extension(name.to_string(), nargs, Box::new(extension))?;
    }
    Ok(())
}

/// Marker error: the call would exceed a limit. `policy` maps it to
/// `PolicyError::BuiltinLimit`.
pub(crate) const LIMIT_MARKER: &str = "tenet limit: ";

fn limit(name: &str, reason: String) -> anyhow::Error {
    anyhow!("{LIMIT_MARKER}{name}: {reason}")
}

fn int(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) if n.is_integer() => n.as_i64().map(i128::from),
        _ => None,
    }
}

fn string(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s.as_ref()),
        _ => None,
    }
}

fn check(name: &str, args: &[Value], limits: &EvalLimits) -> anyhow::Result<()> {
    let max_elems = u128::from(limits.max_builtin_elements);
    let max_bytes = u128::from(limits.max_builtin_string_bytes);
    let too_many = |n: u128| {
        limit(
            name,
            format!("would create {n} elements, over the limit of {max_elems}"),
        )
    };
    let too_long = |n: u128| {
        limit(
            name,
            format!("would build a string of {n} bytes, over the limit of {max_bytes}"),
        )
    };
    match name {
        "numbers.range" | "numbers.range_step" => {
            let (Some(a), Some(b)) = (args.first().and_then(int), args.get(1).and_then(int)) else {
                // Non-integer or out-of-i64 bounds: a huge float like 1e13 is
                // an integer too, so refuse what cannot be measured.
                if args.iter().take(2).any(is_huge_number) {
                    return Err(too_many(u128::MAX));
                }
                return Ok(());
            };
            let step = match args.get(2) {
                Some(s) => match int(s) {
                    Some(s) if s > 0 => s,
                    _ => return Ok(()),
                },
                None => 1,
            };
            let n = (a - b).unsigned_abs() / step.unsigned_abs() + 1;
            if n > max_elems {
                return Err(too_many(n));
            }
        }
        "net.cidr_expand" => {
            if let Some(cidr) = args.first().and_then(string) {
                if let Some((addr, prefix)) = cidr.split_once('/') {
                    let bits: u32 = if addr.contains(':') { 128 } else { 32 };
                    if let Ok(prefix) = prefix.parse::<u32>() {
                        let host_bits = bits.saturating_sub(prefix);
                        let n = if host_bits >= 127 {
                            u128::MAX
                        } else {
                            1u128 << host_bits
                        };
                        if n > max_elems {
                            return Err(too_many(n));
                        }
                    }
                }
            }
        }
        "sprintf" => {
            if let Some(format) = args.first().and_then(string) {
                // Every width and precision pads its own verb: add them up.
                let total = total_format_numbers(format);
                if total > max_bytes {
                    return Err(too_long(total));
                }
            }
        }
        "replace" => {
            if let (Some(s), Some(old), Some(new)) = (
                args.first().and_then(string),
                args.get(1).and_then(string),
                args.get(2).and_then(string),
            ) {
                let n = replaced_len(s, old, new);
                if n > max_bytes {
                    return Err(too_long(n));
                }
            }
        }
        "strings.replace_n" => {
            // regorus applies the patterns one after the other, in key
            // order, each to the previous result: measure each step on the
            // string it will really see.
            if let (Some(Value::Object(patterns)), Some(s)) =
                (args.first(), args.get(1).and_then(string))
            {
                let mut current = s.to_string();
                for (k, v) in patterns.iter() {
                    let (Some(old), Some(new)) = (string(k), string(v)) else {
                        continue;
                    };
                    let n = replaced_len(&current, old, new);
                    if n > max_bytes {
                        return Err(too_long(n));
                    }
                    current = current.replace(old, new);
                }
            }
        }
        "regex.replace" => {
            if let (Some(s), Some(pattern), Some(new)) = (
                args.first().and_then(string),
                args.get(1).and_then(string),
                args.get(2).and_then(string),
            ) {
                let refs = new.matches('$').count() as u128;
                // Exact matches; each adds the replacement, and each `$n`
                // in it at most the matched text again.
                if let Ok(re) = regex::Regex::new(pattern) {
                    let mut n = s.len() as u128;
                    for m in re.find_iter(s) {
                        n += new.len() as u128 + refs * m.as_str().len() as u128;
                        if n > max_bytes {
                            return Err(too_long(n));
                        }
                    }
                }
            }
        }
        "bits.lsh" => {
            // A shift of n bits builds an n-bit integer.
            if let Some(shift) = args.get(1).and_then(int) {
                if shift.unsigned_abs() > max_bytes.saturating_mul(8) {
                    return Err(limit(
                        name,
                        format!(
                            "a shift of {shift} bits is over the limit of {} bits",
                            max_bytes.saturating_mul(8)
                        ),
                    ));
                }
            } else if args.get(1).is_some_and(is_huge_number) {
                return Err(too_long(u128::MAX));
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_huge_number(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_i64().is_none() && n.as_f64().is_some_and(|f| f.abs() >= 1e15),
        _ => false,
    }
}

/// Length of `s` after replacing every occurrence of `old` with `new` (an
/// empty `old` matches at every character boundary).
fn replaced_len(s: &str, old: &str, new: &str) -> u128 {
    let count = if old.is_empty() {
        s.chars().count() as u128 + 1
    } else {
        s.matches(old).count() as u128
    };
    (s.len() as u128 - count * old.len() as u128) + count * new.len() as u128
}

/// The sum of every width and precision number in a format string
/// (`%0999d`, `%.5f`): an upper bound on the padding sprintf adds.
fn total_format_numbers(format: &str) -> u128 {
    let mut total = 0u128;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        let mut current: u128 = 0;
        while let Some(&d) = chars.peek() {
            if let Some(v) = d.to_digit(10) {
                current = current.saturating_mul(10).saturating_add(u128::from(v));
            } else if matches!(d, '.' | '-' | '+' | ' ' | '#') {
                total = total.saturating_add(current);
                current = 0;
            } else {
                break;
            }
            chars.next();
        }
        total = total.saturating_add(current);
        chars.next();
    }
    total
}

/// Calls regorus's own builtin `name` with `args`. Its error spans point at
/// a placeholder source; the extension wrapper adds the real call site.
fn delegate(name: &str, args: &[Value]) -> anyhow::Result<Value> {
    let Some((builtin, _)) = regorus::unstable::BUILTINS.get(name) else {
        bail!("builtin {name} is not available");
    };
    let source = regorus::Source::from_contents(format!("<{name}>"), String::new())?;
    let span = Span {
        source,
        line: 1,
        col: 1,
        start: 0,
        end: 0,
    };
    let params: Vec<Ref<Expr>> = args
        .iter()
        .map(|_| {
            Ref::new(Expr::Null {
                span: span.clone(),
                value: Value::Null,
                eidx: 0,
            })
        })
        .collect();
    // OPA's default: builtin errors make the expression undefined.
    match builtin(&span, &params, args, false) {
        Ok(v) => Ok(v),
        Err(_) => Ok(Value::Undefined),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_widths_are_added_up() {
        assert_eq!(total_format_numbers("%d %s"), 0);
        assert_eq!(total_format_numbers("%05d"), 5);
        assert_eq!(total_format_numbers("%.3f|%10s"), 13);
        assert_eq!(total_format_numbers("%5d%5d%5d"), 15);
        assert_eq!(
            total_format_numbers("%99999999999999999999d"),
            99999999999999999999
        );
    }

    #[test]
    fn replaced_length_is_exact() {
        assert_eq!(replaced_len("aaa", "a", "bb"), 6);
        assert_eq!("aaa".replace("a", "bb").len(), 6);
        assert_eq!(replaced_len("abc", "", "-"), 7);
        assert_eq!("abc".replace("", "-").len(), 7);
    }
}
