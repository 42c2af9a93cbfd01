//! Verification keys for `io.jwt.verify_rs256` / `io.jwt.verify_es256`.
//!
//! OPA accepts, as the `certificate` operand, a PEM `CERTIFICATE`, a PEM
//! `PUBLIC KEY` (SubjectPublicKeyInfo) or a JWK / JWK Set in JSON, and turns it
//! into a list of keys, each with an optional `alg` and `kid`
//! (`getKeysFromCertOrJWK` in OPA's `topdown/tokens.go`). This module does the
//! same: it decodes PEM with the same acceptance rules as Go's `pem.Decode` (including "extra data after a PEM
//! certificate block"), the X.509 / SPKI structures are read with a small
//! bounds-checked DER reader, and JWKs are read with `serde_json`.
//!
//! It must not: panic on malformed input, validate certificate chains or
//! validity dates (OPA only takes the public key out of the certificate), or
//! keep any state between calls.

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value as Json};

use super::encoding::{base64_lenient_decode, base64_std_decode};

/// A public key as far as RS256 / ES256 verification is concerned.
#[derive(Clone)]
pub(super) enum PublicKey {
    /// An RSA public key.
    Rsa(DecodingKey),
    /// An ECDSA public key on P-256 (uncompressed SEC1 point).
    EcP256(DecodingKey),
    /// Any other key OPA would accept here (other curves, Ed25519, X25519,
    /// DSA, symmetric JWKs, private JWKs, unknown algorithms in a
    /// certificate): it never verifies an RS256 or ES256 signature, as in
    /// OPA, where its type assertion in the verifier fails.
    Unusable,
}

/// One key OPA would try, with the JWK `alg` and `kid` ("" when absent).
#[derive(Clone)]
pub(super) struct VerificationKey {
    pub(super) key: PublicKey,
    pub(super) alg: String,
    pub(super) kid: String,
}

/// JWS algorithms OPA knows; JWKs whose `alg` is not one of them are skipped.
const TOKEN_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256",
    "HS384", "HS512", "EdDSA",
];

/// OPA's `getKeysFromCertOrJWK`: a PEM certificate or public key, else a JWK (set).
pub(super) fn parse_keys(certificate: &str) -> Result<Vec<VerificationKey>, String> {
    if let Some((block, rest)) = pem_decode(certificate.as_bytes()) {
        if !rest.is_empty() {
            return Err("extra data after a PEM certificate block".to_string());
        }
        let key = match block.kind {
            b"CERTIFICATE" => certificate_public_key(&block.bytes)
                .map_err(|e| format!("failed to parse a PEM certificate: {e}"))?,
            b"PUBLIC KEY" => pkix_public_key(&block.bytes)
                .map_err(|e| format!("failed to parse a PEM public key: {e}"))?,
            _ => return Err("failed to extract a Key from the PEM certificate".to_string()),
        };
        return Ok(vec![VerificationKey {
            key,
            alg: String::new(),
            kid: String::new(),
        }]);
    }
    parse_jwks(certificate).map_err(|e| format!("failed to parse a JWK key (set): {e}"))
}

// ---------------------------------------------------------------------------
// PEM: a port of Go's encoding/pem.Decode.

/// One PEM block: its type (the text after `BEGIN `) and its decoded body.
struct PemBlock<'a> {
    kind: &'a [u8],
    bytes: Vec<u8>,
}

const PEM_START: &[u8] = b"\n-----BEGIN ";
const PEM_BEGIN_AT_START: &[u8] = b"-----BEGIN ";
const PEM_END: &[u8] = b"\n-----END ";
const PEM_END_AT_START: &[u8] = b"-----END ";
const PEM_END_OF_LINE: &[u8] = b"-----";

