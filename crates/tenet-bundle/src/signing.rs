//! OPA bundle signatures: checking a bundle's `.signatures.json` against the
//! operator's keys ([`Verifier`]), and writing one ([`sign_files`]).
//!
//! This module decides only whether the files of a bundle are the files a key
//! holder signed. It never reads the bundle from disk or network, never
//! interprets policies or data beyond hashing them, and never decides what a
//! caller does with an unsigned bundle: without a [`Verifier`] the loader
//! ignores `.signatures.json` altogether.
//!
//! # Format (as OPA)
//!
//! `.signatures.json` at the bundle root holds `{"signatures": ["<JWT>"]}`,
//! exactly one compact JWS. Its payload lists every signed file:
//! `{"files": [{"name", "hash", "algorithm"}], "keyid"?, "scope"?, "iat"?,
//! "iss"?}`.
//!
//! * **Key id**: the configured `keyid` wins, then the JWT header's `kid`,
//!   then the (deprecated) `keyid` claim of the payload.
//! * **Algorithm**: the configured key's algorithm; the JWT header's `alg`
//!   must name the same one (an `alg` confusion is a rejection).
//! * **Scope**: the configured `scope`, else the key's `scope`, else empty,
//!   must equal the payload's `scope` (missing = empty) — exactly as OPA, so a
//!   payload with a scope fails when none is configured.
//! * **Files**: every file of the bundle except `.signatures.json` and the
//!   files matching an `exclude_files` pattern (Go `filepath.Match` syntax:
//!   `*`, `?`, `[a-z]`, `[^a]`, `\` escapes; `*` and `?` never match `/`)
//!   must be listed with a matching hash, and every listed file must exist.
//! * **Hashes**: `data.json`, `data.yaml` and `.manifest` (OPA's "structured
//!   documents") are hashed over a canonical form — compact JSON, object keys
//!   sorted bytewise, strings escaped as Go's `encoding/json` does without HTML
//!   escaping, numbers written exactly as they appear in the file — so
//!   whitespace and key order do not matter. A file that is valid JSON is
//!   read as JSON, otherwise as YAML (as OPA). Every other file, including
//!   `data.yml`, is hashed over its raw bytes. File hash algorithms: `MD5`,
//!   `SHA-1`, `SHA-224`, `SHA-256`, `SHA-384`, `SHA-512`, `SHA-512-224`,
//!   `SHA-512-256`.
//! * **Signature algorithms**: `RS256/384/512`, `PS256/384/512`,
//!   `ES256/384`, `HS256/384/512`, `EdDSA`. Keys are PEM public keys
//!   (`PUBLIC KEY`, or `RSA PUBLIC KEY` for RSA) or, for `HS*`, the secret
//!   itself.
//!
//! # Differences from OPA
//!
//! * `ES512` is not supported (the crypto backend has no P-521); a key
//!   configured with it is refused when the [`Verifier`] is built.
//! * Verification keys must be public keys: OPA also accepts private keys
//!   and X.509 certificates in the `key` field; here they are refused with a
//!   clear error.
//! * With a [`Verifier`], a bundle without `.signatures.json` is always
//!   rejected (OPA rejects it only when a `keyid` is configured).
//! * Only `.signatures.json` at the root is the signature file; OPA treats
//!   any path ending in `signatures.json` as one. Here such a file is an
//!   ordinary file and must be signed like any other.
//! * Signature plugins (`"plugin"` in `.signatures.json`) are not supported.
//! * `data.yaml` read as YAML follows YAML 1.2 (OPA's parser is YAML 1.1, so
//!   scalars such as `yes` or `0777` differ): such a file may fail to verify,
//!   but never verifies content that was not signed, since the hash covers the
//!   value exactly as this crate loads it.

use crate::depth;
use crate::error::SignatureFailure;
use crate::files::BundleFile;
use crate::{BundleError, Limits};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::digest::DynDigest;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Path of the signature file at the bundle root.
pub const SIGNATURES_FILE: &str = ".signatures.json";

/// The file hash algorithm `sign_files` writes (OPA's default).
const DEFAULT_HASH: &str = "SHA-256";

/// Deepest nesting the canonical JSON reader follows, whatever the limits
/// say (serde_json's own guard; the loader could not parse deeper data).
const MAX_CANONICAL_DEPTH: usize = 128;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// How a bundle's signature is checked: OPA's top-level `keys` plus a
/// bundle's `signing` section (`keyid`, `scope`, `exclude_files`).
///
/// Deserialises from OPA's key names. By default there are no keys, no
/// default key id, no scope and no excluded files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerificationConfig {
    /// Verification keys by key id (OPA's `keys.<id>`).
    pub keys: BTreeMap<String, KeyConfig>,
    /// The key to verify with; when unset, the JWT's `kid` header (or its
    /// deprecated `keyid` claim) names it.
    pub keyid: Option<String>,
    /// The scope the signature must carry; when unset, the key's scope.
    pub scope: Option<String>,
    /// Files left out of verification (Go `filepath.Match` patterns matched
    /// against the path inside the bundle, e.g. `*.txt`, `docs/*`).
    pub exclude_files: Vec<String>,
}

/// One key of OPA's `keys` section.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyConfig {
    /// Signature algorithm (`RS256`, `ES256`, `HS256`, …). Default `RS256`.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// PEM public key, or the shared secret for `HS*` algorithms. A key with
    /// no `key` (only a `private_key`, used by OPA for signing) cannot verify.
    #[serde(default)]
    pub key: String,
    /// The scope signatures made with this key carry. Default none.
    #[serde(default)]
    pub scope: Option<String>,
    /// OPA's signing key; accepted so OPA configurations parse, never used
    /// for verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

