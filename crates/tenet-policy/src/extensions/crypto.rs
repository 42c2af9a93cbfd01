//! `crypto.sha256`, `crypto.sha1`, `crypto.md5`, `crypto.hmac.{sha256,sha1,sha512,md5}`
//! and `crypto.hmac.equal`, as in OPA's `topdown/crypto.go`.
//!
//! Digests and MACs are computed over the UTF-8 bytes of the string operands
//! and returned as lowercase hex. `crypto.hmac.equal` compares the two strings'
//! bytes in constant time (Go's `hmac.Equal`): different lengths are unequal.
//! These builtins must stay pure and must not panic; a non-string operand is
//! an error naming the operand, as in OPA.

use hmac::digest::{Digest, KeyInit};
use hmac::{Hmac, Mac};
use md5::Md5;
use regorus::Value;
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use super::string_operand;

pub(super) fn sha256(args: Vec<Value>) -> anyhow::Result<Value> {
    digest_hex::<Sha256>("crypto.sha256", &args)
}

pub(super) fn sha1(args: Vec<Value>) -> anyhow::Result<Value> {
    digest_hex::<Sha1>("crypto.sha1", &args)
}

pub(super) fn md5(args: Vec<Value>) -> anyhow::Result<Value> {
    digest_hex::<Md5>("crypto.md5", &args)
}

pub(super) fn hmac_sha256(args: Vec<Value>) -> anyhow::Result<Value> {
    hmac_hex::<Hmac<Sha256>>("crypto.hmac.sha256", &args)
}

pub(super) fn hmac_sha1(args: Vec<Value>) -> anyhow::Result<Value> {
    hmac_hex::<Hmac<Sha1>>("crypto.hmac.sha1", &args)
}

pub(super) fn hmac_sha512(args: Vec<Value>) -> anyhow::Result<Value> {
    hmac_hex::<Hmac<Sha512>>("crypto.hmac.sha512", &args)
}

pub(super) fn hmac_md5(args: Vec<Value>) -> anyhow::Result<Value> {
    hmac_hex::<Hmac<Md5>>("crypto.hmac.md5", &args)
}

/// `crypto.hmac.equal(mac1, mac2)`: constant-time comparison of the two strings.
pub(super) fn hmac_equal(args: Vec<Value>) -> anyhow::Result<Value> {
    const NAME: &str = "crypto.hmac.equal";
    let mac1 = string_operand(NAME, &args, 1)?;
    let mac2 = string_operand(NAME, &args, 2)?;
    Ok(Value::from(constant_time_eq(
        mac1.as_bytes(),
        mac2.as_bytes(),
    )))
}

/// Hex digest of operand 1.
fn digest_hex<D: Digest>(name: &str, args: &[Value]) -> anyhow::Result<Value> {
    let input = string_operand(name, args, 1)?;
    Ok(Value::from(hex::encode(D::digest(input.as_bytes()))))
}

/// Hex HMAC of operand 1 (message) keyed with operand 2 (key).
fn hmac_hex<M: Mac + KeyInit>(name: &str, args: &[Value]) -> anyhow::Result<Value> {
    let message = string_operand(name, args, 1)?;
    let key = string_operand(name, args, 2)?;
    // HMAC accepts keys of any length; the error branch is unreachable in practice.
    let mut mac =
        <M as Mac>::new_from_slice(key.as_bytes()).map_err(|e| super::builtin_error(name, e))?;
    mac.update(message.as_bytes());
    Ok(Value::from(hex::encode(mac.finalize().into_bytes())))
}

