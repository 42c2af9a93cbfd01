// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

#![allow(clippy::pattern_type_mismatch)]
use crate::ast::{Expr, Ref};
use crate::lexer::Span;
use crate::number::Number;
use crate::value::{Array, Object, Set};
use crate::Rc;
use crate::Value;
use crate::*;

use anyhow::{bail, Result};

/// Checks the memory limit, and counts one unit of work against the execution
/// deadline (see [`check_deadline`]).
#[inline]
pub fn enforce_limit() -> Result<()> {
    check_deadline(1)?;
    crate::utils::limits::check_memory_limit_if_needed().map_err(anyhow::Error::new)
}

/// Counts `work` units of work done by a builtin loop; fails with
/// [`LimitError::TimeLimitExceeded`](crate::LimitError) once the evaluator's
/// deadline has passed (the clock is read every 1024 units).
#[inline]
pub fn check_deadline(work: usize) -> Result<()> {
    let work = u32::try_from(work).unwrap_or(u32::MAX);
    crate::utils::limits::tick_builtin_deadline(work).map_err(anyhow::Error::new)
}

/// Fails with [`LimitError::BuiltinLimitExceeded`](crate::LimitError) unless a
/// collection of `count` elements fits in the current `max_elements` bound.
pub fn check_elements(builtin: &'static str, count: u128) -> Result<()> {
    crate::utils::limits::check_builtin_elements(builtin, count).map_err(anyhow::Error::new)
}

/// Fails with [`LimitError::BuiltinLimitExceeded`](crate::LimitError) unless a
/// string of `bytes` bytes fits in the current `max_string_bytes` bound.
pub fn check_string_bytes(builtin: &'static str, bytes: u128) -> Result<()> {
    crate::utils::limits::check_builtin_string_bytes(builtin, bytes).map_err(anyhow::Error::new)
}

/// Widens a length for the size computations of [`check_elements`] and
/// [`check_string_bytes`].
pub fn size(n: usize) -> u128 {
    u128::try_from(n).unwrap_or(u128::MAX)
}

/// Fails unless a JSON-like rendering of `value` fits in the current
/// `max_string_bytes` bound. `line_overhead` is added for each element, plus
/// `indent` for each level of nesting of the element (pretty printing).
///
/// Counts a lower bound of the rendered size and stops as soon as it exceeds
/// the bound, so a value whose shared parts would be rendered many times
/// costs at most the bound to measure.
pub fn check_rendered_size(
    builtin: &'static str,
    value: &Value,
    indent: usize,
    line_overhead: usize,
) -> Result<()> {
    let max = size(crate::utils::limits::current_builtin_limits().max_string_bytes);
    // The first line of a pretty rendering.
    let mut total = size(line_overhead);
    if !rendered_size_within(value, 0, size(indent), size(line_overhead), max, &mut total) {
        check_string_bytes(builtin, total)?;
    }
    Ok(())
}

fn rendered_size_within(
    value: &Value,
    depth: u128,
    indent: u128,
    line_overhead: u128,
    max: u128,
    total: &mut u128,
) -> bool {
    let add = |total: &mut u128, n: u128| {
        *total = total.saturating_add(n);
        *total <= max
    };
    let element = depth
        .saturating_add(1)
        .saturating_mul(indent)
        .saturating_add(line_overhead)
        .saturating_add(1);
    // The closing line of a non-empty collection.
    let closing = depth.saturating_mul(indent).saturating_add(line_overhead);
    // Serialization fails beyond this depth with its own error; stop
    // measuring there instead of recursing once per level of nesting.
    if depth > size(crate::value::MAX_SERIALIZE_DEPTH) {
        return true;
    }
    match value {
        Value::Null | Value::Bool(_) => add(total, 4),
        Value::Number(_) => add(total, 1),
        Value::String(s) => add(total, size(s.len())),
        Value::Undefined => true,
        Value::Array(items) => {
            add(total, 2)
                && (items.is_empty() || add(total, closing))
                && items.iter().all(|item| {
                    add(total, element)
                        && rendered_size_within(item, depth + 1, indent, line_overhead, max, total)
                })
        }
        Value::Set(items) => {
            add(total, 2)
                && (items.is_empty() || add(total, closing))
                && items.iter().all(|item| {
                    add(total, element)
                        && rendered_size_within(item, depth + 1, indent, line_overhead, max, total)
                })
        }
        Value::Object(fields) => {
            add(total, 2)
                && (fields.is_empty() || add(total, closing))
                && fields.iter().all(|(key, item)| {
                    add(total, element.saturating_add(1))
                        && rendered_size_within(key, depth + 1, indent, line_overhead, max, total)
                        && rendered_size_within(item, depth + 1, indent, line_overhead, max, total)
                })
        }
    }
}

