//! OPA builtins that regorus lacks, registered as interpreter extensions.
//!
//! regorus 0.14 has no `io.jwt.*` and no `crypto.*` builtins. This module
//! provides the subset tenet needs, with the semantics OPA v1 documents and tests
//! (its `topdown` tokens, crypto and encoding builtins), written anew in Rust:
//!
//! * `io.jwt.decode(token)` → `[header, payload, signature_hex]`
//! * `io.jwt.verify_rs256(token, certificate)`, `io.jwt.verify_es256(token, certificate)`,
//!   `io.jwt.verify_hs256(token, secret)` → boolean
//! * `crypto.sha256(x)`, `crypto.sha1(x)`, `crypto.md5(x)` → lowercase hex
//! * `crypto.hmac.sha256(x, key)`, `crypto.hmac.sha1`, `crypto.hmac.sha512`,
//!   `crypto.hmac.md5` → lowercase hex; `crypto.hmac.equal(mac1, mac2)` → boolean
//!
//! Register them with [`register`]; [`NAMES`] lists what gets registered.
//!
//! What this module must not do:
//! * no I/O, clock, randomness, caching or other shared state: every builtin is
//!   a pure function of its arguments, so results are deterministic and an
//!   engine (and its clones) can be shared between tenants and threads;
//! * no panics on hostile input (tokens and keys come from requests): every
//!   failure is an `anyhow` error prefixed with the builtin's name, as OPA
//!   reports builtin errors (`io.jwt.decode: encoded JWT had no period separators`);
//! * no claim checks (`exp`, `nbf`, `iss`, `aud`) in the `verify_*` builtins:
//!   like OPA they check the signature only (`io.jwt.decode_verify` is not provided);
//! * no builtin that regorus already implements, and nothing outside OPA's
//!   documented behaviour (no extra algorithms or key formats beyond OPA's).

mod crypto;
mod encoding;
mod jwt;
mod keys;

use regorus::Value;

/// Signature shared by every extension registered here.
type Builtin = fn(Vec<Value>) -> anyhow::Result<Value>;

/// Every builtin: OPA name, number of arguments, implementation.
const BUILTINS: &[(&str, u8, Builtin)] = &[
    ("io.jwt.decode", 1, jwt::decode),
    ("io.jwt.verify_rs256", 2, jwt::verify_rs256),
    ("io.jwt.verify_es256", 2, jwt::verify_es256),
    ("io.jwt.verify_hs256", 2, jwt::verify_hs256),
    ("crypto.sha256", 1, crypto::sha256),
    ("crypto.sha1", 1, crypto::sha1),
    ("crypto.md5", 1, crypto::md5),
    ("crypto.hmac.sha256", 2, crypto::hmac_sha256),
    ("crypto.hmac.sha1", 2, crypto::hmac_sha1),
    ("crypto.hmac.sha512", 2, crypto::hmac_sha512),
    ("crypto.hmac.md5", 2, crypto::hmac_md5),
    ("crypto.hmac.equal", 2, crypto::hmac_equal),
];

/// Names of every builtin this module registers (e.g. "io.jwt.decode").
#[cfg(test)]
pub(crate) const NAMES: &[&str] = &[
    "io.jwt.decode",
    "io.jwt.verify_rs256",
    "io.jwt.verify_es256",
    "io.jwt.verify_hs256",
    "crypto.sha256",
    "crypto.sha1",
    "crypto.md5",
    "crypto.hmac.sha256",
    "crypto.hmac.sha1",
    "crypto.hmac.sha512",
    "crypto.hmac.md5",
    "crypto.hmac.equal",
];

/// Registers every extension on `engine`. Errors only if regorus refuses a registration.
///
/// With `strict == false` (OPA's default) a builtin error makes the call
/// undefined instead of failing the query, as OPA does for every builtin;
/// regorus treats extension errors as fatal, so the choice is made here.
///
/// regorus refuses a name that is already registered on that engine, so call
/// this once per engine (clones of a registered engine keep the extensions).
pub(crate) fn register(engine: &mut regorus::Engine, strict: bool) -> anyhow::Result<()> {
    for &(name, nargs, builtin) in BUILTINS {
        let extension = move |args: Vec<Value>| match builtin(args) {
            Err(_) if !strict => Ok(Value::Undefined),
            other => other,
        };
        engine
            .add_extension(name.to_string(), nargs, Box::new(extension))
            .map_err(|e| e.context(format!("registering builtin {name}")))?;
    }
    Ok(())
}