fn default_algorithm() -> String {
    "RS256".to_string()
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An HMAC secret or a private key must not reach the logs.
        let shown = if is_hmac(&self.algorithm) {
            "<secret>"
        } else {
            &self.key
        };
        f.debug_struct("KeyConfig")
            .field("algorithm", &self.algorithm)
            .field("key", &shown)
            .field("scope", &self.scope)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "<secret>"),
            )
            .finish()
    }
}

impl KeyConfig {
    /// A key from literal text (PEM public key or HMAC secret).
    pub fn new(algorithm: &str, key: impl Into<String>, scope: Option<&str>) -> Self {
        Self {
            algorithm: algorithm.to_string(),
            key: key.into(),
            scope: scope.map(String::from),
            private_key: None,
        }
    }

    /// A key given as OPA's `--verification-key` flag takes it: the text is
    /// read as a file path when such a file exists, and used literally
    /// otherwise (a PEM block is always literal).
    pub fn from_key_or_file(
        algorithm: &str,
        key_or_path: &str,
        scope: Option<&str>,
    ) -> Result<Self, BundleError> {
        let literal = || Ok(Self::new(algorithm, key_or_path, scope));
        if key_or_path.starts_with("-----BEGIN") {
            return literal();
        }
        let path = std::path::Path::new(key_or_path);
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {
                let text = std::fs::read_to_string(path).map_err(|e| BundleError::io(path, e))?;
                Ok(Self::new(algorithm, text, scope))
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(BundleError::io(path, e))
            }
            _ => literal(),
        }
    }
}

fn is_hmac(algorithm: &str) -> bool {
    matches!(algorithm, "HS256" | "HS384" | "HS512")
}

fn config_error(key_id: Option<&str>, reason: impl Into<String>) -> BundleError {
    BundleError::SigningConfig {
        key_id: key_id.map(String::from),
        reason: reason.into(),
    }
}

fn parse_algorithm(key_id: Option<&str>, name: &str) -> Result<Algorithm, BundleError> {
    if name == "ES512" {
        return Err(config_error(
            key_id,
            "algorithm ES512 is not supported (no P-521 support)",
        ));
    }
    Algorithm::from_str(name)
        .map_err(|_| config_error(key_id, format!("unknown signature algorithm {name:?}")))
}

/// The label of the first PEM block in `text` (`PUBLIC KEY`, …), if any.
fn pem_label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let len = text[start..].find("-----")?;
    Some(&text[start..start + len])
}

// ---------------------------------------------------------------------------
// Verifier
// ---------------------------------------------------------------------------

/// A parsed [`VerificationConfig`]: keys decoded once, patterns checked.
/// Cheap to share (`Send + Sync`); verifying a bundle never mutates it.
#[derive(Clone)]
pub struct Verifier {
    keys: BTreeMap<String, VerifyKey>,
    keyid: Option<String>,
    scope: Option<String>,
    exclude: Vec<String>,
}

#[derive(Clone)]
struct VerifyKey {
    algorithm: Algorithm,
    key: DecodingKey,
    scope: Option<String>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(|(id, k)| (id, k.algorithm))
                    .collect::<Vec<_>>(),
            )
            .field("keyid", &self.keyid)
            .field("scope", &self.scope)
            .field("exclude", &self.exclude)
            .finish()
    }
}

impl Verifier {
    /// Parses every usable key and exclude pattern. Fails with
    /// [`BundleError::SigningConfig`] naming the key on an unknown or
    /// unsupported algorithm, a key that does not parse, a private key or
    /// certificate where a public key is expected, a default `keyid` with no
    /// key, or a malformed exclude pattern.
    pub fn new(config: &VerificationConfig) -> Result<Self, BundleError> {
        let mut keys = BTreeMap::new();
        for (id, kc) in &config.keys {
            if kc.key.is_empty() {
                // A signing-only key (OPA's `private_key`): not for us.
                continue;
            }
            keys.insert(id.clone(), decode_key(id, kc)?);
        }
        let keyid = config.keyid.clone().filter(|k| !k.is_empty());
        if let Some(id) = &keyid {
            if !keys.contains_key(id) {
                return Err(config_error(
                    Some(id),
                    "the configured keyid has no verification key",
                ));
            }
        }
        for pattern in &config.exclude_files {
            glob::validate(pattern).map_err(|why| {
                config_error(
                    None,
                    format!("bad exclude_files pattern {pattern:?}: {why}"),
                )
            })?;
        }
        Ok(Self {
            keys,
            keyid,
            scope: config.scope.clone().filter(|s| !s.is_empty()),
            exclude: config.exclude_files.clone(),
        })
    }

