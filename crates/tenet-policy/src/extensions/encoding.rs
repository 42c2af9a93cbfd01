//! Byte decoders that reproduce the Go behaviour OPA's builtins rely on.
//!
//! OPA decodes JWT segments with its own `base64url.decode` (pads, then Go's
//! padded, non-strict URL decoder), PEM bodies with Go's `encoding/pem`
//! (standard alphabet), JWK members with a lenient decoder, and turns decoded
//! bytes into JSON with Go's `encoding/json` (invalid UTF-8 inside strings
//! becomes U+FFFD). These helpers mirror that so the same inputs are accepted
//! and rejected. They must stay pure and must not panic on any input.

use std::borrow::Cow;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{DecodeError, Engine as _};

/// Go's `base64.URLEncoding` (padded; trailing bits ignored, as Go's non-strict mode).
const GO_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Go's `base64.StdEncoding` (padded; trailing bits ignored).
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// URL alphabet, padding optional: used after normalising a JWK member.
const LENIENT_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// OPA's `base64url.decode`: unpadded input (length 2 or 3 mod 4) is padded
/// first, length 1 mod 4 without padding is an error; then Go's URL decoder.
pub(super) fn base64url_decode(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut padded = input.to_vec();
    if !input.ends_with(b"=") {
        match input.len() % 4 {
            2 => padded.extend_from_slice(b"=="),
            3 => padded.push(b'='),
            1 => {
                return Err(format!(
                    "illegal base64url string: {}",
                    String::from_utf8_lossy(input)
                ))
            }
            _ => {}
        }
    }
    go_decode(&GO_URL, &padded)
}

/// Go's `base64.StdEncoding.Decode` (as used by `encoding/pem`).
pub(super) fn base64_std_decode(input: &[u8]) -> Result<Vec<u8>, String> {
    go_decode(&GO_STD, input)
}

/// Lenient decoding of a JWK member: standard or URL alphabet, padded or not.
pub(super) fn base64_lenient_decode(input: &str) -> Result<Vec<u8>, String> {
    let normalized: Vec<u8> = input
        .bytes()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .map(|b| match b {
            b'+' => b'-',
            b'/' => b'_',
            other => other,
        })
        .collect();
    LENIENT_URL
        .decode(&normalized)
        .map_err(|e| format!("failed to decode base64: {e}"))
}

/// Decodes like Go's padded decoders: `\r` and `\n` anywhere are skipped, and
/// errors name the offending offset in the original input, as Go's
/// `illegal base64 data at input byte N`.
fn go_decode(engine: &GeneralPurpose, input: &[u8]) -> Result<Vec<u8>, String> {
    let mut symbols = Vec::with_capacity(input.len());
    let mut offsets = Vec::with_capacity(input.len());
    for (offset, &byte) in input.iter().enumerate() {
        if byte != b'\r' && byte != b'\n' {
            symbols.push(byte);
            offsets.push(offset);
        }
    }
    engine.decode(&symbols).map_err(|e| {
        let at = match e {
            DecodeError::InvalidByte(i, _) | DecodeError::InvalidLastSymbol(i, _) => {
                offsets.get(i).copied().unwrap_or(input.len())
            }
            DecodeError::InvalidLength(_) | DecodeError::InvalidPadding => {
                // Go reports the start of the incomplete final quantum.
                let quantum_start = symbols.len() - symbols.len() % 4;
                offsets.get(quantum_start).copied().unwrap_or(input.len())
            }
        };
        format!("illegal base64 data at input byte {at}")
    })
}

/// JSON bytes as text that `serde_json` reads the way Go's `encoding/json`
/// does: invalid UTF-8 becomes U+FFFD (see [`go_lossy_utf8`]) and so does an
/// escaped UTF-16 surrogate that is not part of a valid pair (`"\ud800"`),
/// which `serde_json` would otherwise reject.
pub(super) fn go_json_text(bytes: &[u8]) -> Cow<'_, str> {
    let text = go_lossy_utf8(bytes);
    if !text.contains("\\u") {
        return text;
    }
    match replace_lone_surrogate_escapes(&text) {
        Some(fixed) => Cow::Owned(fixed),
        None => text,
    }
}

/// Rewrites, inside JSON strings, every `\uXXXX` escape of a UTF-16 surrogate
/// that does not form a valid high+low pair with the next escape as `\uFFFD`.
/// `None` when nothing had to change. The JSON syntax is otherwise untouched.
fn replace_lone_surrogate_escapes(text: &str) -> Option<String> {
    fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
        let digits = bytes.get(at..at + 4)?;
        let digits = std::str::from_utf8(digits).ok()?;
        u32::from_str_radix(digits, 16).ok()
    }
    /// The code unit of a `\uXXXX` escape starting at `at`, if there is one.
    fn escape_at(bytes: &[u8], at: usize) -> Option<u32> {
        if bytes.get(at) == Some(&b'\\') && bytes.get(at + 1) == Some(&b'u') {
            hex4(bytes, at + 2)
        } else {
            None
        }
    }

    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut in_string = false;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if !in_string {
            in_string = byte == b'"';
            out.push(byte);
            i += 1;
            continue;
        }
        match byte {
            b'"' => {
                in_string = false;
                out.push(byte);
                i += 1;
            }
            b'\\' => match escape_at(bytes, i) {
                Some(unit) if (0xd800..0xe000).contains(&unit) => {
                    let pair = (0xd800..0xdc00).contains(&unit)
                        && escape_at(bytes, i + 6)
                            .is_some_and(|low| (0xdc00..0xe000).contains(&low));
                    if pair {
                        out.extend_from_slice(bytes.get(i..i + 12).unwrap_or_default());
                        i += 12;
                    } else {
                        out.extend_from_slice(b"\\ufffd");
                        changed = true;
                        i += 6;
                    }
                }
                _ => {
                    // Any other escape: copy the backslash and the escaped byte.
                    out.extend_from_slice(
                        bytes
                            .get(i..i + 2)
                            .or_else(|| bytes.get(i..))
                            .unwrap_or_default(),
                    );
                    i += 2;
                }
            },
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    if !changed {
        return None;
    }
    String::from_utf8(out).ok()
}

