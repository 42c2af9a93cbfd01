//! `io.jwt.decode`, `io.jwt.verify_rs256`, `io.jwt.verify_es256` and
//! `io.jwt.verify_hs256`, as in OPA's `topdown/tokens.go`.
//!
//! Behaviour reproduced from OPA:
//! * a token is three `.`-separated base64url segments (OPA's lenient
//!   base64url: padding optional); anything else is an error, never `false`;
//! * `decode` returns `[header, payload, signature as lowercase hex]`, rejects
//!   JWE headers (`enc`), requires both JSON documents to be objects, and
//!   decodes the nested token when the header's `cty` is `"JWT"`;
//! * the `verify_*` builtins check only the signature (no `exp`/`nbf`/...):
//!   malformed tokens, keys or headers are errors; a well-formed token that
//!   does not verify with any of the keys is `false`;
//! * RS256/ES256 keys may be a PEM certificate, a PEM public key or a JWK
//!   (set): with a set, a key whose `kid` matches the header's is the only one
//!   tried; otherwise every key whose `alg` is absent or equals the header's.
//!
//! This module must stay pure (no clock, no cache) and must not panic.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{crypto as jwt_crypto, Algorithm};
use regorus::Value;
use sha2::Sha256;

use super::encoding::{base64url_decode, go_json_text};
use super::keys::{parse_keys, PublicKey, VerificationKey};
use super::{builtin_error, string_operand};

/// `io.jwt.decode(token)` → `[header, payload, signature_hex]`.
pub(super) fn decode(args: Vec<Value>) -> anyhow::Result<Value> {
    const NAME: &str = "io.jwt.decode";
    let token = string_operand(NAME, &args, 1)?;
    decode_token(token.as_bytes()).map_err(|e| builtin_error(NAME, e))
}

/// `io.jwt.verify_rs256(token, certificate)` → boolean.
pub(super) fn verify_rs256(args: Vec<Value>) -> anyhow::Result<Value> {
    verify_asymmetric("io.jwt.verify_rs256", &args, verify_rs256_with)
}

/// `io.jwt.verify_es256(token, certificate)` → boolean.
pub(super) fn verify_es256(args: Vec<Value>) -> anyhow::Result<Value> {
    verify_asymmetric("io.jwt.verify_es256", &args, verify_es256_with)
}

/// `io.jwt.verify_hs256(token, secret)` → boolean.
pub(super) fn verify_hs256(args: Vec<Value>) -> anyhow::Result<Value> {
    const NAME: &str = "io.jwt.verify_hs256";
    // OPA checks both operand types before looking at the token.
    let token = string_operand(NAME, &args, 1)?;
    let secret = string_operand(NAME, &args, 2)?;
    let token = Token::split(token.as_bytes()).map_err(|e| builtin_error(NAME, e))?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| builtin_error(NAME, e))?;
    mac.update(token.header);
    mac.update(b".");
    mac.update(token.payload);
    let signature = base64url_decode(token.signature).map_err(|e| builtin_error(NAME, e))?;
    // Constant-time comparison; a signature of the wrong length is simply false.
    Ok(Value::from(mac.verify_slice(&signature).is_ok()))
}

/// The three undecoded segments of a compact JWS.
struct Token<'a> {
    header: &'a [u8],
    payload: &'a [u8],
    signature: &'a [u8],
}

impl<'a> Token<'a> {
    /// OPA's `decodeJWT`: the token must contain exactly two periods.
    fn split(encoded: &'a [u8]) -> Result<Self, String> {
        if !encoded.contains(&b'.') {
            return Err("encoded JWT had no period separators".to_string());
        }
        let parts: Vec<&[u8]> = encoded.split(|&b| b == b'.').collect();
        match parts.as_slice() {
            [header, payload, signature] => Ok(Token {
                header,
                payload,
                signature,
            }),
            _ => Err(format!(
                "encoded JWT must have 3 sections, found {}",
                parts.len()
            )),
        }
    }

    /// The header as a JSON object (OPA's `decodeHeader` / `validateJWTHeader`).
    fn decoded_header(&self) -> Result<Value, String> {
        let bytes = base64url_decode(self.header)
            .map_err(|e| format!("JWT header had invalid encoding: {e}"))?;
        let header = json_object(&bytes).map_err(|e| format!("bad JWT header: {e}"))?;
        if object_field(&header, "enc").is_some() {
            return Err("JWT is a JWE object, which is not supported".to_string());
        }
        Ok(header)
    }

    /// The signed input, `header.payload` as it appears in the token.
    fn signing_input(&self) -> Vec<u8> {
        [self.header, b".", self.payload].concat()
    }
}

/// OPA's `builtinJWTDecode` on the raw token bytes.
fn decode_token(encoded: &[u8]) -> Result<Value, String> {
    let token = Token::split(encoded)?;
    let header = token.decoded_header()?;
    let payload = base64url_decode(token.payload)
        .map_err(|e| format!("JWT payload had invalid encoding: {e}"))?;

    match object_field(&header, "cty") {
        // A nested token: the payload is another JWT, possibly quoted (as
        // jwt.io produces it). OPA returns the decoding of the inner token.
        Some(Value::String(cty)) if cty.as_ref() == "JWT" => {
            return decode_token(trim_quotes(&payload));
        }
        Some(Value::String(_)) | None => {}
        // OPA's Go code assumes a string here; report it as a header error.
        Some(_) => return Err("cty: must be a string".to_string()),
    }

    let payload = json_object(&payload)?;
    let signature = base64url_decode(token.signature)
        .map_err(|e| format!("JWT signature had invalid encoding: {e}"))?;
    Ok(Value::from(vec![
        header,
        payload,
        Value::from(hex::encode(signature)),
    ]))
}