    /// Checks `files` (a whole bundle, in any order) against its
    /// `.signatures.json`. Every rejection is a [`BundleError::Signature`]
    /// whose [`SignatureFailure`] names the case and the file; a structured
    /// file that cannot be read for hashing is a [`BundleError::BadData`] or
    /// [`BundleError::JsonTooDeep`].
    pub fn verify(&self, files: &[BundleFile], limits: &Limits) -> Result<(), BundleError> {
        let fail = |reason| Err(BundleError::Signature { reason });
        let Some(sig_file) = files.iter().find(|f| f.path == SIGNATURES_FILE) else {
            return fail(SignatureFailure::MissingSignature);
        };
        let claims = match self.check_token(&sig_file.bytes) {
            Ok(claims) => claims,
            Err(reason) => return fail(reason),
        };
        let mut signed: BTreeMap<String, FileInfo> = BTreeMap::new();
        for info in claims.files {
            let name = info
                .name
                .strip_prefix('/')
                .unwrap_or(&info.name)
                .to_string();
            signed.insert(name, info);
        }
        let mut ordered: Vec<&BundleFile> = files.iter().collect();
        ordered.sort_by(|a, b| a.path.cmp(&b.path));
        for f in ordered {
            if f.path == SIGNATURES_FILE {
                continue;
            }
            if self.exclude.iter().any(|p| glob::matches(p, &f.path)) {
                signed.remove(&f.path);
                continue;
            }
            let Some(info) = signed.remove(&f.path) else {
                return fail(SignatureFailure::FileNotSigned {
                    file: f.path.clone(),
                });
            };
            let Some(algorithm) = HashAlgorithm::from_name(&info.algorithm) else {
                return fail(SignatureFailure::UnsupportedHashAlgorithm {
                    file: f.path.clone(),
                    algorithm: info.algorithm.clone(),
                });
            };
            let Ok(want) = hex::decode(&info.hash) else {
                return fail(SignatureFailure::Malformed {
                    detail: format!("hash of {:?} is not hexadecimal", f.path),
                });
            };
            if hash_file(f, algorithm, limits)? != want {
                return fail(SignatureFailure::FileHashMismatch {
                    file: f.path.clone(),
                });
            }
        }
        if let Some(file) = signed.into_keys().next() {
            return fail(SignatureFailure::SignedFileMissing { file });
        }
        Ok(())
    }

    /// Parses `.signatures.json`, checks the JWT's signature and scope, and
    /// returns its claims.
    fn check_token(&self, sig_bytes: &[u8]) -> Result<Claims, SignatureFailure> {
        let malformed = |detail: String| SignatureFailure::Malformed { detail };
        let sigs: SignaturesFile = serde_json::from_slice(sig_bytes)
            .map_err(|e| malformed(format!("{SIGNATURES_FILE} is not valid: {e}")))?;
        if let Some(plugin) = sigs.plugin.filter(|p| !p.is_empty()) {
            return Err(malformed(format!(
                "signature plugin {plugin:?} is not supported"
            )));
        }
        let token = match sigs.signatures.as_slice() {
            [] => return Err(malformed(format!("{SIGNATURES_FILE} lists no JWT"))),
            [one] => one.as_str(),
            many => {
                return Err(SignatureFailure::MultipleSignatures { count: many.len() });
            }
        };
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("the JWT is not in compact form".into()));
        };
        let header: Value = decode_segment(header_b64)
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| malformed(format!("bad JWT header: {e}")))?;
        let claims: Claims = decode_segment(payload_b64)
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| malformed(format!("bad JWT payload: {e}")))?;

        let header_kid = header
            .get("kid")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty());
        let payload_kid = claims.keyid.as_deref().filter(|k| !k.is_empty());
        let key_id = self
            .keyid
            .as_deref()
            .or(header_kid)
            .or(payload_kid)
            .ok_or(SignatureFailure::MissingKeyId)?;
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| SignatureFailure::UnknownKey {
                key_id: key_id.to_string(),
            })?;

        let header_alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if Algorithm::from_str(header_alg).ok() != Some(key.algorithm) {
            return Err(SignatureFailure::AlgorithmMismatch {
                key_id: key_id.to_string(),
                expected: format!("{:?}", key.algorithm),
                found: header_alg.to_string(),
            });
        }
        let message = &token[..header_b64.len() + 1 + payload_b64.len()];
        let valid =
            jsonwebtoken::crypto::verify(sig_b64, message.as_bytes(), &key.key, key.algorithm)
                .unwrap_or(false);
        if !valid {
            return Err(SignatureFailure::BadSignature {
                key_id: key_id.to_string(),
            });
        }

        let expected = self.scope.as_deref().or(key.scope.as_deref()).unwrap_or("");
        let found = claims.scope.as_deref().unwrap_or("");
        if expected != found {
            return Err(SignatureFailure::ScopeMismatch {
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
        Ok(claims)
    }
}

fn decode_key(id: &str, kc: &KeyConfig) -> Result<VerifyKey, BundleError> {
    let algorithm = parse_algorithm(Some(id), &kc.algorithm)?;
    let bad = |why: String| config_error(Some(id), why);
    let key = if is_hmac(&kc.algorithm) {
        DecodingKey::from_secret(kc.key.as_bytes())
    } else {
        match pem_label(&kc.key) {
            None => return Err(bad(format!("{} needs a PEM public key", kc.algorithm))),
            Some("PUBLIC KEY") | Some("RSA PUBLIC KEY") => {}
            Some(other) => {
                return Err(bad(format!(
                    "a PEM {other:?} block is not supported; give the public key (\"PUBLIC KEY\")"
                )))
            }
        }
        let pem = kc.key.as_bytes();
        let cannot =
            |e: &dyn fmt::Display| bad(format!("cannot read {} public key: {e}", kc.algorithm));
        match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => {
                DecodingKey::from_ec_pem(pem).map_err(|e| cannot(&e))?
            }
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem).map_err(|e| cannot(&e))?,
            _ => {
                // The backend would re-read the DER on every check and fold
                // a broken key into "bad signature": parse it once, here.
                let der = DecodingKey::from_rsa_pem(pem).map_err(|e| cannot(&e))?;
                let jsonwebtoken::DecodingKeyKind::SecretOrDer(der) = der.kind() else {
                    return Err(cannot(&"unexpected key form"));
                };
                let rsa = rsa::RsaPublicKey::from_pkcs1_der(der).map_err(|e| cannot(&e))?;
                DecodingKey::from_rsa_raw_components(&rsa.n().to_bytes_be(), &rsa.e().to_bytes_be())
            }
        }
    };
    // The backend decodes the key material on use: one probe now turns a
    // broken key into a configuration error instead of a rejected bundle.
    jsonwebtoken::crypto::verify("AA", b"probe", &key, algorithm)
        .map_err(|e| bad(format!("unusable {} key: {e}", kc.algorithm)))?;
    Ok(VerifyKey {
        algorithm,
        key,
        scope: kc.scope.clone().filter(|s| !s.is_empty()),
    })
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|e| e.to_string())
}