/// Bytes as text the way Go's `encoding/json` reads them: every byte that is
/// not part of a valid UTF-8 sequence becomes U+FFFD (one per byte).
fn go_lossy_utf8(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(text) => {
                out.push_str(text);
                break;
            }
            Err(e) => {
                let (valid, invalid) = rest.split_at(e.valid_up_to());
                if let Ok(text) = std::str::from_utf8(valid) {
                    out.push_str(text);
                }
                out.push(char::REPLACEMENT_CHARACTER);
                rest = invalid.get(1..).unwrap_or_default();
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_pads_like_opa() {
        assert_eq!(base64url_decode(b"YQ").as_deref(), Ok(&b"a"[..]));
        assert_eq!(base64url_decode(b"YQ==").as_deref(), Ok(&b"a"[..]));
        assert_eq!(base64url_decode(b"YWI").as_deref(), Ok(&b"ab"[..]));
        assert_eq!(base64url_decode(b"").as_deref(), Ok(&b""[..]));
        assert_eq!(
            base64url_decode(b"YWJjZ"),
            Err("illegal base64url string: YWJjZ".to_string())
        );
        // URL alphabet only, as Go's URLEncoding.
        assert_eq!(base64url_decode(b"-_8").as_deref(), Ok(&[0xfb, 0xff][..]));
        assert!(base64url_decode(b"+/8").is_err());
        // Go's non-strict decoder ignores non-zero trailing bits.
        assert_eq!(base64url_decode(b"YR").as_deref(), Ok(&b"a"[..]));
    }

    #[test]
    fn base64url_error_offsets_match_opa_test_cases() {
        // OPA test jwtbuiltins/bad-header-encoding and bad-payload-encoding.
        assert_eq!(
            base64url_decode(b"eyJhbGciOiJIU^%zI1NiI+sInR5cCI6IkpXVCJ9"),
            Err("illegal base64 data at input byte 13".to_string())
        );
        assert_eq!(
            base64url_decode(b"eyJzdWIiOiIwIiwia/XNzIjoib3BhIn0"),
            Err("illegal base64 data at input byte 17".to_string())
        );
    }

    #[test]
    fn base64_std_skips_newlines() {
        assert_eq!(base64_std_decode(b"YW\r\nJj").as_deref(), Ok(&b"abc"[..]));
        assert!(base64_std_decode(b"YWJ").is_err());
    }

    #[test]
    fn lenient_accepts_both_alphabets_and_padding() {
        assert_eq!(
            base64_lenient_decode("-_8").as_deref(),
            Ok(&[0xfb, 0xff][..])
        );
        assert_eq!(
            base64_lenient_decode("+/8=").as_deref(),
            Ok(&[0xfb, 0xff][..])
        );
        assert!(base64_lenient_decode("a").is_err());
    }

    #[test]
    fn lone_surrogate_escapes_become_replacement_characters() {
        let parse = |json: &str| {
            serde_json::from_str::<serde_json::Value>(&go_json_text(json.as_bytes()))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            parse(r#"{"s":"\ud800"}"#),
            Ok(serde_json::json!({"s": "\u{fffd}"}))
        );
        assert_eq!(
            parse(r#"{"s":"\udc00x"}"#),
            Ok(serde_json::json!({"s": "\u{fffd}x"}))
        );
        // A valid pair is kept; a high surrogate before a non-low escape is replaced alone.
        assert_eq!(
            parse(r#"{"s":"\ud83d\ude00"}"#),
            Ok(serde_json::json!({"s": "\u{1f600}"}))
        );
        assert_eq!(
            parse(r#"{"s":"\ud83d\u0041"}"#),
            Ok(serde_json::json!({"s": "\u{fffd}A"}))
        );
        // Escaped backslashes and text outside strings are left alone.
        assert_eq!(
            parse(r#"{"s":"\\ud800"}"#),
            Ok(serde_json::json!({"s": "\\ud800"}))
        );
        assert_eq!(go_json_text(br#"{"\u0041":1}"#), r#"{"\u0041":1}"#);
        assert!(parse(r#"{"s":"\ud800"#).is_err());
    }

    #[test]
    fn lossy_utf8_replaces_each_invalid_byte() {
        assert_eq!(go_lossy_utf8(b"ok"), "ok");
        // A truncated 3-byte sequence is two invalid bytes for Go.
        assert_eq!(go_lossy_utf8(b"a\xe2\x82b"), "a\u{FFFD}\u{FFFD}b");
        assert_eq!(go_lossy_utf8(b"\xff"), "\u{FFFD}");
    }
}