/// Go's `pem.Decode`: the first well-formed PEM block anywhere in `data` and
/// the bytes after the line that ends it, or `None`.
fn pem_decode(data: &[u8]) -> Option<(PemBlock<'_>, &[u8])> {
    let mut rest = data;
    loop {
        if let Some(after) = rest.strip_prefix(PEM_BEGIN_AT_START) {
            rest = after;
        } else if let Some(at) = find(rest, PEM_START) {
            rest = rest.get(at + PEM_START.len()..)?;
        } else {
            return None;
        }

        let (type_line, after_type) = get_line(rest);
        rest = after_type;
        let Some(kind) = type_line.strip_suffix(PEM_END_OF_LINE) else {
            continue;
        };

        // Header lines ("Key: value") until the first line without a colon.
        let mut has_headers = false;
        loop {
            if rest.is_empty() {
                return None;
            }
            let (line, next) = get_line(rest);
            if !line.contains(&b':') {
                break;
            }
            has_headers = true;
            rest = next;
        }

        let (end_index, end_trailer_index) = if !has_headers && rest.starts_with(PEM_END_AT_START) {
            (0, PEM_END_AT_START.len())
        } else {
            match find(rest, PEM_END) {
                Some(at) => (at, at + PEM_END.len()),
                None => continue,
            }
        };

        // After "-----END " comes the same type and "-----", then only whitespace.
        let Some(end_trailer) = rest.get(end_trailer_index..) else {
            continue;
        };
        let trailer_len = kind.len() + PEM_END_OF_LINE.len();
        let (Some(trailer), Some(rest_of_end_line)) = (
            end_trailer.get(..trailer_len),
            end_trailer.get(trailer_len..),
        ) else {
            continue;
        };
        if !trailer.starts_with(kind) || !trailer.ends_with(PEM_END_OF_LINE) {
            continue;
        }
        if !get_line(rest_of_end_line).0.is_empty() {
            continue;
        }

        let Some(body) = rest.get(..end_index) else {
            continue;
        };
        let body: Vec<u8> = body
            .iter()
            .copied()
            .filter(|b| *b != b' ' && *b != b'\t')
            .collect();
        let Ok(bytes) = base64_std_decode(&body) else {
            continue;
        };

        let end_line = rest
            .get(end_index + PEM_END.len() - 1..)
            .unwrap_or_default();
        let (_, after) = get_line(end_line);
        return Some((PemBlock { kind, bytes }, after));
    }
}

/// Go's `pem.getLine`: the first line without its terminator (`\n` or `\r\n`)
/// and trailing spaces/tabs, and the rest after the terminator.
fn get_line(data: &[u8]) -> (&[u8], &[u8]) {
    let (mut line, rest): (&[u8], &[u8]) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (
            data.get(..at).unwrap_or_default(),
            data.get(at + 1..).unwrap_or_default(),
        ),
        None => (data, &[]),
    };
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    while let Some(stripped) = line.strip_suffix(b" ").or_else(|| line.strip_suffix(b"\t")) {
        line = stripped;
    }
    (line, rest)
}

/// Index of the first occurrence of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

// ---------------------------------------------------------------------------
// DER: just enough to walk X.509 certificates and SubjectPublicKeyInfo.

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_VERSION: u8 = 0xa0;

/// A DER element: tag, contents, and the full encoding (tag and length included).
struct Element<'a> {
    tag: u8,
    contents: &'a [u8],
    full: &'a [u8],
}

/// A cursor over consecutive DER elements.
struct Der<'a> {
    data: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(data: &'a [u8]) -> Self {
        Der { data }
    }

    fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// Reads the next element (definite, minimal lengths; low tag numbers only).
    fn read(&mut self) -> Result<Element<'a>, String> {
        let malformed = || "malformed DER".to_string();
        let (&tag, after_tag) = self.data.split_first().ok_or_else(malformed)?;
        if tag & 0x1f == 0x1f {
            return Err(malformed());
        }
        let (&first, after_len) = after_tag.split_first().ok_or_else(malformed)?;
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(malformed());
            }
            let len_bytes = after_len.get(..count).ok_or_else(malformed)?;
            if len_bytes.first() == Some(&0) {
                return Err(malformed());
            }
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 {
                return Err(malformed());
            }
            (len, 2 + count)
        };
        let end = header.checked_add(len).ok_or_else(malformed)?;
        let full = self.data.get(..end).ok_or_else(malformed)?;
        let contents = full.get(header..).ok_or_else(malformed)?;
        self.data = self.data.get(end..).ok_or_else(malformed)?;
        Ok(Element {
            tag,
            contents,
            full,
        })
    }

    /// Reads the next element, which must have `tag`.
    fn read_tag(&mut self, tag: u8) -> Result<Element<'a>, String> {
        let element = self.read()?;
        if element.tag == tag {
            Ok(element)
        } else {
            Err("malformed DER".to_string())
        }
    }

    fn finish(&self, what: &str) -> Result<(), String> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(format!("x509: trailing data after {what}"))
        }
    }
}