/// `.signatures.json`.
#[derive(Deserialize)]
struct SignaturesFile {
    #[serde(default)]
    signatures: Vec<String>,
    #[serde(default)]
    plugin: Option<String>,
}

/// The JWT payload (OPA's `DecodedSignature`; `iat`, `iss` and other claims
/// are carried but not checked).
#[derive(Serialize, Deserialize)]
struct Claims {
    #[serde(default)]
    files: Vec<FileInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keyid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// One signed file. As in Go, a missing or `null` field reads as empty (and
/// then fails its own check: an empty algorithm is unsupported).
#[derive(Serialize, Deserialize)]
struct FileInfo {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    hash: String,
    #[serde(default, deserialize_with = "nullable")]
    algorithm: String,
}

fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

// ---------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------

/// A private key (or HMAC secret) that signs bundles.
#[derive(Clone)]
pub struct SigningKey {
    algorithm: Algorithm,
    name: String,
    key: EncodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.name)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// `algorithm` is OPA's name (`RS256`, `PS256`, `ES256`, `HS256`, …);
    /// `key` is a PEM private key (`RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`)
    /// or, for `HS*`, the secret itself.
    pub fn new(algorithm: &str, key: &str) -> Result<Self, BundleError> {
        let alg = parse_algorithm(None, algorithm)?;
        let bad = |why: String| config_error(None, why);
        let encoding = if is_hmac(algorithm) {
            EncodingKey::from_secret(key.as_bytes())
        } else {
            let pem = key.as_bytes();
            match alg {
                Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
                Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
                _ => EncodingKey::from_rsa_pem(pem),
            }
            .map_err(|e| bad(format!("cannot read {algorithm} private key: {e}")))?
        };
        Ok(Self {
            algorithm: alg,
            name: algorithm.to_string(),
            key: encoding,
        })
    }

    /// The signature algorithm's name.
    pub fn algorithm(&self) -> &str {
        &self.name
    }
}

/// Signs a bundle's files the way `opa sign` does and returns the
/// `.signatures.json` to add to it: one JWT listing every file (except an
/// existing `.signatures.json`) with its SHA-256, `kid` header and
/// `keyid` claim set to `keyid`, and `scope` claim set to `scope`, when given.
pub fn sign_files(
    files: &[BundleFile],
    key: &SigningKey,
    keyid: Option<&str>,
    scope: Option<&str>,
) -> Result<BundleFile, BundleError> {
    let mut ordered: Vec<&BundleFile> =
        files.iter().filter(|f| f.path != SIGNATURES_FILE).collect();
    ordered.sort_by(|a, b| a.path.cmp(&b.path));
    let limits = Limits::default();
    let mut infos = Vec::with_capacity(ordered.len());
    for f in ordered {
        infos.push(FileInfo {
            name: f.path.clone(),
            hash: hex::encode(hash_file(f, HashAlgorithm::Sha256, &limits)?),
            algorithm: DEFAULT_HASH.to_string(),
        });
    }
    let claims = Claims {
        files: infos,
        keyid: keyid.map(String::from),
        scope: scope.map(String::from),
    };
    let mut header = serde_json::Map::new();
    header.insert("alg".into(), Value::String(key.name.clone()));
    if let Some(kid) = keyid {
        header.insert("kid".into(), Value::String(kid.to_string()));
    }
    let message = format!(
        "{}.{}",
        b64_json(&Value::Object(header))?,
        b64_json(&claims)?
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key.key, key.algorithm)
        .map_err(|e| config_error(keyid, format!("signing failed: {e}")))?;
    let token = format!("{message}.{signature}");
    // Laid out as OPA writes it (one-space indent).
    let doc = serde_json::json!({ "signatures": [token] });
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    doc.serialize(&mut ser)
        .map_err(|e| config_error(keyid, e.to_string()))?;
    Ok(BundleFile {
        path: SIGNATURES_FILE.to_string(),
        bytes,
    })
}