/// Strips leading and trailing `"` and `'` (Go's `strings.Trim(p, "\"'")`).
fn trim_quotes(bytes: &[u8]) -> &[u8] {
    let is_quote = |b: &u8| *b == b'"' || *b == b'\'';
    let start = bytes
        .iter()
        .position(|b| !is_quote(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_quote(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// OPA's `extractJSONObject`: the bytes must be a JSON object (duplicate keys:
/// the last wins; invalid UTF-8 and lone surrogate escapes in strings become
/// U+FFFD, as with Go's decoder).
fn json_object(bytes: &[u8]) -> Result<Value, String> {
    let value =
        Value::from_json_str(&go_json_text(bytes)).map_err(|e| format!("invalid JSON: {e}"))?;
    match value {
        Value::Object(_) => Ok(value),
        _ => Err("decoded JSON type was not an Object".to_string()),
    }
}

/// Field `name` of a JSON object value.
fn object_field<'v>(object: &'v Value, name: &str) -> Option<&'v Value> {
    match object {
        Value::Object(fields) => fields.get(&Value::from(name)),
        _ => None,
    }
}

/// The header parameters OPA's `parseTokenHeader` validates and keeps.
struct TokenHeader {
    alg: String,
    kid: String,
}

/// OPA's `parseTokenHeader`: `alg`, `kid`, `typ` and `cty` must be strings and
/// `crit` a non-empty list of strings (parsing stops at its first non-string).
fn parse_token_header(header: &Value) -> Result<TokenHeader, String> {
    let mut parsed = TokenHeader {
        alg: String::new(),
        kid: String::new(),
    };
    let Value::Object(fields) = header else {
        return Err("decoded JSON type was not an Object".to_string());
    };
    for (key, value) in fields.iter() {
        let Value::String(key) = key else { continue };
        match key.as_ref() {
            name @ ("alg" | "kid" | "typ" | "cty") => {
                let Value::String(text) = value else {
                    return Err(format!("{name}: must be a string"));
                };
                match name {
                    "alg" => parsed.alg = text.to_string(),
                    "kid" => parsed.kid = text.to_string(),
                    _ => {}
                }
            }
            "crit" => {
                let Value::Array(items) = value else {
                    return Err("crit: must be a list".to_string());
                };
                let names = items
                    .iter()
                    .take_while(|item| matches!(item, Value::String(_)))
                    .count();
                if names == 0 {
                    return Err("crit: must be a nonempty list".to_string());
                }
            }
            _ => {}
        }
    }
    Ok(parsed)
}

/// Checks one signature with one key (false when the key cannot be used).
type Verifier = fn(&PublicKey, &[u8], &[u8]) -> bool;

/// OPA's `builtinJWTVerify`, with its order of checks (and so of errors).
fn verify_asymmetric(name: &str, args: &[Value], verify: Verifier) -> anyhow::Result<Value> {
    let token = string_operand(name, args, 1)?;
    let token = Token::split(token.as_bytes()).map_err(|e| builtin_error(name, e))?;
    let certificate = string_operand(name, args, 2)?;
    let keys = parse_keys(certificate).map_err(|e| builtin_error(name, e))?;
    let signature = base64url_decode(token.signature).map_err(|e| builtin_error(name, e))?;
    let header = token.decoded_header().map_err(|e| builtin_error(name, e))?;
    let header = parse_token_header(&header).map_err(|e| builtin_error(name, e))?;
    let message = token.signing_input();
    Ok(Value::from(verify_with_keys(
        &keys, &header, &message, &signature, verify,
    )))
}

/// Key selection as in OPA: a key whose `kid` matches the header's is the only
/// one tried; otherwise any key without `alg` or with the header's `alg`.
fn verify_with_keys(
    keys: &[VerificationKey],
    header: &TokenHeader,
    message: &[u8],
    signature: &[u8],
    verify: Verifier,
) -> bool {
    if !header.kid.is_empty() {
        if let Some(key) = keys.iter().find(|key| key.kid == header.kid) {
            return verify(&key.key, message, signature);
        }
    }
    keys.iter()
        .filter(|key| key.alg.is_empty() || key.alg == header.alg)
        .any(|key| verify(&key.key, message, signature))
}

/// RSASSA-PKCS1-v1_5 with SHA-256.
fn verify_rs256_with(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    match key {
        PublicKey::Rsa(key) => matches!(
            jwt_crypto::verify(
                &URL_SAFE_NO_PAD.encode(signature),
                message,
                key,
                Algorithm::RS256
            ),
            Ok(true)
        ),
        PublicKey::EcP256(_) | PublicKey::Unusable => false,
    }
}

/// ECDSA P-256 with SHA-256; the signature is `r || s` split in the middle,
/// as OPA reads it (each half a big-endian integer).
fn verify_es256_with(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    match key {
        PublicKey::EcP256(key) => {
            let Some(signature) = fixed_width_ecdsa_signature(signature, 32) else {
                return false;
            };
            matches!(
                jwt_crypto::verify(
                    &URL_SAFE_NO_PAD.encode(signature),
                    message,
                    key,
                    Algorithm::ES256
                ),
                Ok(true)
            )
        }
        PublicKey::Rsa(_) | PublicKey::Unusable => false,
    }
}

/// OPA splits the signature into `r` and `s` halves (`len / 2`) and reads each
/// as an integer; this re-encodes them at the curve's width, or `None` when an
/// integer cannot fit (such a signature never verifies).
fn fixed_width_ecdsa_signature(signature: &[u8], width: usize) -> Option<Vec<u8>> {
    let (r, s) = signature.split_at(signature.len() / 2);
    let mut fixed = Vec::with_capacity(2 * width);
    for half in [r, s] {
        let start = half.iter().position(|&b| b != 0).unwrap_or(half.len());
        let magnitude = half.get(start..)?;
        let padding = width.checked_sub(magnitude.len())?;
        fixed.resize(fixed.len() + padding, 0);
        fixed.extend_from_slice(magnitude);
    }
    Some(fixed)
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::test_support::{eval, eval_err, input};
    use super::*;
    use jsonwebtoken::EncodingKey;

    /// jwt.io's HS256 example token, signed with `your-256-bit-secret`.
    const JWT_IO_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    // Test key material generated for these tests with openssl (2048-bit RSA,
    // P-256), together with self-signed certificates valid until 2126.
    const RSA1_PRIVATE: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAz5bZeA82QJwZvASIMMlTlssMa3bAxRI98H76Pf3GnypgfkID
ucQ9hpl5EFUQxBAnANtkYbDkT1F7FUYIcRi0YPfOakOxM/mc1eQGJPbHbbrQPxRC
pmryCD1LipomQRlTALuF9G1ZxTaY+FobnY0WoPJeeIhn1wItjMgRCex2+WgqSGrz
SpvTcERaQPko5WjiKE23g11pHAWpNbmFSA1+HioXNjUPPebPdvKTIE6bqzUYCWI7
Ua/YxgWrRcCt3toA+Vzwxrogd44+w2jru/ORPPKqCKoVlq0yQAJwxZ7dr0ME01Ds
j7ZBfHukN6r27MybPRA3MGvO7WslwT1dzdXk6wIDAQABAoIBAAnaqFIZrsKcZmBV
er2OIQisdNd5GKeCOSx8apacwFv34AK+UXz1AtKr4GJVF2mnNqLEx1wX0I6vWH9n
BqmPuahMuyCyO+wysi45F82TZV4hGxeTd6J8uyaG+loG/T/j2tvTCwXSVwuUjuhj
JqJw+x0CxFdGal97e/wN1zk4X2FxaXTdMJmUNmhAy3bChk6gUqRzskWxlx9WO/om
RE9tGVQBRPZ1N09k6B12t/a/knqirXilA9VLpgpADhwa/R+3/Z1HScoP1h+U9oo1
RXUndtlH7kMXylj/BSGQPrKb42HpYoz+cKMgrbMpxnQT6YVD+wtM6jd8myeH0/vQ
yyG0frECgYEA+QGuPXh1G/33gpcPjfsKmUxamsrZifZWvJC+9mFII1K0M6NgrsQE
iZuJwMzVeweUKBt8RJREviM4yFSIJKgDZqd2vs20PDzgfP7AajNMUABOgkwLTMw/
EpxH4xZfJXi6WTZTgnrVeZX/A1oSIfISuKh/hHNG3P8VbDyNvILxGPMCgYEA1Wti
e9OQya0es6huqQ6GAgb1cGBQIJKap9HOVNS3TbPLY7gshu/eMuZzJ574U7ks5sTL
1slPgn4XfiAeBSo9G2iebxWbpEGqiaIczq+AAL5Ypt7uKBk7gW7JQvp+q83Mr14K
MxDm93notHZgf01ijSQ+nSVrKrLshHiwtEKdAikCgYEAw9z8j0GW7GPCMqhcBdQ3
rAmRIzz4DDsGUuCQNQCkW5SMRin2vMFWyF7d5he4vENj2IB2KQNvZxgRbBKB3EOE
GVUUZFUttkw0UF2aQG8FUdBL8NWb9daarirbqNZKFRF3kwDWg0XXcQH5S0uoA6eD
7lgrpaV/Ugobcb3XxzZAKt0CgYAxEmDxseK/zJOboaXYL2O2wZzbuvmRk8QFxGMZ
9FM1hZrFkgqC+FJyB7UArjfRIGnnoeZwu5cRnSaPtJjSfTTRwYt0ZVaFPSgWP3U6
PPZEtX+y1t2R0MNy7mNOiERqAocG56uWtFM3IgvUusdTXhrD80qGXZ03ky55Azs2
J37siQKBgQCRz10KquzwgwD1hvBT3CMBy+tV/4PVfNvsf3sPcORS08L7PbayfxVj
UIUI5w+KMGoYKa4D+azvX7+s69j1NqH3DXXnuaK3J6A6zWIExRMQN33Q6k576gca
4XZvBRF1A3+d/1rEK/SOKE6RjUp4L8SPP0cgXcZGyGF5oFcaQL6tRg==
-----END RSA PRIVATE KEY-----
";
    const RSA1_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAz5bZeA82QJwZvASIMMlT
lssMa3bAxRI98H76Pf3GnypgfkIDucQ9hpl5EFUQxBAnANtkYbDkT1F7FUYIcRi0
YPfOakOxM/mc1eQGJPbHbbrQPxRCpmryCD1LipomQRlTALuF9G1ZxTaY+FobnY0W
oPJeeIhn1wItjMgRCex2+WgqSGrzSpvTcERaQPko5WjiKE23g11pHAWpNbmFSA1+
HioXNjUPPebPdvKTIE6bqzUYCWI7Ua/YxgWrRcCt3toA+Vzwxrogd44+w2jru/OR
PPKqCKoVlq0yQAJwxZ7dr0ME01Dsj7ZBfHukN6r27MybPRA3MGvO7WslwT1dzdXk
6wIDAQAB
-----END PUBLIC KEY-----
";
    const RSA1_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIDFTCCAf2gAwIBAgIUbmIgg34fOp9cgTyvlUna8BLk80cwDQYJKoZIhvcNAQEL
BQAwGTEXMBUGA1UEAwwOdGVuZXQtdGVzdC1yc2EwIBcNMjYxMTIzMDkyNzA4WhgP
MjEyNjEwMzAwOTI3MDhaMBkxFzAVBgNVBAMMDnRlbmV0LXRlc3QtcnNhMIIBIjAN
BgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAz5bZeA82QJwZvASIMMlTlssMa3bA
xRI98H76Pf3GnypgfkIDucQ9hpl5EFUQxBAnANtkYbDkT1F7FUYIcRi0YPfOakOx
M/mc1eQGJPbHbbrQPxRCpmryCD1LipomQRlTALuF9G1ZxTaY+FobnY0WoPJeeIhn
1wItjMgRCex2+WgqSGrzSpvTcERaQPko5WjiKE23g11pHAWpNbmFSA1+HioXNjUP
PebPdvKTIE6bqzUYCWI7Ua/YxgWrRcCt3toA+Vzwxrogd44+w2jru/ORPPKqCKoV
lq0yQAJwxZ7dr0ME01Dsj7ZBfHukN6r27MybPRA3MGvO7WslwT1dzdXk6wIDAQAB
o1MwUTAdBgNVHQ4EFgQU/iCOg2BX9gi6lPkcVBWkwk3AizIwHwYDVR0jBBgwFoAU
/iCOg2BX9gi6lPkcVBWkwk3AizIwDwYDVR0TAQH/BAUwAwEB/zANBgkqhkiG9w0B
AQsFAAOCAQEAnLx7DxdCfwKvlS38yif8Mulx8swFHVKifgAbplY8z8ozU6yVPwd6
0wg1liNY9otyXgp4rLIrbHgqMksF184Yk4ndrWI2UABAXnp5AVDJdJg3G56juIyn
5wRH8A/D1LgzQdlMVjEFn72k5+0twkPEpoph8XrzOyOnnhs1wenO6KF7vwBYqTWP
+ii8SBefw/qirIjD4dBouby8PbM7QdmXQIBo/pJ0YCkY6jvwOPcrSaXoKB/SKih6
NyrGB/YgzM75ubR5Y5tAxKyWXnnpBkigbSbGqcats6Pp7H0JgmWMjm81RFwYVjFM
DYo9Ss1fzwhLAmhooXlx0CQgsWYTUMGxPQ==
-----END CERTIFICATE-----
";
    const RSA1_N: &str = "z5bZeA82QJwZvASIMMlTlssMa3bAxRI98H76Pf3GnypgfkIDucQ9hpl5EFUQxBAnANtkYbDkT1F7FUYIcRi0YPfOakOxM_mc1eQGJPbHbbrQPxRCpmryCD1LipomQRlTALuF9G1ZxTaY-FobnY0WoPJeeIhn1wItjMgRCex2-WgqSGrzSpvTcERaQPko5WjiKE23g11pHAWpNbmFSA1-HioXNjUPPebPdvKTIE6bqzUYCWI7Ua_YxgWrRcCt3toA-Vzwxrogd44-w2jru_ORPPKqCKoVlq0yQAJwxZ7dr0ME01Dsj7ZBfHukN6r27MybPRA3MGvO7WslwT1dzdXk6w";
    /// A different RSA key: valid, but not the signer.
    const RSA2_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA/GYWUtpVnFvWFtlGY/II
giq4NzwarGdzltvGpAxzPHRUJ1CZgoyR/HgfQidnq6CL9kZnxu/4Kp3Z6BAAT9wj
TB9GcgqMDGNSOmq0EkDHWwZ9fswPQdhNeItWU9SOrEuUqVVSZdx1f/jHmB0C/9/X
INjiv0Zcr9DzQUuY2Zji3Z3DLGtXdCS8eNEln19DVjKuHYN+AwxcbrUFK3zJaera
nLi7WV9WweJWotL+dnaxAvO8RFFzR1sbRsNnK36A9g4llPGY2e4K6UEJmi6SLdAx
ZCo8XUgpAIGW9q1/CIKTMsq6IIj0DbiBCcEuxyOgXFAVygfh+bUr4O32T9lVgP0O
XwIDAQAB
-----END PUBLIC KEY-----
";
    const EC1_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNXb2oicvWPdA8d+u
kTzP37ksPIOQk5d614Ox6mN9j3+hRANCAASja4Uku08VY5ZdyRg0h04ntnK0zvPK
xAleLx456YFBPzSSLDz+VRAjHHDPR+puTZKIAPx7QR9zfZij+6T+aDZZ
-----END PRIVATE KEY-----
";
    const EC1_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEo2uFJLtPFWOWXckYNIdOJ7ZytM7z
ysQJXi8eOemBQT80kiw8/lUQIxxwz0fqbk2SiAD8e0Efc32Yo/uk/mg2WQ==
-----END PUBLIC KEY-----
";
    const EC1_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIBhzCCAS2gAwIBAgIUf14Vi8ybv2qe9VL51mH2VgbEypwwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNdGVuZXQtdGVzdC1lYzAgFw0yNjExMjMwOTI3MDhaGA8yMTI2
MTAzMDA5MjcwOFowGDEWMBQGA1UEAwwNdGVuZXQtdGVzdC1lYzBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABKNrhSS7TxVjll3JGDSHTie2crTO88rECV4vHjnpgUE/
NJIsPP5VECMccM9H6m5NkogA/HtBH3N9mKP7pP5oNlmjUzBRMB0GA1UdDgQWBBQ1
5L/NhqDfF+NbOZsDM9DEDKYKAjAfBgNVHSMEGDAWgBQ15L/NhqDfF+NbOZsDM9DE
DKYKAjAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDTqK1HA5M0
5JkW77k3Bfx39g0N4rIsvJSk3a3zpdDLiAIgVCGHSGt97HnGFZfnFYltG/MY5Irv
20m8P34++qe+ckI=
-----END CERTIFICATE-----
";
    const EC1_X: &str = "o2uFJLtPFWOWXckYNIdOJ7ZytM7zysQJXi8eOemBQT8";
    const EC1_Y: &str = "NJIsPP5VECMccM9H6m5NkogA_HtBH3N9mKP7pP5oNlk";
    /// A different P-256 key: valid, but not the signer.
    const EC2_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE704S6+UsNpnN5RDLXtbKZw9Z/NYs
s+GPT1l5NQmmTde5JMR8utxLokz6p7zltfG/GCBqZtMWEbJOhdBBVnpv9w==
-----END PUBLIC KEY-----
";
    const EC2_X: &str = "704S6-UsNpnN5RDLXtbKZw9Z_NYss-GPT1l5NQmmTdc";
    const EC2_Y: &str = "uSTEfLrcS6JM-qe85bXxvxggambTFhGyToXQQVZ6b_c";

    // Vectors from OPA's own tests (topdown/tokens_test.go), which OPA verifies as true.
    /// RS256 token signed by the 4096-bit key in [`OPA_RS256_CERTIFICATE`].
    const OPA_RS256_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJmb28iOiJiYXIiLCJuYmYiOjE0NDQ0Nzg0MDB9.N0-EVdv5pvUfZYFRzMGnsWpNLHgwMEgViPwpuLBEtt32682OgnOK-N4X-2gpQEjQIbUr0IFym8YsRQU9GZvqQP72Sd6yOQNGSNeE74DpUZCAjBa9SBIb1UlD2MxZB-e7YJiEyo7pZhimaqorXrgorlaXYGMvsCFWDYmBLzGaGYaGJyEpkZHzHb7ujsDrJJjdEtDV3kh13gTHzLPvqnoXuuxelXye_8LPIhvgDy52gT4shUEso71pJCMv_IqAR19ljVE17lJzoi6VhRn6ReNUE-yg4KfCO4Ypnuu-mcQr7XtmSYoWkX72L5UQ-EyWkoz-w0SYKoJTPzHkTL2thYStksVpeNkGuck25aUdtrQgmPbao0QOWBFlkg03e6mPCD2-aXOt1ofth9mZGjxWMHX-mUqHaNmaWM3WhRztJ73hWrmB1YOdYQtOEHejfvR_td5tqIw4W6ufRy2ScOypGQe7kNaUZxpgxZ1927ZGNiQgawIOAQwXOcFx1JNSEIeg55-cYJrHPxsXGOB9ZxW-qnswmFJp474iUVXjzGhLexJDXBwvKGs_O3JFjMsvyV9_hm7bnQU0vG_HgPYs5i9VOHRMujq1vFBcm52TFVOBGdWaGfb9RRdLLYvVkJLk0Poh19rsCWb7-Vc3mAaGGpvuk4Wv-PnGGNC-V-FQqIbijHDrn_g";
    const OPA_RS256_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIFiDCCA3ACCQCGV6XsfG/oRTANBgkqhkiG9w0BAQUFADCBhTELMAkGA1UEBhMC
VVMxEzARBgNVBAgMCkNhbGlmb3JuaWExFTATBgNVBAcMDFJlZHdvb2QgQ2l0eTEO
MAwGA1UECgwFU3R5cmExDDAKBgNVBAsMA0RldjESMBAGA1UEAwwJbG9jYWxob3N0
MRgwFgYJKoZIhvcNAQkBFglhc2hAc3R5cmEwHhcNMTgwMzA2MDAxNTU5WhcNMTkw
MzA2MDAxNTU5WjCBhTELMAkGA1UEBhMCVVMxEzARBgNVBAgMCkNhbGlmb3JuaWEx
FTATBgNVBAcMDFJlZHdvb2QgQ2l0eTEOMAwGA1UECgwFU3R5cmExDDAKBgNVBAsM
A0RldjESMBAGA1UEAwwJbG9jYWxob3N0MRgwFgYJKoZIhvcNAQkBFglhc2hAc3R5
cmEwggIiMA0GCSqGSIb3DQEBAQUAA4ICDwAwggIKAoICAQDucnAwTRA0zqDQ671L
KWOVwhjhycFyzyhZUd7vhsnslOBiYM6TYIDXhETfAk2RQoRE/9xF16woMD8FOglc
lSuhi+GNfFRif6LfArm84ZFj1ZS1MX2logikhXhRJQ7AOHe5+ED0re3KH5lWyqfz
R6bQuPYwTQSBJy6Tq7T9RiOM29yadCX64OaCEbzEFmHtNlbb5px4zCVvgskg/fpV
GGCMpAYjGDatbxE5eAloVs1EJuI5RSqWr1JRm6EejxM04BFdfGn1HgWrsKXtlvBa
00/AC0zXL5n6LK7+L3WbRguVTZcE4Yu70gDwhmM+VsKeT9LKClX003BNj0NJDRB9
dw9MaWxsXDNHNOWEfbnASXeP7ZRv3D81ftij6P8SL14ZnxyrRty8TAN4ij3wd41l
astRQCtrJFi+HzO606XOp6HDzBoWT0DGl8Sn2hZ6RLPyBnD04vvvcSGeCVjHGOQ8
c3OTroK58u5MR/q4T00sTkeeVAxuKoEWKsjIBYYrJTe/a2mEq9yiDGbPNYDnWnQZ
jSUZm+Us23Y2sm/agZ5zKXcEuoecGL6sYCixr/xeB9BPxEiTthH+0M8OY99qpIhz
Smj41wdgQfzZi/6B8pIr77V/KywYKxJEmzw8Uy48aC/rZ8WsT8QdKwclo1aiNJhx
79OvGbZFoeHD/w7igpx+ttpF/wIDAQABMA0GCSqGSIb3DQEBBQUAA4ICAQC3wWUs
fXz+aSfFVz+O3mLFkr65NIgazbGAySgMgMNVuadheIkPL4k21atyflfpx4pg9FGv
40vWCLMajpvynfz4oqah0BACnpqzQ8Dx6HYkmlXK8fLB+WtPrZBeUEsGPKuJYt4M
d5TeY3VpNgWOPXmnE4lvxHZqh/8OwmOpjBfC9E3e2eqgwiwOkXnMaZEPgKP6JiWk
EFaQ9jgMQqJZnNcv6NmiqqsZeI0/NNjBpkmEWQl+wLegVusHiQ0FMBMQ0taEo21r
zUwHoNJR3h3wgGQiKxKOH1FUKHBV7hEqObLraD/hfG5xYucJfvvAAP1iH0ycPs+9
hSccrn5/HY1c9AZnW8Kh7atp/wFP+sHjtECWK/lUmXfhASS293hprCpJk2n9pkmR
ziXKJhjwkxlC8NcHuiVfaxdfDa4+1Qta2gK7GEypbvLoEmIt/dsYUsxUg84lwJJ9
nyC/pfZ5a8wFSf186JeVH4kHd3bnkzlQz460HndOMSJ/Xi1wSfuZlOVupFf8TVKl
p4j28MTLH2Wqx50NssKThdaX6hoCiMqreYa+EVaN1f/cIGQxZSCzdzMCKqdB8lKB
3Eax+5zsIa/UyPwGxZcyXBRHAlz5ZnkjuRxInyiMkBWWz3IZXjTe6Fq8BNd2UWNc
w35+2nO5n1LKXgR2+nzhZUOk8TPsi9WUywRluQ==
-----END CERTIFICATE-----";
    /// ES256 token and the single JWK (not a set) OPA verifies it with.
    const OPA_ES256_TOKEN: &str = "eyJ0eXAiOiAiSldUIiwgImFsZyI6ICJFUzI1NiJ9.eyJuYmYiOiAxNDQ0NDc4NDAwLCAiaXNzIjogInh4eCJ9.lArczfN-pIL8oUU-7PU83u-zfXougXBZj6drFeKFsPEoVhy9WAyiZlRshYqjTSXdaw8yw2L-ovt4zTUZb2PWMg";
    const OPA_ES256_JWK: &str = r#"{"kty":"EC","crv":"P-256","x":"z8J91ghFy5o6f2xZ4g8LsLH7u2wEpT2ntj8loahnlsE","y":"7bdeXLH61KrGWRdh7ilnbcGQACxykaPKfmBccTHIOUo"}"#;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A compact JWS over the given header and payload JSON texts.
    fn sign(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let signature = jwt_crypto::sign(input.as_bytes(), key, alg).expect("sign");
        format!("{input}.{signature}")
    }

    fn rs256_token(header: &str, payload: &str) -> String {
        let key = EncodingKey::from_rsa_pem(RSA1_PRIVATE.as_bytes()).expect("rsa key");
        sign(header, payload, &key, Algorithm::RS256)
    }

    fn es256_token(header: &str, payload: &str) -> String {
        let key = EncodingKey::from_ec_pem(EC1_PRIVATE.as_bytes()).expect("ec key");
        sign(header, payload, &key, Algorithm::ES256)
    }

    /// Replaces the payload segment, keeping header and signature.
    fn with_payload(token: &str, payload: &str) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        format!("{}.{}.{}", parts[0], b64(payload.as_bytes()), parts[2])
    }

    fn call(expr: &str, fields: &[(&str, &str)]) -> Value {
        eval(expr, input(fields)).unwrap_or_else(|e| panic!("{expr}: {e:#}"))
    }

    fn verify(builtin: &str, token: &str, key: &str) -> Value {
        call(
            &format!("io.jwt.{builtin}(input.token, input.key)"),
            &[("token", token), ("key", key)],
        )
    }

    fn verify_err(builtin: &str, token: &str, key: &str) -> String {
        eval_err(
            &format!("io.jwt.{builtin}(input.token, input.key)"),
            input(&[("token", token), ("key", key)]),
        )
    }

    fn decode_of(token: &str) -> Value {
        call("io.jwt.decode(input.token)", &[("token", token)])
    }

    fn decode_err(token: &str) -> String {
        eval_err("io.jwt.decode(input.token)", input(&[("token", token)]))
    }

    fn json(text: &str) -> Value {
        Value::from_json_str(text).expect("json")
    }

    // ----- io.jwt.decode -------------------------------------------------

    #[test]
    fn decode_jwt_io_example() {
        assert_eq!(
            decode_of(JWT_IO_TOKEN),
            json(
                r#"[{"alg":"HS256","typ":"JWT"},
                    {"sub":"1234567890","name":"John Doe","iat":1516239022},
                    "49f94ac7044948c78a285d904f87f0a4c7897f7e8f3a4eb2255fda750b2cc397"]"#
            )
        );
    }

    #[test]
    fn decode_opa_test_cases() {
        // OPA test jwtbuiltins/simple-non-registered.
        assert_eq!(
            decode_of("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJuZXciOiJJIGFtIGEgdXNlciBjcmVhdGVkIGZpZWxkIiwiaXNzIjoib3BhIn0.6UmjsclVDGD9jcmX_F8RJzVgHtUZuLu2pxkF_UEQCrE"),
            json(r#"[{"alg":"HS256","typ":"JWT"},{"iss":"opa","new":"I am a user created field"},"e949a3b1c9550c60fd8dc997fc5f112735601ed519b8bbb6a71905fd41100ab1"]"#)
        );
        // OPA test jwtbuiltins/complex-values.
        assert_eq!(
            decode_of("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwIiwiaXNzIjoib3BhIiwiZXh0Ijp7ImFiYyI6IjEyMyIsImNiYSI6WzEwLCIxMCJdfX0.IIxF-uJ6i4K5Dj71xNLnUeqB9jmujl6ujTInhii1PxE"),
            json(r#"[{"alg":"HS256","typ":"JWT"},{"sub":"0","iss":"opa","ext":{"abc":"123","cba":[10,"10"]}},"208c45fae27a8b82b90e3ef5c4d2e751ea81f639ae8e5eae8d32278628b53f11"]"#)
        );
        // OPA test jwtbuiltins/double-nested: cty "JWT" twice, quoted payloads.
        assert_eq!(
            decode_of("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImN0eSI6IkpXVCJ9.ImV5SmhiR2NpT2lKSVV6STFOaUlzSW5SNWNDSTZJa3BYVkNJc0ltTjBlU0k2SWtwWFZDSjkuSW1WNVNtaGlSMk5wVDJsS1NWVjZTVEZPYVVselNXNVNOV05EU1RaSmEzQllWa05LT1M1bGVVcDZaRmRKYVU5cFNYZEphWGRwWVZoT2VrbHFiMmxpTTBKb1NXNHdMbGh0Vm05TWIwaEpNM0I0VFhSTlQxOVhVazlPVFZOS2VrZFZSRkE1Y0VScWVUaEtjREJmZEdSU1dGa2kuOFcwcXg0bUx4c2xtWmw3d0VNVVdCeEg3dFNUM1hzRXVXWHhlc1hxRm5SSSI.U8rwnGAJ-bJoGrAYKEzNtbJQWd3x1eW0Y25nLKHDCgo"),
            json(r#"[{"alg":"HS256","typ":"JWT"},{"iss":"opa","sub":"0"},"5e65682e81c8de9c4cb4c3bf59138d3122731940cff690e3cbc269d3fb5d4576"]"#)
        );
    }

    #[test]
    fn decode_errors_match_opa_messages() {
        // OPA tests jwtbuiltins/no-support-jwe, no-periods, bad-header-encoding,
        // bad-payload-encoding (strict builtin errors).
        for (token, message) in [
            (
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImVuYyI6ImJsYWgifQ.eyJuZXciOiJJIGFtIGEgdXNlciBjcmVhdGVkIGZpZWxkIiwiaXNzIjoib3BhIn0.McGUb1e-UviZKy6UyQErNNQzEUgeV25Buwk7OHOa8U8",
                "io.jwt.decode: JWT is a JWE object, which is not supported",
            ),
            (
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9eyJzdWIiOiIwIiwiaXNzIjoib3BhIn0XmVoLoHI3pxMtMO_WRONMSJzGUDP9pDjy8Jp0_tdRXY",
                "io.jwt.decode: encoded JWT had no period separators",
            ),
            (
                "eyJhbGciOiJIU^%zI1NiI+sInR5cCI6IkpXVCJ9.eyJzdWIiOiIwIiwiaXNzIjoib3BhIn0.XmVoLoHI3pxMtMO_WRONMSJzGUDP9pDjy8Jp0_tdRXY",
                "io.jwt.decode: JWT header had invalid encoding: illegal base64 data at input byte 13",
            ),
            (
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwIiwia/XNzIjoib3BhIn0.XmVoLoHI3pxMtMO_WRONMSJzGUDP9pDjy8Jp0_tdRXY",
                "io.jwt.decode: JWT payload had invalid encoding: illegal base64 data at input byte 17",
            ),
        ] {
            let err = decode_err(token);
            assert!(err.contains(message), "{token}: {err}");
        }
    }

    #[test]
    fn decode_structural_errors() {
        let header = b64(br#"{"alg":"none"}"#);
        let payload = b64(br#"{"a":1}"#);
        for (token, message) in [
            (
                "a.b".to_string(),
                "encoded JWT must have 3 sections, found 2",
            ),
            (
                "a.b.c.d".to_string(),
                "encoded JWT must have 3 sections, found 4",
            ),
            (
                format!("{}.{payload}.", b64(b"[1]")),
                "bad JWT header: decoded JSON type was not an Object",
            ),
            (
                format!("{}.{payload}.", b64(b"{")),
                "bad JWT header: invalid JSON: ",
            ),
            (
                format!("{header}.{}.", b64(b"\"s\"")),
                "decoded JSON type was not an Object",
            ),
            (format!("{header}.{}.", b64(b"{} x")), "invalid JSON: "),
            (
                format!("{header}.{payload}.a"),
                "JWT signature had invalid encoding: illegal base64url string: a",
            ),
            (
                format!("{header}.{payload}.a+bc"),
                "JWT signature had invalid encoding: illegal base64 data at input byte 1",
            ),
            (
                format!("{}.{payload}.", b64(br#"{"cty":1}"#)),
                "cty: must be a string",
            ),
            (
                format!("{}.{}.", b64(br#"{"cty":"JWT"}"#), b64(b"\"not-a-token\"")),
                "encoded JWT had no period separators",
            ),
        ] {
            let err = decode_err(&token);
            assert!(
                err.contains(&format!("io.jwt.decode: {message}")),
                "{token}: {err}"
            );
        }
    }

    #[test]
    fn decode_lenient_inputs_like_opa() {
        // Empty signature (unsecured JWT), padded segments, duplicate keys
        // (the last wins), invalid UTF-8 and lone surrogates in strings (U+FFFD),
        // case-sensitive cty.
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","cty":"jwt"}"#),
            base64::engine::general_purpose::URL_SAFE
                .encode(b"{\"a\":1,\"a\":2,\"s\":\"\xff\",\"t\":\"\\ud800\"}")
        );
        assert_eq!(
            decode_of(&token),
            json(r#"[{"alg":"none","cty":"jwt"},{"a":2,"s":"\uFFFD","t":"\uFFFD"},""]"#)
        );
    }

    #[test]
    fn decode_type_error() {
        let err = eval_err("io.jwt.decode(input.t)", json(r#"{"t": {"a": 1}}"#));
        assert!(
            err.contains("io.jwt.decode: operand 1 must be string but got object"),
            "{err}"
        );
    }

    // ----- io.jwt.verify_hs256 -------------------------------------------

    #[test]
    fn verify_hs256_jwt_io_example() {
        assert_eq!(
            verify("verify_hs256", JWT_IO_TOKEN, "your-256-bit-secret"),
            Value::from(true)
        );
        assert_eq!(
            verify("verify_hs256", JWT_IO_TOKEN, "wrong-secret"),
            Value::from(false)
        );
        assert_eq!(verify("verify_hs256", JWT_IO_TOKEN, ""), Value::from(false));
        let tampered = with_payload(JWT_IO_TOKEN, r#"{"sub":"1234567890","name":"Jane Doe"}"#);
        assert_eq!(
            verify("verify_hs256", &tampered, "your-256-bit-secret"),
            Value::from(false)
        );
    }

    #[test]
    fn verify_hs256_opa_vector() {
        // From OPA's TestBuiltinJWTVerify_TokenCache: true with "secret".
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyIjoiYWxpY2UiLCJhenAiOiJhbGljZSIsInN1Ym9yZGluYXRlcyI6W10sImhyIjpmYWxzZX0.rz3jTY033z-NrKfwrK89_dcLF7TN4gwCMj-fVBDyLoM";
        assert_eq!(verify("verify_hs256", token, "secret"), Value::from(true));
        assert_eq!(
            verify("verify_hs256", token, "bad_secret"),
            Value::from(false)
        );
    }

    #[test]
    fn verify_hs256_checks_only_the_mac() {
        // OPA does not decode the header for HS256: any bytes are signed as-is.
        let key = EncodingKey::from_secret(b"k");
        let input = "not-base64!.also not json";
        let signature = jwt_crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap();
        let token = format!("{input}.{signature}");
        assert_eq!(verify("verify_hs256", &token, "k"), Value::from(true));
        // Truncated or empty signatures are false, not errors.
        let short = format!("{input}.{}", &signature[..10]);
        assert_eq!(verify("verify_hs256", &short, "k"), Value::from(false));
        assert_eq!(
            verify("verify_hs256", &format!("{input}."), "k"),
            Value::from(false)
        );
    }

    #[test]
    fn verify_hs256_errors() {
        assert!(verify_err("verify_hs256", "abc", "k")
            .contains("io.jwt.verify_hs256: encoded JWT had no period separators"));
        assert!(verify_err("verify_hs256", "a.b.c!", "k")
            .contains("io.jwt.verify_hs256: illegal base64 data at input byte 1"));
        let err = eval_err("io.jwt.verify_hs256(\"a.b.c\", 1)", input(&[]));
        assert!(
            err.contains("io.jwt.verify_hs256: operand 2 must be string but got number"),
            "{err}"
        );
        // Operand types are checked before the token's structure, as in OPA.
        let err = eval_err("io.jwt.verify_hs256(\"abc\", 1)", input(&[]));
        assert!(
            err.contains("operand 2 must be string but got number"),
            "{err}"
        );
    }

    // ----- io.jwt.verify_rs256 -------------------------------------------

    #[test]
    fn verify_rs256_pem_certificate_and_jwk_forms() {
        let token = rs256_token(r#"{"alg":"RS256","typ":"JWT"}"#, r#"{"sub":"alice"}"#);
        let jwk = format!(r#"{{"kty":"RSA","n":"{RSA1_N}","e":"AQAB"}}"#);
        let jwks = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{EC2_X}","y":"{EC2_Y}"}},
                         {{"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":"{RSA1_N}","e":"AQAB"}}]}}"#
        );
        for key in [RSA1_PUBLIC, RSA1_CERTIFICATE, jwk.as_str(), jwks.as_str()] {
            assert_eq!(
                verify("verify_rs256", &token, key),
                Value::from(true),
                "{key}"
            );
        }
        // Wrong key, wrong key type, tampered payload: false.
        assert_eq!(
            verify("verify_rs256", &token, RSA2_PUBLIC),
            Value::from(false)
        );
        assert_eq!(
            verify("verify_rs256", &token, EC1_PUBLIC),
            Value::from(false)
        );
        let tampered = with_payload(&token, r#"{"sub":"mallory"}"#);
        assert_eq!(
            verify("verify_rs256", &tampered, RSA1_PUBLIC),
            Value::from(false)
        );
        // The signature is checked, claims are not: an expired token verifies.
        let expired = rs256_token(r#"{"alg":"RS256"}"#, r#"{"exp":1,"nbf":99999999999}"#);
        assert_eq!(
            verify("verify_rs256", &expired, RSA1_PUBLIC),
            Value::from(true)
        );
    }

    #[test]
    fn verify_rs256_opa_vector_with_4096_bit_certificate() {
        assert_eq!(
            verify("verify_rs256", OPA_RS256_TOKEN, OPA_RS256_CERTIFICATE),
            Value::from(true)
        );
        assert_eq!(
            verify("verify_rs256", OPA_RS256_TOKEN, RSA1_CERTIFICATE),
            Value::from(false)
        );
    }

    #[test]
    fn verify_rs256_jwks_key_selection_follows_opa() {
        let jwk = |extra: &str| format!(r#"{{"kty":"RSA","n":"{RSA1_N}","e":"AQAB"{extra}}}"#);
        let set = |keys: &[String]| format!(r#"{{"keys":[{}]}}"#, keys.join(","));

        // Header alg RS256 and a key declaring another alg: skipped, false.
        let token = rs256_token(r#"{"alg":"RS256"}"#, "{}");
        let only_ps256 = set(&[jwk(r#","alg":"PS256""#)]);
        assert_eq!(
            verify("verify_rs256", &token, &only_ps256),
            Value::from(false)
        );

        // A key whose alg OPA does not know is dropped from the set.
        let unknown_alg = set(&[jwk(r#","alg":"RSA-OAEP""#)]);
        assert_eq!(
            verify("verify_rs256", &token, &unknown_alg),
            Value::from(false)
        );

        // A matching kid selects that key only, even when its alg differs.
        let kid_token = rs256_token(r#"{"alg":"RS256","kid":"mine"}"#, "{}");
        let by_kid = set(&[jwk(r#","kid":"mine","alg":"PS256""#)]);
        assert_eq!(
            verify("verify_rs256", &kid_token, &by_kid),
            Value::from(true)
        );
        // ... and a kid match on the wrong key is final (no fallback).
        let wrong_kid = set(&[
            format!(r#"{{"kty":"EC","kid":"mine","crv":"P-256","x":"{EC2_X}","y":"{EC2_Y}"}}"#),
            jwk(""),
        ]);
        assert_eq!(
            verify("verify_rs256", &kid_token, &wrong_kid),
            Value::from(false)
        );
        // An unmatched kid falls back to every applicable key.
        let other_kid = set(&[jwk(r#","kid":"other""#)]);
        assert_eq!(
            verify("verify_rs256", &kid_token, &other_kid),
            Value::from(true)
        );

        // The header alg is not checked against RS256 for PEM keys (OPA).
        let odd_alg = rs256_token(r#"{"alg":"HS256"}"#, "{}");
        assert_eq!(
            verify("verify_rs256", &odd_alg, RSA1_PUBLIC),
            Value::from(true)
        );

        // A private JWK is not a public key for OPA's verifier: false.
        let private = jwk(r#","d":"AQAB""#);
        assert_eq!(verify("verify_rs256", &token, &private), Value::from(false));
    }

    #[test]
    fn verify_rs256_errors() {
        let token = rs256_token(r#"{"alg":"RS256"}"#, "{}");
        for (token, key, message) in [
            (
                "abc".to_string(),
                RSA1_PUBLIC,
                "encoded JWT had no period separators",
            ),
            (
                "a.b".to_string(),
                RSA1_PUBLIC,
                "encoded JWT must have 3 sections, found 2",
            ),
            (token.clone(), "secret", "failed to parse a JWK key (set): "),
            (
                token.clone(),
                "{\"kty\":\"RSA\"}",
                "failed to parse a JWK key (set): required field n is missing",
            ),
            (
                format!("{RSA1_PUBLIC}\n"),
                RSA1_PUBLIC,
                "encoded JWT had no period separators",
            ),
            (
                token.clone(),
                &format!("{RSA1_PUBLIC}\n"),
                "extra data after a PEM certificate block",
            ),
            (
                format!("{}!", token),
                RSA1_PUBLIC,
                "illegal base64 data at input byte",
            ),
            (
                format!("{}.{}.", b64(br#"{"alg":5}"#), b64(b"{}")),
                RSA1_PUBLIC,
                "alg: must be a string",
            ),
            (
                format!("{}.{}.", b64(br#"{"alg":"RS256","crit":[]}"#), b64(b"{}")),
                RSA1_PUBLIC,
                "crit: must be a nonempty list",
            ),
            (
                format!(
                    "{}.{}.",
                    b64(br#"{"alg":"RS256","enc":"A128GCM"}"#),
                    b64(b"{}")
                ),
                RSA1_PUBLIC,
                "JWT is a JWE object, which is not supported",
            ),
            (
                format!("{}.{}.", b64(b"[]"), b64(b"{}")),
                RSA1_PUBLIC,
                "bad JWT header: decoded JSON type was not an Object",
            ),
        ] {
            let err = verify_err("verify_rs256", &token, key);
            assert!(
                err.contains(&format!("io.jwt.verify_rs256: {message}")),
                "{token} / {key}: {err}"
            );
        }
        let err = eval_err("io.jwt.verify_rs256(\"a.b.c\", [])", input(&[]));
        assert!(
            err.contains("io.jwt.verify_rs256: operand 2 must be string but got array"),
            "{err}"
        );
        // The token's structure is checked before operand 2 (OPA's order).
        let err = eval_err("io.jwt.verify_rs256(\"abc\", [])", input(&[]));
        assert!(
            err.contains("encoded JWT had no period separators"),
            "{err}"
        );
    }

    #[test]
    fn verify_rs256_payload_is_not_decoded() {
        // Only the signature matters: a payload that is not JSON still verifies.
        let key = EncodingKey::from_rsa_pem(RSA1_PRIVATE.as_bytes()).unwrap();
        let input = format!("{}.not json at all", b64(br#"{"alg":"RS256"}"#));
        let signature = jwt_crypto::sign(input.as_bytes(), &key, Algorithm::RS256).unwrap();
        let token = format!("{input}.{signature}");
        assert_eq!(
            verify("verify_rs256", &token, RSA1_PUBLIC),
            Value::from(true)
        );
    }

    // ----- io.jwt.verify_es256 -------------------------------------------

    #[test]
    fn verify_es256_pem_certificate_and_jwk_forms() {
        let token = es256_token(r#"{"alg":"ES256","typ":"JWT"}"#, r#"{"sub":"alice"}"#);
        let jwk = format!(r#"{{"kty":"EC","crv":"P-256","x":"{EC1_X}","y":"{EC1_Y}"}}"#);
        let jwks = format!(
            r#"{{"keys":[{{"kty":"RSA","n":"{RSA1_N}","e":"AQAB"}},
                         {{"kty":"EC","crv":"P-256","x":"{EC2_X}","y":"{EC2_Y}","alg":"ES256"}},
                         {{"kty":"EC","crv":"P-256","x":"{EC1_X}","y":"{EC1_Y}","alg":"ES256"}}]}}"#
        );
        for key in [EC1_PUBLIC, EC1_CERTIFICATE, jwk.as_str(), jwks.as_str()] {
            assert_eq!(
                verify("verify_es256", &token, key),
                Value::from(true),
                "{key}"
            );
        }
        assert_eq!(
            verify("verify_es256", &token, EC2_PUBLIC),
            Value::from(false)
        );
        assert_eq!(
            verify("verify_es256", &token, RSA1_PUBLIC),
            Value::from(false)
        );
        assert_eq!(
            verify("verify_rs256", &token, EC1_PUBLIC),
            Value::from(false)
        );
        let tampered = with_payload(&token, r#"{"sub":"mallory"}"#);
        assert_eq!(
            verify("verify_es256", &tampered, EC1_PUBLIC),
            Value::from(false)
        );
    }

    #[test]
    fn verify_es256_opa_vector_with_single_jwk() {
        assert_eq!(
            verify("verify_es256", OPA_ES256_TOKEN, OPA_ES256_JWK),
            Value::from(true)
        );
        assert_eq!(
            verify("verify_es256", OPA_ES256_TOKEN, EC1_PUBLIC),
            Value::from(false)
        );
    }

    #[test]
    fn verify_es256_odd_signatures_are_false() {
        let token = es256_token(r#"{"alg":"ES256"}"#, "{}");
        let (input, signature) = token.rsplit_once('.').unwrap();
        let raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let with_sig = |bytes: &[u8]| format!("{input}.{}", b64(bytes));
        // Empty, truncated, DER-encoded-length and all-zero signatures: false.
        for bad in [
            vec![],
            raw[..63].to_vec(),
            vec![0u8; 64],
            [&raw[..], &[0][..]].concat(),
        ] {
            assert_eq!(
                verify("verify_es256", &with_sig(&bad), EC1_PUBLIC),
                Value::from(false)
            );
        }
        // r and s with extra leading zero bytes are the same integers for OPA.
        let (r, s) = raw.split_at(32);
        let padded = [&[0u8][..], r, &[0u8][..], s].concat();
        assert_eq!(
            verify("verify_es256", &with_sig(&padded), EC1_PUBLIC),
            Value::from(true)
        );
    }

    #[test]
    fn fixed_width_signature_normalisation() {
        assert_eq!(fixed_width_ecdsa_signature(&[], 2), Some(vec![0, 0, 0, 0]));
        assert_eq!(
            fixed_width_ecdsa_signature(&[1, 2], 2),
            Some(vec![0, 1, 0, 2])
        );
        assert_eq!(
            fixed_width_ecdsa_signature(&[0, 0, 1, 0, 0, 2], 2),
            Some(vec![0, 1, 0, 2])
        );
        assert_eq!(fixed_width_ecdsa_signature(&[1, 1, 1, 2], 1), None);
        assert_eq!(
            fixed_width_ecdsa_signature(&[1, 2, 3], 2),
            Some(vec![0, 1, 2, 3])
        );
    }

    proptest::proptest! {
        /// Hostile tokens and keys never panic: every outcome is a value or an error.
        #[test]
        fn arbitrary_tokens_never_panic(token in "[A-Za-z0-9_=.\\-\"']{0,80}") {
            let _ = decode_token(token.as_bytes());
            let args = vec![Value::from(token.as_str()), Value::from(token.as_str())];
            let _ = verify_rs256(args.clone());
            let _ = verify_es256(args.clone());
            let _ = verify_hs256(args);
        }

        #[test]
        fn arbitrary_keys_never_panic(key in "(-----BEGIN |-----END |PUBLIC KEY|CERTIFICATE|-----|\n|[A-Za-z0-9+/=]{0,8}|\\{|\"keys\"|:|\\[|\\]|\"kty\"|\"RSA\"|\"EC\"|,|\\}){0,24}") {
            let token = es256_token(r#"{"alg":"ES256","kid":"k"}"#, "{}");
            let args = vec![Value::from(token.as_str()), Value::from(key.as_str())];
            let _ = verify_rs256(args.clone());
            let _ = verify_es256(args);
        }

        #[test]
        fn corrupted_key_der_never_panics(
            position in 0usize..200,
            byte in proptest::num::u8::ANY,
            cut in 0usize..260,
        ) {
            for pem in [EC1_PUBLIC, EC1_CERTIFICATE, RSA1_PUBLIC] {
                let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
                let mut der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
                if let Some(b) = der.get_mut(position) {
                    *b = byte;
                }
                der.truncate(cut.max(1));
                let kind = if pem.contains("CERTIFICATE") { "CERTIFICATE" } else { "PUBLIC KEY" };
                let corrupted = format!(
                    "-----BEGIN {kind}-----\n{}\n-----END {kind}-----",
                    base64::engine::general_purpose::STANDARD.encode(&der)
                );
                let token = es256_token(r#"{"alg":"ES256"}"#, "{}");
                let _ = verify_es256(vec![Value::from(token.as_str()), Value::from(corrupted.as_str())]);
            }
        }
    }

    #[test]
    fn trim_quotes_like_go() {
        assert_eq!(trim_quotes(b"\"'a.b.c'\""), b"a.b.c");
        assert_eq!(trim_quotes(b"\"\""), b"");
        assert_eq!(trim_quotes(b"a\"b"), b"a\"b");
    }
}