// Object identifiers (DER contents).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_DSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_X25519: &[u8] = &[0x2b, 0x65, 0x6e];
const OID_P224: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x21];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

/// The public key of a DER X.509 certificate (Go's `x509.ParseCertificate`
/// followed by `cert.PublicKey`; only the structure leading to the key is read).
fn certificate_public_key(der: &[u8]) -> Result<PublicKey, String> {
    let mut outer = Der::new(der);
    let certificate = outer.read_tag(TAG_SEQUENCE)?;
    outer.finish("certificate")?;

    let mut fields = Der::new(certificate.contents);
    let tbs = fields.read_tag(TAG_SEQUENCE)?;
    fields.read_tag(TAG_SEQUENCE)?; // signatureAlgorithm
    fields.read_tag(TAG_BIT_STRING)?; // signatureValue
    fields.finish("certificate")?;

    let mut tbs = Der::new(tbs.contents);
    if tbs.peek_tag() == Some(TAG_VERSION) {
        tbs.read()?;
    }
    tbs.read_tag(TAG_INTEGER)?; // serialNumber
    tbs.read_tag(TAG_SEQUENCE)?; // signature
    tbs.read_tag(TAG_SEQUENCE)?; // issuer
    tbs.read_tag(TAG_SEQUENCE)?; // validity
    tbs.read_tag(TAG_SEQUENCE)?; // subject
    let spki = tbs.read_tag(TAG_SEQUENCE)?;
    // Go leaves the key nil (never verifies) for algorithms it does not know.
    subject_public_key(spki.contents, true)
}

/// Go's `x509.ParsePKIXPublicKey` on a DER SubjectPublicKeyInfo.
fn pkix_public_key(der: &[u8]) -> Result<PublicKey, String> {
    let mut outer = Der::new(der);
    let spki = outer.read_tag(TAG_SEQUENCE)?;
    outer.finish("ASN.1 of public-key")?;
    subject_public_key(spki.contents, false)
}

/// Reads the contents of a SubjectPublicKeyInfo. `in_certificate`: an unknown
/// algorithm yields an unusable key (as in a certificate) instead of an error.
fn subject_public_key(spki: &[u8], in_certificate: bool) -> Result<PublicKey, String> {
    let mut fields = Der::new(spki);
    let algorithm = fields.read_tag(TAG_SEQUENCE)?;
    let bits = fields.read_tag(TAG_BIT_STRING)?;
    fields.finish("ASN.1 of public-key")?;

    let mut algorithm = Der::new(algorithm.contents);
    let oid = algorithm.read_tag(TAG_OID)?;
    let params = if algorithm.peek_tag().is_some() {
        Some(algorithm.read()?)
    } else {
        None
    };

    let key = match bits.contents.split_first() {
        Some((0, key)) => key,
        _ => return Err("x509: invalid public key bit string".to_string()),
    };

    match oid.contents {
        OID_RSA => {
            if params.map(|p| p.full) != Some(&[TAG_NULL, 0x00][..]) {
                return Err("x509: RSA key missing NULL parameters".to_string());
            }
            rsa_public_key(key)
        }
        OID_EC_PUBLIC_KEY => {
            let curve = match params {
                Some(p) if p.tag == TAG_OID => p.contents,
                _ => return Err("x509: failed to parse ECDSA parameters as named curve".into()),
            };
            let coordinate_len = match curve {
                OID_P224 => 28,
                OID_P256 => 32,
                OID_P384 => 48,
                OID_P521 => 66,
                _ => return Err("x509: unsupported elliptic curve".to_string()),
            };
            if key.len() != 1 + 2 * coordinate_len || key.first() != Some(&0x04) {
                return Err("x509: failed to unmarshal elliptic curve point".to_string());
            }
            if curve == OID_P256 {
                ec_p256_key(key)
                    .ok_or_else(|| "x509: failed to unmarshal elliptic curve point".to_string())
            } else {
                Ok(PublicKey::Unusable)
            }
        }
        OID_ED25519 | OID_X25519 => {
            if params.is_some() {
                return Err("x509: key encoded with illegal parameters".to_string());
            }
            if key.len() != 32 {
                return Err("x509: wrong public key size".to_string());
            }
            Ok(PublicKey::Unusable)
        }
        OID_DSA => Ok(PublicKey::Unusable),
        _ if in_certificate => Ok(PublicKey::Unusable),
        _ => Err("x509: unknown public key algorithm".to_string()),
    }
}