fn b64_json<T: Serialize>(value: &T) -> Result<String, BundleError> {
    let bytes = serde_json::to_vec(value).map_err(|e| config_error(None, e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

// ---------------------------------------------------------------------------
// File hashes
// ---------------------------------------------------------------------------

/// File hash algorithms OPA accepts in a signature payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashAlgorithm {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha512_224,
    Sha512_256,
}

impl HashAlgorithm {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "MD5" => Self::Md5,
            "SHA-1" => Self::Sha1,
            "SHA-224" => Self::Sha224,
            "SHA-256" => Self::Sha256,
            "SHA-384" => Self::Sha384,
            "SHA-512" => Self::Sha512,
            "SHA-512-224" => Self::Sha512_224,
            "SHA-512-256" => Self::Sha512_256,
            _ => return None,
        })
    }

    fn hasher(self) -> Box<dyn DynDigest> {
        match self {
            Self::Md5 => Box::new(md5::Md5::default()),
            Self::Sha1 => Box::new(sha1::Sha1::default()),
            Self::Sha224 => Box::new(sha2::Sha224::default()),
            Self::Sha256 => Box::new(sha2::Sha256::default()),
            Self::Sha384 => Box::new(sha2::Sha384::default()),
            Self::Sha512 => Box::new(sha2::Sha512::default()),
            Self::Sha512_224 => Box::new(sha2::Sha512_224::default()),
            Self::Sha512_256 => Box::new(sha2::Sha512_256::default()),
        }
    }
}

/// OPA's "structured documents": hashed over their canonical JSON form.
fn is_structured(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    matches!(base, "data.json" | "data.yaml" | ".manifest")
}

/// The digest of one file as OPA computes it.
fn hash_file(
    f: &BundleFile,
    algorithm: HashAlgorithm,
    limits: &Limits,
) -> Result<Vec<u8>, BundleError> {
    let mut h = algorithm.hasher();
    if is_structured(&f.path) {
        canonical::write(&f.path, &f.bytes, limits, &mut |b: &[u8]| h.update(b))?;
    } else {
        h.update(&f.bytes);
    }
    Ok(h.finalize().into_vec())
}

/// The canonical JSON form OPA hashes structured documents over.
mod canonical {
    use super::{depth, BundleError, Limits, Value, MAX_CANONICAL_DEPTH};
    use std::collections::BTreeMap;