/// OPA's name for the type of `value`, as used in its operand type errors.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Object(_) => "object",
        Value::Undefined => "undefined",
    }
}

/// Operand `position` (1-based, as in OPA's messages) of `builtin`, which must be a string.
fn string_operand<'a>(
    builtin: &str,
    args: &'a [Value],
    position: usize,
) -> anyhow::Result<&'a str> {
    match position.checked_sub(1).and_then(|index| args.get(index)) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(anyhow::anyhow!(
            "{builtin}: operand {position} must be string but got {}",
            type_name(other)
        )),
        None => Err(anyhow::anyhow!("{builtin}: operand {position} is missing")),
    }
}

/// Turns an internal error message into the error OPA reports for `builtin`.
fn builtin_error(builtin: &str, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{builtin}: {message}")
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
pub(crate) mod test_support {
    //! Helpers shared by the unit tests of the submodules: evaluate a Rego
    //! expression through a real regorus `Engine` with the extensions registered.

    use regorus::Value;

    /// Evaluates `expr` (which may refer to `input`) as the value of rule `x`
    /// of a Rego v1 policy, on an engine where [`super::register`] was called.
    pub(crate) fn eval(expr: &str, input: Value) -> anyhow::Result<Value> {
        let mut engine = regorus::Engine::new();
        super::register(&mut engine, true)?;
        engine.add_policy("t.rego".to_string(), format!("package t\n\nx := {expr}\n"))?;
        engine.set_input(input);
        engine.eval_rule("data.t.x".to_string())
    }

    /// Builds an `input` object from string fields.
    pub(crate) fn input(fields: &[(&str, &str)]) -> Value {
        let mut map = std::collections::BTreeMap::new();
        for (k, v) in fields {
            map.insert(Value::from(*k), Value::from(*v));
        }
        Value::from(map)
    }

    /// Evaluates `expr` and returns its error message, failing the test if it succeeds.
    pub(crate) fn eval_err(expr: &str, input: Value) -> String {
        match eval(expr, input) {
            Ok(v) => panic!("expected an error from {expr}, got {v:?}"),
            Err(e) => format!("{e:#}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::test_support::{eval, eval_err, input};
    use super::*;

    #[test]
    fn names_match_registered_builtins() {
        let registered: Vec<&str> = BUILTINS.iter().map(|(name, _, _)| *name).collect();
        assert_eq!(registered, NAMES);
    }

    #[test]
    fn register_twice_on_same_engine_is_refused() {
        let mut engine = regorus::Engine::new();
        register(&mut engine, true).expect("first registration");
        assert!(register(&mut engine, true).is_err());
    }

    #[test]
    fn every_name_is_callable_from_rego() -> anyhow::Result<()> {
        for (name, nargs, _) in BUILTINS {
            let args = vec!["input.a"; usize::from(*nargs)].join(", ");
            let v = eval(&format!("{name}({args})"), input(&[("a", "x.y.z")]));
            // Every builtin accepts strings; the JWT ones reject this token, but
            // with their own error (proving the extension, not regorus, answered).
            match v {
                Ok(v) => assert_ne!(v, Value::Undefined, "{name}"),
                Err(e) => assert!(format!("{e:#}").contains(name), "{name}: {e:#}"),
            }
        }
        Ok(())
    }

    #[test]
    fn operand_type_errors_follow_opa_wording() {
        let err = eval_err(
            "io.jwt.decode(input.n)",
            Value::from_json_str(r#"{"n": 1}"#).expect("json"),
        );
        assert!(
            err.contains("io.jwt.decode: operand 1 must be string but got number"),
            "{err}"
        );
        let err = eval_err(
            "crypto.hmac.sha256(\"x\", input.n)",
            Value::from_json_str(r#"{"n": [1]}"#).expect("json"),
        );
        assert!(
            err.contains("crypto.hmac.sha256: operand 2 must be string but got array"),
            "{err}"
        );
    }

    #[test]
    fn undefined_argument_makes_the_call_undefined() -> anyhow::Result<()> {
        let v = eval("crypto.sha256(input.missing)", input(&[]))?;
        assert_eq!(v, Value::Undefined);
        Ok(())
    }
}