/// A PKCS #1 RSAPublicKey (`SEQUENCE { modulus, publicExponent }`).
fn rsa_public_key(der: &[u8]) -> Result<PublicKey, String> {
    let invalid = || "x509: invalid RSA public key".to_string();
    let mut outer = Der::new(der);
    let sequence = outer.read_tag(TAG_SEQUENCE).map_err(|_| invalid())?;
    outer.finish("RSA public key")?;
    let mut fields = Der::new(sequence.contents);
    let modulus = fields.read_tag(TAG_INTEGER).map_err(|_| invalid())?;
    let exponent = fields.read_tag(TAG_INTEGER).map_err(|_| invalid())?;
    fields.finish("RSA public key")?;

    let n = positive_integer(modulus.contents)
        .ok_or_else(|| "x509: RSA modulus is not a positive number".to_string())?;
    let e = positive_integer(exponent.contents)
        .ok_or_else(|| "x509: RSA public exponent is not a positive number".to_string())?;
    if e.len() > 8 || (e.len() == 8 && e.first().is_some_and(|b| b & 0x80 != 0)) {
        // Go reads the exponent into an int.
        return Err(invalid());
    }
    Ok(PublicKey::Rsa(DecodingKey::from_rsa_raw_components(n, e)))
}

/// The magnitude of a minimally encoded, strictly positive DER INTEGER.
fn positive_integer(contents: &[u8]) -> Option<&[u8]> {
    let (&first, rest) = contents.split_first()?;
    if first & 0x80 != 0 {
        return None; // negative
    }
    if first == 0 && rest.first().is_some_and(|b| b & 0x80 == 0) {
        return None; // not minimal
    }
    let magnitude = if first == 0 { rest } else { contents };
    if magnitude.iter().all(|&b| b == 0) {
        return None; // zero
    }
    Some(magnitude)
}

/// A P-256 key from an uncompressed SEC1 point, if the point is on the curve.
fn ec_p256_key(point: &[u8]) -> Option<PublicKey> {
    let key = DecodingKey::from_ec_der(point);
    // jsonwebtoken builds the verifying key (checking the point) before it
    // looks at the signature: an error here means the point is invalid.
    jsonwebtoken::crypto::verify("", b"", &key, Algorithm::ES256).ok()?;
    Some(PublicKey::EcP256(key))
}

// ---------------------------------------------------------------------------
// JWK / JWK Set.

/// A JWK Set (`{"keys": [...]}`) or a single JWK, as OPA's `jwk.ParseString`.
fn parse_jwks(text: &str) -> Result<Vec<VerificationKey>, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let object = json
        .as_object()
        .ok_or_else(|| "expected a JSON object".to_string())?;
    let mut keys = Vec::new();
    match object.get("keys") {
        Some(Json::Array(entries)) => {
            for entry in entries {
                let entry = entry
                    .as_object()
                    .ok_or_else(|| "keys: every key must be a JSON object".to_string())?;
                keys.extend(parse_jwk(entry)?);
            }
        }
        Some(_) => return Err("keys: must be an array".to_string()),
        None => keys.extend(parse_jwk(object)?),
    }
    Ok(keys)
}

/// One JWK. `None` when its `alg` is not a JWS algorithm OPA knows (OPA skips it).
fn parse_jwk(jwk: &Map<String, Json>) -> Result<Option<VerificationKey>, String> {
    let kty =
        optional_string(jwk, "kty")?.ok_or_else(|| "required field kty is missing".to_string())?;
    let alg = optional_string(jwk, "alg")?.unwrap_or_default().to_string();
    let kid = optional_string(jwk, "kid")?.unwrap_or_default().to_string();
    let private = jwk.contains_key("d");

    let key = match kty {
        "RSA" => {
            let n = required_bytes(jwk, "n")?;
            let e = required_bytes(jwk, "e")?;
            if private {
                PublicKey::Unusable
            } else {
                PublicKey::Rsa(DecodingKey::from_rsa_raw_components(
                    strip_leading_zeros(&n),
                    strip_leading_zeros(&e),
                ))
            }
        }
        "EC" => {
            let crv = optional_string(jwk, "crv")?
                .ok_or_else(|| "required field crv is missing".to_string())?;
            let x = required_bytes(jwk, "x")?;
            let y = required_bytes(jwk, "y")?;
            match crv {
                "P-256" if !private => p256_from_coordinates(&x, &y),
                "P-256" | "P-384" | "P-521" => PublicKey::Unusable,
                other => return Err(format!("unsupported elliptic curve {other:?}")),
            }
        }
        "OKP" => {
            let crv = optional_string(jwk, "crv")?
                .ok_or_else(|| "required field crv is missing".to_string())?;
            required_bytes(jwk, "x")?;
            match crv {
                "Ed25519" | "X25519" => PublicKey::Unusable,
                other => return Err(format!("unsupported curve {other:?}")),
            }
        }
        "oct" => {
            required_bytes(jwk, "k")?;
            PublicKey::Unusable
        }
        other => return Err(format!("invalid key type {other:?}")),
    };

    if !alg.is_empty() && !TOKEN_ALGORITHMS.contains(&alg.as_str()) {
        return Ok(None);
    }
    Ok(Some(VerificationKey { key, alg, kid }))
}