pub fn ensure_args_count(
    span: &Span,
    fcn: &'static str,
    params: &[Ref<Expr>],
    args: &[Value],
    expected: usize,
) -> Result<()> {
    if args.len() != expected {
        let span = match args.len() > expected {
            false => span,
            true => params[args.len() - 1].span(),
        };
        if expected == 1 {
            bail!(span.error(format!("`{fcn}` expects 1 argument").as_str()))
        } else {
            bail!(span.error(format!("`{fcn}` expects {expected} arguments").as_str()))
        }
    }
    Ok(())
}

pub fn ensure_numeric(fcn: &str, arg: &Expr, v: &Value) -> Result<Number> {
    Ok(match &v {
        Value::Number(n) => n.clone(),
        _ => {
            let span = arg.span();
            bail!(
                span.error(format!("`{fcn}` expects numeric argument. Got `{v}` instead").as_str())
            )
        }
    })
}

pub fn validate_integer_arg(
    fcn: &str,
    param: &Ref<Expr>,
    original_value: &Value,
    numeric_value: &Number,
    strict: bool,
    allow_negative: bool,
) -> Result<bool> {
    if !numeric_value.is_integer() {
        if strict {
            bail!(param.span().error(
                format!("`{fcn}` expects integer arguments. Got `{original_value}`").as_str()
            ));
        }
        return Ok(false);
    }

    if !allow_negative {
        if let Some(int_value) = numeric_value.as_i128() {
            if int_value < 0 {
                if strict {
                    bail!(param.span().error(
                        format!("`{fcn}` expects non-negative integer arguments. Got `{original_value}`")
                            .as_str(),
                    ));
                }
                return Ok(false);
            }
        } else if !numeric_value.is_positive() {
            if strict {
                bail!(param.span().error(
                    format!(
                        "`{fcn}` expects non-negative integer arguments. Got `{original_value}`"
                    )
                    .as_str(),
                ));
            }
            return Ok(false);
        }
    }

    Ok(true)
}

pub fn ensure_string(fcn: &str, arg: &Expr, v: &Value) -> Result<Rc<str>> {
    Ok(match &v {
        Value::String(s) => s.clone(),
        _ => {
            let span = arg.span();
            bail!(span.error(format!("`{fcn}` expects string argument. Got `{v}` instead").as_str()))
        }
    })
}

pub fn ensure_string_element<'a>(
    fcn: &str,
    arg: &Expr,
    v: &'a Value,
    idx: usize,
) -> Result<&'a str> {
    Ok(match &v {
        Value::String(s) => s.as_ref(),
        _ => {
            let span = arg.span();
            bail!(span.error(
                format!("`{fcn}` expects string collection. Element {idx} is not a string.")
                    .as_str()
            ))
        }
    })
}

pub fn ensure_string_collection<'a>(fcn: &str, arg: &Expr, v: &'a Value) -> Result<Vec<&'a str>> {
    let mut collection = vec![];
    match &v {
        Value::Array(a) => {
            for (idx, elem) in a.iter().enumerate() {
                collection.push(ensure_string_element(fcn, arg, elem, idx)?);
                // Enforce allocator limit while materializing the string collection.
                enforce_limit()?;
            }
        }
        Value::Set(s) => {
            for (idx, elem) in s.iter().enumerate() {
                collection.push(ensure_string_element(fcn, arg, elem, idx)?);
                // Enforce allocator limit while materializing the string collection.
                enforce_limit()?;
            }
        }
        _ => {
            let span = arg.span();
            bail!(span.error(format!("`{fcn}` expects array/set of strings.").as_str()))
        }
    }
    Ok(collection)
}

pub fn ensure_array(fcn: &str, arg: &Expr, v: Value) -> Result<Rc<Array>> {
    Ok(match v {
        Value::Array(a) => a,
        _ => {
            let span = arg.span();
            bail!(span.error(format!("`{fcn}` expects array argument. Got `{v}` instead").as_str()))
        }
    })
}

pub fn ensure_set(fcn: &str, arg: &Expr, v: Value) -> Result<Rc<Set>> {
    Ok(match v {
        Value::Set(s) => s,
        _ => {
            let span = arg.span();
            bail!(span.error(format!("`{fcn}` expects set argument. Got `{v}` instead").as_str()))
        }
    })
}

pub fn ensure_object(fcn: &str, arg: &Expr, v: Value) -> Result<Rc<Object>> {
    Ok(match v {
        Value::Object(o) => o,
        _ => {
            let span = arg.span();
            bail!(span.error(format!("`{fcn}` expects object argument. Got `{v}` instead").as_str()))
        }
    })
}