    /// A parsed JSON value that keeps each number's text.
    enum Node<'a> {
        /// `true`, `false`, `null` or a number, exactly as written.
        Literal(&'a str),
        Str(String),
        Array(Vec<Node<'a>>),
        /// Sorted by key; a repeated key keeps its last value (as Go).
        Object(BTreeMap<String, Node<'a>>),
    }

    /// Writes the canonical form of a structured file to `out`.
    pub(super) fn write(
        path: &str,
        bytes: &[u8],
        limits: &Limits,
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<(), BundleError> {
        let bad = |reason: String| BundleError::BadData {
            file: path.to_string(),
            reason,
        };
        if depth::json_exceeds(bytes, limits.max_json_depth) {
            return Err(BundleError::JsonTooDeep {
                file: path.to_string(),
                limit: limits.max_json_depth,
            });
        }
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let json = std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| Parser::new(text).document());
        if let Some(node) = json {
            write_node(&node, out);
            return Ok(());
        }
        // Not JSON: OPA reads the file as YAML.
        let value = match crate::yaml::from_slice(bytes, limits.max_json_depth) {
            Ok(value) => value,
            Err(crate::yaml::YamlError::TooDeep { limit }) => {
                return Err(BundleError::JsonTooDeep {
                    file: path.to_string(),
                    limit,
                })
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        if depth::value_exceeds(&value, limits.max_json_depth) {
            return Err(BundleError::JsonTooDeep {
                file: path.to_string(),
                limit: limits.max_json_depth,
            });
        }
        write_value(&value, out).map_err(bad)
    }

    fn write_node(node: &Node<'_>, out: &mut dyn FnMut(&[u8])) {
        match node {
            Node::Literal(text) => out(text.as_bytes()),
            Node::Str(s) => write_string(s, out),
            Node::Array(items) => {
                out(b"[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out(b",");
                    }
                    write_node(item, out);
                }
                out(b"]");
            }
            Node::Object(map) => {
                out(b"{");
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out(b",");
                    }
                    write_string(k, out);
                    out(b":");
                    write_node(v, out);
                }
                out(b"}");
            }
        }
    }

    fn write_value(value: &Value, out: &mut dyn FnMut(&[u8])) -> Result<(), String> {
        match value {
            Value::Null => out(b"null"),
            Value::Bool(true) => out(b"true"),
            Value::Bool(false) => out(b"false"),
            Value::Number(n) => {
                let text = if n.is_i64() || n.is_u64() {
                    n.to_string()
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    go_float(f).ok_or_else(|| format!("number {f} has no JSON form"))?
                };
                out(text.as_bytes());
            }
            Value::String(s) => write_string(s, out),
            Value::Array(items) => {
                out(b"[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out(b",");
                    }
                    write_value(item, out)?;
                }
                out(b"]");
            }
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out(b"{");
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out(b",");
                    }
                    write_string(k, out);
                    out(b":");
                    if let Some(v) = map.get(k) {
                        write_value(v, out)?;
                    }
                }
                out(b"}");
            }
        }
        Ok(())
    }

    /// A float as Go's `encoding/json` writes a `float64`: shortest
    /// round-trip digits, plain notation unless the magnitude is below 1e-6
    /// or from 1e21 up, then `1e-7` / `1e+21` style.
    pub(super) fn go_float(f: f64) -> Option<String> {
        if !f.is_finite() {
            return None;
        }
        let abs = f.abs();
        if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
            let text = format!("{f:e}");
            let (mantissa, exp) = text.split_once('e')?;
            Some(match exp.strip_prefix('-') {
                Some(digits) => format!("{mantissa}e-{digits}"),
                None => format!("{mantissa}e+{exp:0>2}"),
            })
        } else {
            Some(format!("{f}"))
        }
    }

    /// A string as Go's `encoding/json` writes it with HTML escaping off.
    pub(super) fn write_string(s: &str, out: &mut dyn FnMut(&[u8])) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out(b"\"");
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, c) in s.char_indices() {
            let escape: Option<&[u8]> = match c {
                '"' => Some(b"\\\""),
                '\\' => Some(b"\\\\"),
                '\n' => Some(b"\\n"),
                '\r' => Some(b"\\r"),
                '\t' => Some(b"\\t"),
                '\u{8}' => Some(b"\\b"),
                '\u{c}' => Some(b"\\f"),
                '\u{2028}' => Some(b"\\u2028"),
                '\u{2029}' => Some(b"\\u2029"),
                c if (c as u32) < 0x20 => None,
                _ => continue,
            };
            out(&bytes[start..i]);
            match escape {
                Some(e) => out(e),
                None => {
                    let b = c as u32 as usize;
                    out(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) & 0xf], HEX[b & 0xf]]);
                }
            }
            start = i + c.len_utf8();
        }
        out(&bytes[start..]);
        out(b"\"");
    }

    /// A strict RFC 8259 reader (what Go's `json.Valid` accepts) that keeps
    /// number text. `None` means "not JSON".
    struct Parser<'a> {
        text: &'a str,
        pos: usize,
        depth: usize,
    }

    impl<'a> Parser<'a> {
        fn new(text: &'a str) -> Self {
            Self {
                text,
                pos: 0,
                depth: 0,
            }
        }

        fn document(mut self) -> Option<Node<'a>> {
            let node = self.value()?;
            self.skip_ws();
            (self.pos == self.text.len()).then_some(node)
        }

        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.pos).copied()
        }

        fn skip_ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.pos += 1;
            }
        }

        fn eat(&mut self, b: u8) -> bool {
            self.skip_ws();
            if self.peek() == Some(b) {
                self.pos += 1;
                true
            } else {
                false
            }
        }

        fn value(&mut self) -> Option<Node<'a>> {
            self.skip_ws();
            match self.peek()? {
                b'{' => self.nested(Self::object),
                b'[' => self.nested(Self::array),
                b'"' => self.string().map(Node::Str),
                b't' => self.keyword("true"),
                b'f' => self.keyword("false"),
                b'n' => self.keyword("null"),
                _ => self.number(),
            }
        }

        fn nested(&mut self, f: fn(&mut Self) -> Option<Node<'a>>) -> Option<Node<'a>> {
            self.depth += 1;
            if self.depth > MAX_CANONICAL_DEPTH {
                return None;
            }
            self.pos += 1;
            let node = f(self);
            self.depth -= 1;
            node
        }

        fn object(&mut self) -> Option<Node<'a>> {
            let mut map = BTreeMap::new();
            if self.eat(b'}') {
                return Some(Node::Object(map));
            }
            loop {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return None;
                }
                let key = self.string()?;
                if !self.eat(b':') {
                    return None;
                }
                let value = self.value()?;
                map.insert(key, value);
                if self.eat(b',') {
                    continue;
                }
                return self.eat(b'}').then_some(Node::Object(map));
            }
        }

        fn array(&mut self) -> Option<Node<'a>> {
            let mut items = Vec::new();
            if self.eat(b']') {
                return Some(Node::Array(items));
            }
            loop {
                items.push(self.value()?);
                if self.eat(b',') {
                    continue;
                }
                return self.eat(b']').then_some(Node::Array(items));
            }
        }

        fn keyword(&mut self, word: &'static str) -> Option<Node<'a>> {
            let end = self.pos + word.len();
            (self.text.get(self.pos..end) == Some(word)).then(|| {
                self.pos = end;
                Node::Literal(word)
            })
        }

        fn digits(&mut self) -> usize {
            let start = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            self.pos - start
        }

        fn number(&mut self) -> Option<Node<'a>> {
            let start = self.pos;
            if self.peek() == Some(b'-') {
                self.pos += 1;
            }
            match self.peek()? {
                b'0' => self.pos += 1,
                b'1'..=b'9' => {
                    self.digits();
                }
                _ => return None,
            }
            if self.peek() == Some(b'.') {
                self.pos += 1;
                if self.digits() == 0 {
                    return None;
                }
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                self.pos += 1;
                if matches!(self.peek(), Some(b'+' | b'-')) {
                    self.pos += 1;
                }
                if self.digits() == 0 {
                    return None;
                }
            }
            Some(Node::Literal(&self.text[start..self.pos]))
        }

        fn hex4(&mut self) -> Option<u32> {
            let digits = self.text.get(self.pos..self.pos + 4)?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            self.pos += 4;
            u32::from_str_radix(digits, 16).ok()
        }

        fn string(&mut self) -> Option<String> {
            self.pos += 1; // the opening quote
            let mut out = String::new();
            loop {
                let rest = self.text.get(self.pos..)?;
                let stop = rest.find(|c: char| c == '"' || c == '\\' || (c as u32) < 0x20)?;
                out.push_str(&rest[..stop]);
                self.pos += stop;
                match self.peek()? {
                    b'"' => {
                        self.pos += 1;
                        return Some(out);
                    }
                    b'\\' => {
                        self.pos += 1;
                        let c = self.peek()?;
                        self.pos += 1;
                        match c {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'u' => out.push(self.unicode_escape()?),
                            _ => return None,
                        }
                    }
                    _ => return None, // a raw control character
                }
            }
        }

        /// After `\u`: one code point, pairing surrogates; a lone surrogate
        /// becomes U+FFFD, as Go decodes it.
        fn unicode_escape(&mut self) -> Option<char> {
            let first = self.hex4()?;
            if (0xD800..0xDC00).contains(&first) && self.text[self.pos..].starts_with("\\u") {
                let save = self.pos;
                self.pos += 2;
                let second = self.hex4()?;
                if (0xDC00..0xE000).contains(&second) {
                    let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                    return Some(char::from_u32(c).unwrap_or('\u{FFFD}'));
                }
                self.pos = save;
            }
            Some(char::from_u32(first).unwrap_or('\u{FFFD}'))
        }
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    pub(super) fn canonical_text(path: &str, bytes: &[u8]) -> Result<String, BundleError> {
        let mut out = Vec::new();
        write(path, bytes, &Limits::default(), &mut |b: &[u8]| {
            out.extend_from_slice(b)
        })?;
        Ok(String::from_utf8(out).unwrap())
    }
}

