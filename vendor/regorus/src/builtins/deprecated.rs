// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

//! Built-ins that OPA deprecated and keeps for Rego v0 modules only.
//! See `DeprecatedBuiltins` in OPA's `v1/ast/builtins.go`.

#![allow(clippy::indexing_slicing, clippy::pattern_type_mismatch)]

use crate::ast::{Expr, Ref};
use crate::builtins;
use crate::builtins::utils::ensure_args_count;
use crate::lexer::Span;
use crate::value::Value;

use alloc::format;
use anyhow::{bail, Result};

/// Names of the deprecated built-ins: callable from Rego v0 modules only.
pub const DEPRECATED: &[&str] = &[
    "all",
    "any",
    "cast_array",
    "cast_boolean",
    "cast_null",
    "cast_object",
    "cast_set",
    "cast_string",
    "net.cidr_overlap",
    "re_match",
    "set_diff",
];

pub fn register(m: &mut builtins::BuiltinsMap<&'static str, builtins::BuiltinFcn>) {
    m.insert("all", (all, 1));
    m.insert("any", (any, 1));
    m.insert("cast_array", (cast_array, 1));
    m.insert("cast_boolean", (cast_boolean, 1));
    m.insert("cast_null", (cast_null, 1));
    m.insert("cast_object", (cast_object, 1));
    m.insert("cast_set", (cast_set, 1));
    m.insert("cast_string", (cast_string, 1));
    #[cfg(feature = "net")]
    m.insert("net.cidr_overlap", (cidr_overlap, 2));
    #[cfg(feature = "regex")]
    m.insert("re_match", (re_match, 2));
    m.insert("set_diff", (set_diff, 2));
}

fn type_error(param: &Expr, fcn: &str, expected: &str, got: &Value) -> anyhow::Error {
    param
        .span()
        .error(format!("`{fcn}` expects {expected} argument. Got `{got}` instead").as_str())
}

fn elements<'a>(
    fcn: &str,
    param: &Expr,
    v: &'a Value,
) -> Result<alloc::boxed::Box<dyn Iterator<Item = &'a Value> + 'a>> {
    Ok(match v {
        Value::Array(a) => alloc::boxed::Box::new(a.iter()),
        Value::Set(s) => alloc::boxed::Box::new(s.iter()),
        _ => return Err(type_error(param, fcn, "array/set", v)),
    })
}

/// `all(collection)`: true if every element is `true` (true when empty).
fn all(span: &Span, params: &[Ref<Expr>], args: &[Value], _strict: bool) -> Result<Value> {
    ensure_args_count(span, "all", params, args, 1)?;
    let mut items = elements("all", &params[0], &args[0])?;
    Ok(Value::Bool(items.all(|v| *v == Value::Bool(true))))
}

/// `any(collection)`: true if some element is `true`.
fn any(span: &Span, params: &[Ref<Expr>], args: &[Value], _strict: bool) -> Result<Value> {
    ensure_args_count(span, "any", params, args, 1)?;
    let mut items = elements("any", &params[0], &args[0])?;
    Ok(Value::Bool(items.any(|v| *v == Value::Bool(true))))
}

fn cast_array(span: &Span, params: &[Ref<Expr>], args: &[Value], _strict: bool) -> Result<Value> {
    ensure_args_count(span, "cast_array", params, args, 1)?;
    match &args[0] {
        Value::Array(_) => Ok(args[0].clone()),
        Value::Set(s) => Ok(Value::from_array(s.iter().cloned().collect())),
        v => Err(type_error(&params[0], "cast_array", "array/set", v)),
    }
}

fn cast_set(span: &Span, params: &[Ref<Expr>], args: &[Value], _strict: bool) -> Result<Value> {
    ensure_args_count(span, "cast_set", params, args, 1)?;
    match &args[0] {
        Value::Set(_) => Ok(args[0].clone()),
        Value::Array(a) => Ok(Value::from_set(a.iter().cloned().collect())),
        v => Err(type_error(&params[0], "cast_set", "array/set", v)),
    }
}

/// `cast_boolean`, `cast_null`, `cast_object`, `cast_string`: the argument
/// itself when it has the type, else a type error.
fn cast_to(
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    fcn: &'static str,
    expected: &str,
    matches: fn(&Value) -> bool,
) -> Result<Value> {
    ensure_args_count(span, fcn, params, args, 1)?;
    if !matches(&args[0]) {
        bail!(type_error(&params[0], fcn, expected, &args[0]));
    }
    Ok(args[0].clone())
}

fn cast_boolean(span: &Span, params: &[Ref<Expr>], args: &[Value], _strict: bool) -> Result<Value> {
    cast_to(span, params, args, "cast_boolean", "boolean", |v| {
        matches!(v, Value::Bool(_))
    })
}

fn cast_null(span: &Span, params: &[Ref<Expr>], args: &[Value], _strict: bool) -> Result<Value> {
    cast_to(span, params, args, "cast_null", "null", |v| {
        matches!(v, Value::Null)
    })
}

fn cast_object(span: &Span, params: &[Ref<Expr>], args: &[Value], _strict: bool) -> Result<Value> {
    cast_to(span, params, args, "cast_object", "object", |v| {
        matches!(v, Value::Object(_))
    })
}

fn cast_string(span: &Span, params: &[Ref<Expr>], args: &[Value], _strict: bool) -> Result<Value> {
    cast_to(span, params, args, "cast_string", "string", |v| {
        matches!(v, Value::String(_))
    })
}

/// `net.cidr_overlap(cidr, cidr_or_ip)`: the old name of `net.cidr_contains`.
#[cfg(feature = "net")]
fn cidr_overlap(span: &Span, params: &[Ref<Expr>], args: &[Value], strict: bool) -> Result<Value> {
    ensure_args_count(span, "net.cidr_overlap", params, args, 2)?;
    builtins::net::cidr_contains(span, params, args, strict)
}

/// `re_match(pattern, value)`: the old name of `regex.match`.
#[cfg(feature = "regex")]
fn re_match(span: &Span, params: &[Ref<Expr>], args: &[Value], strict: bool) -> Result<Value> {
    ensure_args_count(span, "re_match", params, args, 2)?;
    builtins::regex::regex_match(span, params, args, strict)
}

/// `set_diff(a, b)`: the old name of `a - b` on sets.
fn set_diff(span: &Span, params: &[Ref<Expr>], args: &[Value], _strict: bool) -> Result<Value> {
    ensure_args_count(span, "set_diff", params, args, 2)?;
    builtins::sets::difference(&params[0], &params[1], args[0].clone(), args[1].clone())
}