/// A P-256 key from JWK coordinates (big-endian integers, possibly short).
fn p256_from_coordinates(x: &[u8], y: &[u8]) -> PublicKey {
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    for coordinate in [x, y] {
        let coordinate = strip_leading_zeros(coordinate);
        if coordinate.len() > 32 {
            return PublicKey::Unusable;
        }
        point.resize(point.len() + 32 - coordinate.len(), 0);
        point.extend_from_slice(coordinate);
    }
    // An off-curve point is accepted here and fails verification, as in OPA.
    PublicKey::EcP256(DecodingKey::from_ec_der(&point))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

fn optional_string<'a>(jwk: &'a Map<String, Json>, field: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(field) {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{field}: must be a string")),
    }
}

fn required_bytes(jwk: &Map<String, Json>, field: &str) -> Result<Vec<u8>, String> {
    let text =
        optional_string(jwk, field)?.ok_or_else(|| format!("required field {field} is missing"))?;
    base64_lenient_decode(text).map_err(|e| format!("{field}: {e}"))
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const EC_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEo2uFJLtPFWOWXckYNIdOJ7ZytM7z
ysQJXi8eOemBQT80kiw8/lUQIxxwz0fqbk2SiAD8e0Efc32Yo/uk/mg2WQ==
-----END PUBLIC KEY-----
";

    fn kinds(keys: &[VerificationKey]) -> Vec<&'static str> {
        keys.iter()
            .map(|k| match k.key {
                PublicKey::Rsa(_) => "rsa",
                PublicKey::EcP256(_) => "p256",
                PublicKey::Unusable => "unusable",
            })
            .collect()
    }

    #[test]
    fn pem_public_key() {
        let keys = parse_keys(EC_PUBLIC_PEM).unwrap();
        assert_eq!(kinds(&keys), ["p256"]);
    }

    #[test]
    fn pem_decode_follows_go() {
        // Leading text before the block is skipped, as pem.Decode does.
        let with_preamble = format!("junk\n{EC_PUBLIC_PEM}");
        assert_eq!(kinds(&parse_keys(&with_preamble).unwrap()), ["p256"]);
        // CRLF line endings are fine.
        let crlf = EC_PUBLIC_PEM.replace('\n', "\r\n");
        assert_eq!(kinds(&parse_keys(&crlf).unwrap()), ["p256"]);
        // No trailing newline is fine too.
        assert_eq!(
            kinds(&parse_keys(EC_PUBLIC_PEM.trim_end()).unwrap()),
            ["p256"]
        );
        // Anything after the END line (even a blank line) is rejected by OPA.
        let err = parse_keys(&format!("{EC_PUBLIC_PEM}\n")).err().unwrap();
        assert_eq!(err, "extra data after a PEM certificate block");
        let err = parse_keys(&format!("{EC_PUBLIC_PEM}{EC_PUBLIC_PEM}"))
            .err()
            .unwrap();
        assert_eq!(err, "extra data after a PEM certificate block");
        // Other block types are refused.
        let other = EC_PUBLIC_PEM.replace("PUBLIC KEY", "RSA PUBLIC KEY");
        assert_eq!(
            parse_keys(&other).err().unwrap(),
            "failed to extract a Key from the PEM certificate"
        );
        // A mismatched END line means no PEM block at all, so it is read as JSON.
        let mismatched = EC_PUBLIC_PEM.replace("END PUBLIC KEY", "END CERTIFICATE");
        assert!(parse_keys(&mismatched)
            .err()
            .unwrap()
            .starts_with("failed to parse a JWK key (set): "));
    }

    #[test]
    fn malformed_der_is_an_error() {
        let broken = EC_PUBLIC_PEM.replace("MFkwEwYH", "MFkwEwYI");
        let err = parse_keys(&broken).err().unwrap();
        assert!(
            err.starts_with("failed to parse a PEM public key: "),
            "{err}"
        );
        // A point that is not on the curve.
        let off_curve = EC_PUBLIC_PEM.replace("o2uFJLtP", "o2uFJLtQ");
        let err = parse_keys(&off_curve).err().unwrap();
        assert!(
            err.contains("failed to unmarshal elliptic curve point"),
            "{err}"
        );
    }

    #[test]
    fn jwk_single_and_set() {
        let single = r#"{"kty":"EC","crv":"P-256","x":"o2uFJLtPFWOWXckYNIdOJ7ZytM7zysQJXi8eOemBQT8","y":"NJIsPP5VECMccM9H6m5NkogA_HtBH3N9mKP7pP5oNlk"}"#;
        assert_eq!(kinds(&parse_keys(single).unwrap()), ["p256"]);
        let set = r#"{"keys":[
            {"kty":"RSA","n":"sGu-fYVE","e":"AQAB","alg":"RS256","kid":"a"},
            {"kty":"RSA","n":"sGu-fYVE","e":"AQAB","alg":"RSA-OAEP","kid":"skipped"},
            {"kty":"oct","k":"c2VjcmV0"},
            {"kty":"RSA","n":"sGu-fYVE","e":"AQAB","d":"AQAB"}
        ]}"#;
        let keys = parse_keys(set).unwrap();
        assert_eq!(kinds(&keys), ["rsa", "unusable", "unusable"]);
        assert_eq!(keys[0].alg, "RS256");
        assert_eq!(keys[0].kid, "a");
        assert_eq!(parse_keys(r#"{"keys":[]}"#).unwrap().len(), 0);
    }

    #[test]
    fn jwk_errors() {
        for (text, message) in [
            ("not json", "failed to parse a JWK key (set): "),
            ("[]", "expected a JSON object"),
            ("{}", "required field kty is missing"),
            (r#"{"kty":"XYZ"}"#, "invalid key type"),
            (r#"{"kty":"RSA","e":"AQAB"}"#, "required field n is missing"),
            (
                r#"{"kty":"RSA","n":"!!","e":"AQAB"}"#,
                "n: failed to decode base64",
            ),
            (r#"{"keys":{}}"#, "keys: must be an array"),
            (
                r#"{"kty":"EC","crv":"P-192","x":"AA","y":"AA"}"#,
                "unsupported elliptic curve",
            ),
            (
                r#"{"kty":"RSA","n":"AQAB","e":"AQAB","kid":1}"#,
                "kid: must be a string",
            ),
        ] {
            let err = parse_keys(text).err().unwrap();
            assert!(
                err.starts_with("failed to parse a JWK key (set): "),
                "{text}: {err}"
            );
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn der_reader_rejects_bad_lengths() {
        assert!(Der::new(&[0x30]).read().is_err());
        assert!(Der::new(&[0x30, 0x05, 0x00]).read().is_err());
        assert!(Der::new(&[0x30, 0x80]).read().is_err()); // indefinite
        assert!(Der::new(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).read().is_err()); // not minimal
        assert!(Der::new(&[0x30, 0x85, 1, 0, 0, 0, 0]).read().is_err()); // too long
        let element = Der::new(&[0x02, 0x01, 0x05]).read().unwrap();
        assert_eq!((element.tag, element.contents), (0x02, &[5u8][..]));
    }

    #[test]
    fn integers() {
        assert_eq!(positive_integer(&[0x00, 0x80]), Some(&[0x80u8][..]));
        assert_eq!(positive_integer(&[0x01]), Some(&[0x01u8][..]));
        assert_eq!(positive_integer(&[0x80]), None);
        assert_eq!(positive_integer(&[0x00]), None);
        assert_eq!(positive_integer(&[0x00, 0x01]), None);
        assert_eq!(positive_integer(&[]), None);
    }
}