/// Go's `filepath.Match` (Unix separators), for `exclude_files`.
mod glob {
    /// Checks the whole pattern's syntax once, when the verifier is built,
    /// so matching can treat any surprise as "no match".
    pub(super) fn validate(pattern: &str) -> Result<(), &'static str> {
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next().ok_or("ends with an unfinished escape")?;
                }
                '[' => {
                    if chars.peek() == Some(&'^') {
                        chars.next();
                    }
                    let mut ranges = 0;
                    loop {
                        match chars.next() {
                            None => return Err("unclosed character class"),
                            Some(']') if ranges > 0 => break,
                            Some(c) => {
                                class_char(c, &mut chars)?;
                                if chars.peek() == Some(&'-') {
                                    chars.next();
                                    let hi = chars.next().ok_or("unclosed character class")?;
                                    class_char(hi, &mut chars)?;
                                }
                                ranges += 1;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn class_char(
        c: char,
        chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    ) -> Result<char, &'static str> {
        match c {
            '-' | ']' => Err("bad character range"),
            '\\' => chars.next().ok_or("unfinished escape in character class"),
            c => Ok(c),
        }
    }

    /// True when `name` matches the whole `pattern` (validated beforehand).
    pub(super) fn matches(pattern: &str, name: &str) -> bool {
        let (mut pattern, mut name) = (pattern, name);
        'chunks: while !pattern.is_empty() {
            let (star, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if star && chunk.is_empty() {
                // A trailing star matches the rest of one path segment.
                return !name.contains('/');
            }
            if let Some(t) = match_chunk(chunk, name) {
                if t.is_empty() || !pattern.is_empty() {
                    name = t;
                    continue;
                }
            }
            if star {
                // Let the star take one more character, never a `/`.
                for (i, c) in name.char_indices() {
                    if c == '/' {
                        break;
                    }
                    if let Some(t) = match_chunk(chunk, &name[i + c.len_utf8()..]) {
                        if pattern.is_empty() && !t.is_empty() {
                            continue;
                        }
                        name = t;
                        continue 'chunks;
                    }
                }
            }
            return false;
        }
        name.is_empty()
    }

    /// Splits off leading stars and the chunk up to the next unescaped star
    /// outside a class.
    fn scan_chunk(pattern: &str) -> (bool, &str, &str) {
        let trimmed = pattern.trim_start_matches('*');
        let star = trimmed.len() != pattern.len();
        let mut in_class = false;
        let mut escaped = false;
        for (i, c) in trimmed.char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' => escaped = true,
                '[' => in_class = true,
                ']' => in_class = false,
                '*' if !in_class => return (star, &trimmed[..i], &trimmed[i..]),
                _ => {}
            }
        }
        (star, trimmed, "")
    }

    /// Matches `chunk` (no stars) at the start of `s`; returns the rest.
    fn match_chunk<'s>(chunk: &str, s: &'s str) -> Option<&'s str> {
        let mut chunk = chunk.chars().peekable();
        let mut s_chars = s.char_indices();
        let mut rest = s;
        while let Some(p) = chunk.next() {
            let (i, c) = s_chars.next()?;
            rest = &s[i + c.len_utf8()..];
            match p {
                '?' => {
                    if c == '/' {
                        return None;
                    }
                }
                '[' => {
                    let negated = chunk.peek() == Some(&'^');
                    if negated {
                        chunk.next();
                    }
                    let mut matched = false;
                    let mut ranges = 0;
                    loop {
                        let lo = match chunk.next()? {
                            ']' if ranges > 0 => break,
                            '\\' => chunk.next()?,
                            other => other,
                        };
                        let mut hi = lo;
                        if chunk.peek() == Some(&'-') {
                            chunk.next();
                            hi = match chunk.next()? {
                                '\\' => chunk.next()?,
                                other => other,
                            };
                        }
                        if lo <= c && c <= hi {
                            matched = true;
                        }
                        ranges += 1;
                    }
                    if matched == negated {
                        return None;
                    }
                }
                '\\' => {
                    if chunk.next()? != c {
                        return None;
                    }
                }
                p => {
                    if p != c {
                        return None;
                    }
                }
            }
        }
        Some(rest)
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    mod tests {
        use super::{matches, validate};

        #[test]
        fn go_filepath_match_cases() {
            let cases: &[(&str, &str, bool)] = &[
                ("abc", "abc", true),
                ("*", "abc", true),
                ("*c", "abc", true),
                ("a*", "a", true),
                ("a*", "abc", true),
                ("a*", "ab/c", false),
                ("a*/b", "abc/b", true),
                ("a*/b", "a/c/b", false),
                ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
                ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
                ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
                ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
                ("a*b?c*x", "abxbbxdbxebxczzx", true),
                ("a*b?c*x", "abxbbxdbxebxczzy", false),
                ("ab[c]", "abc", true),
                ("ab[b-d]", "abc", true),
                ("ab[e-g]", "abc", false),
                ("ab[^c]", "abc", false),
                ("ab[^b-d]", "abc", false),
                ("ab[^e-g]", "abc", true),
                ("a\\*b", "a*b", true),
                ("a\\*b", "ab", false),
                ("a?b", "a☺b", true),
                ("a[^a]b", "a☺b", true),
                ("a???b", "a☺b", false),
                ("[a-ζ]*", "α", true),
                ("*[a-ζ]", "A", false),
                ("a?b", "a/b", false),
                ("a*b", "a/b", false),
                ("[\\]a]", "]", true),
                ("[\\-]", "-", true),
                ("[x\\-]", "x", true),
                ("[x\\-]", "-", true),
                ("[x\\-]", "z", false),
                ("*x", "xxx", true),
                ("*.txt", "notes.txt", true),
                ("*.txt", "docs/notes.txt", false),
                ("docs/*", "docs/notes.txt", true),
            ];
            for &(pattern, name, want) in cases {
                assert!(validate(pattern).is_ok(), "{pattern}");
                assert_eq!(matches(pattern, name), want, "{pattern} ~ {name}");
            }
        }

        #[test]
        fn bad_patterns_are_refused() {
            for p in [
                "[", "[^", "[^bc", "a[", "\\", "[a-", "[]a]", "[-]", "[x-]", "a[\\",
            ] {
                assert!(validate(p).is_err(), "{p}");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::canonical::{canonical_text, go_float};
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_keeps_number_text() {
        let text = canonical_text(
            "data.json",
            br#" { "b": [1.0, 2e3, -0, {"y": null, "x": true}], "a": "\u00e9\n<&>" } "#,
        )
        .unwrap();
        assert_eq!(
            text,
            "{\"a\":\"é\\n<&>\",\"b\":[1.0,2e3,-0,{\"x\":true,\"y\":null}]}"
        );
    }

    #[test]
    fn canonical_strings_escape_as_go() {
        let mut out = Vec::new();
        canonical::write_string("\"\\\u{1}\u{8}\u{c}\u{7f}\u{2028}/", &mut |b: &[u8]| {
            out.extend_from_slice(b)
        });
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"\\\"\\\\\\u0001\\b\\f\u{7f}\\u2028/\""
        );
    }

    #[test]
    fn canonical_repeated_key_keeps_last_and_surrogates_pair() {
        let text =
            canonical_text("data.json", br#"{"a":1,"a":2,"s":"\ud83d\ude00\ud800"}"#).unwrap();
        assert_eq!(text, "{\"a\":2,\"s\":\"😀\u{FFFD}\"}");
    }

    #[test]
    fn canonical_yaml_numbers_follow_go_floats() {
        let text = canonical_text("data.yaml", b"b: 1.0\na: [1, 2.5, 1e21, 0.0000001]\n").unwrap();
        assert_eq!(text, "{\"a\":[1,2.5,1e+21,1e-7],\"b\":1}");
    }

    #[test]
    fn go_float_formats() {
        assert_eq!(go_float(100.0).unwrap(), "100");
        assert_eq!(go_float(1e20).unwrap(), "100000000000000000000");
        assert_eq!(go_float(1.5e21).unwrap(), "1.5e+21");
        assert_eq!(go_float(1e-6).unwrap(), "0.000001");
        assert_eq!(go_float(1.25e-10).unwrap(), "1.25e-10");
        assert_eq!(go_float(-0.0).unwrap(), "-0");
        assert!(go_float(f64::NAN).is_none());
    }

    #[test]
    fn invalid_json_and_yaml_is_bad_data() {
        let err = canonical_text("data.json", b"{\"a\": [}").unwrap_err();
        assert_eq!(err.kind(), "bad_data");
    }

    #[test]
    fn opa_documented_hash_of_structured_file() {
        // The canonical form is what OPA hashes: check SHA-256 over it
        // equals SHA-256 of the compact sorted text.
        use sha2::{Digest, Sha256};
        let f = BundleFile {
            path: "x/data.json".into(),
            bytes: b"{\n  \"b\": 2,\n  \"a\": 1\n}\n".to_vec(),
        };
        let got = hash_file(&f, HashAlgorithm::Sha256, &Limits::default()).unwrap();
        assert_eq!(got, Sha256::digest(br#"{"a":1,"b":2}"#).to_vec());
        let raw = BundleFile {
            path: "x/data.yml".into(),
            bytes: f.bytes.clone(),
        };
        let got = hash_file(&raw, HashAlgorithm::Sha256, &Limits::default()).unwrap();
        assert_eq!(got, Sha256::digest(&raw.bytes).to_vec());
    }

    #[test]
    fn every_hash_algorithm_is_known() {
        for (name, len) in [
            ("MD5", 16),
            ("SHA-1", 20),
            ("SHA-224", 28),
            ("SHA-256", 32),
            ("SHA-384", 48),
            ("SHA-512", 64),
            ("SHA-512-224", 28),
            ("SHA-512-256", 32),
        ] {
            let alg = HashAlgorithm::from_name(name).unwrap();
            let f = BundleFile {
                path: "p.rego".into(),
                bytes: b"package p".to_vec(),
            };
            assert_eq!(hash_file(&f, alg, &Limits::default()).unwrap().len(), len);
        }
        assert!(HashAlgorithm::from_name("SHA256").is_none());
    }
}