/// Go's `subtle.ConstantTimeCompare` on byte strings: the time taken depends
/// only on the lengths, never on where the inputs differ.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::test_support::{eval, eval_err, input};
    use super::*;

    fn call(expr: &str, fields: &[(&str, &str)]) -> Value {
        eval(expr, input(fields)).unwrap_or_else(|e| panic!("{expr}: {e:#}"))
    }

    fn hex_of(expr: &str, fields: &[(&str, &str)]) -> String {
        call(expr, fields).as_string().expect("string").to_string()
    }

    #[test]
    fn digests_of_empty_string() {
        assert_eq!(
            hex_of("crypto.sha256(\"\")", &[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex_of("crypto.sha1(\"\")", &[]),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            hex_of("crypto.md5(\"\")", &[]),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn digests_of_abc() {
        // FIPS 180 / RFC 1321 test vectors.
        let abc = [("s", "abc")];
        assert_eq!(
            hex_of("crypto.sha256(input.s)", &abc),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex_of("crypto.sha1(input.s)", &abc),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex_of("crypto.md5(input.s)", &abc),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }

    #[test]
    fn digests_hash_utf8_bytes() {
        // "é" is two UTF-8 bytes (c3 a9), as Go's []byte(string).
        assert_eq!(
            hex_of("crypto.md5(input.s)", &[("s", "é")]),
            hex::encode(Md5::digest([0xc3, 0xa9]))
        );
    }

    #[test]
    fn hmacs_match_rfc_4231_and_rfc_2202_case_2() {
        // Key "Jefe", data "what do ya want for nothing?".
        let fields = [("key", "Jefe"), ("data", "what do ya want for nothing?")];
        assert_eq!(
            hex_of("crypto.hmac.sha256(input.data, input.key)", &fields),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex_of("crypto.hmac.sha512(input.data, input.key)", &fields),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
        assert_eq!(
            hex_of("crypto.hmac.sha1(input.data, input.key)", &fields),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex_of("crypto.hmac.md5(input.data, input.key)", &fields),
            "750c783e6ab0b503eaa86e310a5db738"
        );
    }

    #[test]
    fn hmac_with_empty_key_and_message() {
        // HMAC-SHA256("", "") (well-known value).
        assert_eq!(
            hex_of("crypto.hmac.sha256(\"\", \"\")", &[]),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"
        );
    }

    #[test]
    fn hmac_equal_is_byte_equality() {
        let t =
            |a: &str, b: &str| call("crypto.hmac.equal(input.a, input.b)", &[("a", a), ("b", b)]);
        assert_eq!(t("abc", "abc"), Value::from(true));
        assert_eq!(t("abc", "abd"), Value::from(false));
        assert_eq!(t("abc", "ab"), Value::from(false));
        assert_eq!(t("", ""), Value::from(true));
        // No normalisation: case and encoding matter.
        assert_eq!(t("ABC", "abc"), Value::from(false));
    }

    #[test]
    fn hmac_equal_of_two_computed_macs() {
        let v = call(
            "crypto.hmac.equal(crypto.hmac.sha256(\"m\", \"k\"), crypto.hmac.sha256(\"m\", \"k\"))",
            &[],
        );
        assert_eq!(v, Value::from(true));
    }

    #[test]
    fn type_errors_name_the_operand() {
        let numbers = Value::from_json_str(r#"{"n": 1, "b": true}"#).unwrap();
        for (expr, message) in [
            (
                "crypto.sha256(input.n)",
                "crypto.sha256: operand 1 must be string but got number",
            ),
            (
                "crypto.sha1(input.b)",
                "crypto.sha1: operand 1 must be string but got boolean",
            ),
            (
                "crypto.md5({\"a\": 1})",
                "crypto.md5: operand 1 must be string but got object",
            ),
            (
                "crypto.hmac.md5(input.n, \"k\")",
                "crypto.hmac.md5: operand 1 must be string but got number",
            ),
            (
                "crypto.hmac.sha1(\"m\", null)",
                "crypto.hmac.sha1: operand 2 must be string but got null",
            ),
            (
                "crypto.hmac.equal(\"m\", {1})",
                "crypto.hmac.equal: operand 2 must be string but got set",
            ),
        ] {
            let err = eval_err(expr, numbers.clone());
            assert!(err.contains(message), "{expr}: {err}");
        }
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"\x00\xff", b"\x00\xff"));
        assert!(!constant_time_eq(b"\x00\xff", b"\x00\xfe"));
        assert!(!constant_time_eq(b"a", b"aa"));
    }
}
