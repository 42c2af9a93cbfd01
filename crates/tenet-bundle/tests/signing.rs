#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Bundle signature verification (`Verifier`, `sign_files`,
//! `Bundle::from_files_verified`, `Payload::into_bundle_verified`).
//!
//! Keys are generated here (RSA 2048 and P-256 from a seeded RNG, HMAC
//! secrets); OPA's own tokens and digests come from
//! `fixtures/keys/opa_vectors.json`. Each rejection case asserts the
//! `SignatureFailure` it must produce and the file it names.

use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use tenet_bundle::{
    sign_files, write_tar_gz, Bundle, BundleError, BundleFile, KeyConfig, Limits, Payload,
    SignatureFailure, SigningKey, VerificationConfig, Verifier, SIGNATURES_FILE,
};

// ---------------------------------------------------------------------------
// Keys and helpers
// ---------------------------------------------------------------------------

struct Pair {
    private: String,
    public: String,
}

fn rsa_pair(seed: u64) -> Pair {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let private = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let public = rsa::RsaPublicKey::from(&private);
    Pair {
        private: private.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public: public.to_public_key_pem(LineEnding::LF).unwrap(),
    }
}

fn rsa_key() -> &'static Pair {
    static KEY: OnceLock<Pair> = OnceLock::new();
    KEY.get_or_init(|| rsa_pair(1))
}

fn other_rsa_key() -> &'static Pair {
    static KEY: OnceLock<Pair> = OnceLock::new();
    KEY.get_or_init(|| rsa_pair(2))
}

fn ec_key() -> &'static Pair {
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    static KEY: OnceLock<Pair> = OnceLock::new();
    KEY.get_or_init(|| {
        let secret = p256::SecretKey::random(&mut ChaCha8Rng::seed_from_u64(3));
        Pair {
            private: secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public: secret
                .public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
        }
    })
}

const SECRET: &str = "correct horse battery staple";

fn opa_vectors() -> BTreeMap<String, String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/keys/opa_vectors.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn file(path: &str, text: &str) -> BundleFile {
    BundleFile {
        path: path.to_string(),
        bytes: text.as_bytes().to_vec(),
    }
}

/// A small bundle with a policy, nested data, a manifest and a plain file.
fn sample() -> Vec<BundleFile> {
    vec![
        file(
            ".manifest",
            r#"{"revision": "r1", "roots": ["authz", "users"]}"#,
        ),
        file(
            "authz/policy.rego",
            "package authz\n\nallow if input.user == \"alice\"\n",
        ),
        file(
            "users/data.json",
            r#"{"alice": {"roles": ["admin"], "age": 30.0}, "bob": {"roles": []}}"#,
        ),
        file("README.txt", "not a policy"),
    ]
}

fn signed(
    files: &[BundleFile],
    key: &SigningKey,
    keyid: Option<&str>,
    scope: Option<&str>,
) -> Vec<BundleFile> {
    let mut out = files.to_vec();
    out.push(sign_files(files, key, keyid, scope).unwrap());
    out
}

fn config(keys: &[(&str, KeyConfig)]) -> VerificationConfig {
    VerificationConfig {
        keys: keys
            .iter()
            .map(|(id, k)| (id.to_string(), k.clone()))
            .collect(),
        ..VerificationConfig::default()
    }
}

fn verifier(cfg: &VerificationConfig) -> Verifier {
    Verifier::new(cfg).unwrap_or_else(|e| panic!("verifier: {e}"))
}

fn hmac_verifier(id: &str, secret: &str) -> Verifier {
    verifier(&config(&[(id, KeyConfig::new("HS256", secret, None))]))
}

fn hmac_signer() -> SigningKey {
    SigningKey::new("HS256", SECRET).unwrap()
}

fn load(files: Vec<BundleFile>, v: &Verifier) -> Result<Bundle, BundleError> {
    Bundle::from_files_verified(files, &Limits::default(), Some(v))
}

/// The signature failure of a rejected load, with the whole error printed
/// when it is something else.
fn failure(result: Result<Bundle, BundleError>) -> SignatureFailure {
    match result {
        Err(BundleError::Signature { reason }) => {
            assert_eq!(
                BundleError::Signature {
                    reason: reason.clone()
                }
                .kind(),
                "signature_invalid"
            );
            reason
        }
        Err(other) => panic!("expected a signature failure, got {other:?} ({other})"),
        Ok(b) => panic!(
            "expected a signature failure, the bundle loaded: {:?}",
            b.files
        ),
    }
}

fn replace(files: &mut [BundleFile], path: &str, text: &str) {
    let f = files.iter_mut().find(|f| f.path == path).unwrap();
    f.bytes = text.as_bytes().to_vec();
}

// ---------------------------------------------------------------------------
// Accepted bundles
// ---------------------------------------------------------------------------

#[test]
fn rs256_signed_bundle_loads() {
    let key = SigningKey::new("RS256", &rsa_key().private).unwrap();
    let v = verifier(&config(&[(
        "global",
        KeyConfig::new("RS256", rsa_key().public.clone(), None),
    )]));
    let bundle = load(signed(&sample(), &key, Some("global"), None), &v).unwrap();
    assert_eq!(bundle.modules[0].package, ["authz"]);
    assert_eq!(bundle.data["users"]["alice"]["roles"], json!(["admin"]));
    assert_eq!(bundle.manifest.revision, "r1");
}

#[test]
fn ps256_and_pkcs1_public_key_verify() {
    use rsa::pkcs1::{EncodeRsaPublicKey, LineEnding};
    use rsa::pkcs8::DecodePublicKey;
    let key = SigningKey::new("PS256", &rsa_key().private).unwrap();
    let pkcs1 = rsa::RsaPublicKey::from_public_key_pem(&rsa_key().public)
        .unwrap()
        .to_pkcs1_pem(LineEnding::LF)
        .unwrap();
    assert!(pkcs1.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
    let v = verifier(&config(&[("k", KeyConfig::new("PS256", pkcs1, None))]));
    load(signed(&sample(), &key, Some("k"), None), &v).unwrap();
}

#[test]
fn es256_signed_bundle_loads() {
    let key = SigningKey::new("ES256", &ec_key().private).unwrap();
    let v = verifier(&config(&[(
        "ec",
        KeyConfig::new("ES256", ec_key().public.clone(), None),
    )]));
    let bundle = load(signed(&sample(), &key, Some("ec"), None), &v).unwrap();
    assert_eq!(bundle.modules.len(), 1);
}

#[test]
fn hs256_signed_bundle_loads_and_scope_matches() {
    let v = verifier(&VerificationConfig {
        scope: Some("write".into()),
        ..config(&[("shared", KeyConfig::new("HS256", SECRET, None))])
    });
    load(
        signed(&sample(), &hmac_signer(), Some("shared"), Some("write")),
        &v,
    )
    .unwrap();

    // The key's own scope applies when the bundle configures none.
    let v = verifier(&config(&[(
        "shared",
        KeyConfig::new("HS256", SECRET, Some("write")),
    )]));
    load(
        signed(&sample(), &hmac_signer(), Some("shared"), Some("write")),
        &v,
    )
    .unwrap();
}

#[test]
fn signed_archive_verifies_through_the_payload() {
    let key = SigningKey::new("HS512", SECRET).unwrap();
    let v = verifier(&config(&[("k", KeyConfig::new("HS512", SECRET, None))]));
    let archive = write_tar_gz(&signed(&sample(), &key, Some("k"), None)).unwrap();
    let bundle = Payload::Archive(archive.clone())
        .into_bundle_verified(&Limits::default(), Some(&v))
        .unwrap();
    assert!(bundle.files.iter().any(|(p, _)| p == SIGNATURES_FILE));

    // The same archive without its signature is refused by the payload too.
    let unsigned = write_tar_gz(&sample()).unwrap();
    let err = Payload::Archive(unsigned)
        .into_bundle_verified(&Limits::default(), Some(&v))
        .unwrap_err();
    assert_eq!(err.kind(), "signature_invalid");
}

#[test]
fn signatures_file_is_ignored_without_a_verifier() {
    // A valid one, a broken one, and one signed for other content.
    let good = signed(&sample(), &hmac_signer(), Some("k"), None);
    let mut garbage = sample();
    garbage.push(file(SIGNATURES_FILE, "this is not JSON"));
    let mut stale = good.clone();
    replace(&mut stale, "README.txt", "changed after signing");
    for files in [good, garbage, stale] {
        let bundle = Bundle::from_files(files.clone(), &Limits::default()).unwrap();
        assert_eq!(bundle.data["users"]["bob"], json!({"roles": []}));
        assert_eq!(bundle.modules.len(), 1);
        Payload::Files(files)
            .into_bundle_verified(&Limits::default(), None)
            .unwrap();
    }
}

#[test]
fn reserialised_json_data_still_verifies() {
    let v = hmac_verifier("k", SECRET);
    let mut files = signed(&sample(), &hmac_signer(), Some("k"), None);
    // Same document: other whitespace, other key order, escaped characters.
    replace(
        &mut files,
        "users/data.json",
        "{\n  \"bob\" : { \"roles\" : [ ] },\n  \"al\\u0069ce\": {\"age\": 30.0, \"roles\": [\"admin\"]}\n}\n",
    );
    replace(
        &mut files,
        ".manifest",
        "{\"roots\":[\"authz\",\"users\"],\n\"revision\":\"r1\"}",
    );
    load(files.clone(), &v).unwrap();

    // OPA hashes numbers as written: 30.0 and 30 are different documents.
    replace(
        &mut files,
        "users/data.json",
        r#"{"alice": {"roles": ["admin"], "age": 30}, "bob": {"roles": []}}"#,
    );
    assert_eq!(
        failure(load(files, &v)),
        SignatureFailure::FileHashMismatch {
            file: "users/data.json".into()
        }
    );
}

#[test]
fn excluded_files_need_no_signature() {
    let mut cfg = config(&[("k", KeyConfig::new("HS256", SECRET, None))]);
    cfg.exclude_files = vec!["*.txt".into(), "docs/*".into()];
    let v = verifier(&cfg);
    let mut files = signed(&sample(), &hmac_signer(), Some("k"), None);
    // Changed after signing, but excluded.
    replace(&mut files, "README.txt", "edited");
    // Added after signing, but excluded.
    files.push(file("docs/guide.md", "# guide"));
    load(files.clone(), &v).unwrap();

    // `*` does not cross a directory: a nested .txt is not excluded.
    files.push(file("docs/deep/notes.txt", "x"));
    assert_eq!(
        failure(load(files, &v)),
        SignatureFailure::FileNotSigned {
            file: "docs/deep/notes.txt".into()
        }
    );
}

// ---------------------------------------------------------------------------
// Rejections
// ---------------------------------------------------------------------------

#[test]
fn tampered_file_is_rejected() {
    let v = hmac_verifier("k", SECRET);
    let mut files = signed(&sample(), &hmac_signer(), Some("k"), None);
    replace(
        &mut files,
        "authz/policy.rego",
        "package authz\n\nallow := true\n",
    );
    let reason = failure(load(files, &v));
    assert_eq!(reason.name(), "file_hash_mismatch");
    assert_eq!(reason.file(), Some("authz/policy.rego"));
}

#[test]
fn missing_signed_file_is_rejected() {
    let v = hmac_verifier("k", SECRET);
    let mut files = signed(&sample(), &hmac_signer(), Some("k"), None);
    files.retain(|f| f.path != "authz/policy.rego");
    let reason = failure(load(files, &v));
    assert_eq!(reason.name(), "signed_file_missing");
    assert_eq!(reason.file(), Some("authz/policy.rego"));
}

#[test]
fn extra_file_is_rejected() {
    let v = hmac_verifier("k", SECRET);
    let mut files = signed(&sample(), &hmac_signer(), Some("k"), None);
    files.push(file(
        "authz/backdoor.rego",
        "package authz\n\nallow := true\n",
    ));
    let reason = failure(load(files, &v));
    assert_eq!(reason.name(), "file_not_signed");
    assert_eq!(reason.file(), Some("authz/backdoor.rego"));
}

#[test]
fn wrong_key_is_rejected() {
    // RSA: signed with one key, verified with another under the same id.
    let key = SigningKey::new("RS256", &rsa_key().private).unwrap();
    let v = verifier(&config(&[(
        "global",
        KeyConfig::new("RS256", other_rsa_key().public.clone(), None),
    )]));
    assert_eq!(
        failure(load(signed(&sample(), &key, Some("global"), None), &v)),
        SignatureFailure::BadSignature {
            key_id: "global".into()
        }
    );
    // HMAC: another secret.
    let v = hmac_verifier("k", "another secret");
    assert_eq!(
        failure(load(signed(&sample(), &hmac_signer(), Some("k"), None), &v)).name(),
        "bad_signature"
    );
}

#[test]
fn unknown_key_id_is_rejected() {
    let v = hmac_verifier("k", SECRET);
    assert_eq!(
        failure(load(
            signed(&sample(), &hmac_signer(), Some("nope"), None),
            &v
        )),
        SignatureFailure::UnknownKey {
            key_id: "nope".into()
        }
    );
    // No key id anywhere.
    assert_eq!(
        failure(load(signed(&sample(), &hmac_signer(), None, None), &v)),
        SignatureFailure::MissingKeyId
    );
}

#[test]
fn configured_keyid_wins_over_the_token() {
    let mut cfg = config(&[
        ("k", KeyConfig::new("HS256", SECRET, None)),
        ("other", KeyConfig::new("HS256", "other secret", None)),
    ]);
    cfg.keyid = Some("k".into());
    // The token names `other` (and `absent`), the configuration says `k`.
    load(
        signed(&sample(), &hmac_signer(), Some("other"), None),
        &verifier(&cfg),
    )
    .unwrap();
    load(
        signed(&sample(), &hmac_signer(), Some("absent"), None),
        &verifier(&cfg),
    )
    .unwrap();
    // And without the configured keyid, `other` is used and fails.
    cfg.keyid = None;
    assert_eq!(
        failure(load(
            signed(&sample(), &hmac_signer(), Some("other"), None),
            &verifier(&cfg)
        ))
        .name(),
        "bad_signature"
    );
}

#[test]
fn wrong_scope_is_rejected() {
    let mut cfg = config(&[("k", KeyConfig::new("HS256", SECRET, None))]);
    cfg.scope = Some("read".into());
    let v = verifier(&cfg);
    assert_eq!(
        failure(load(
            signed(&sample(), &hmac_signer(), Some("k"), Some("write")),
            &v
        )),
        SignatureFailure::ScopeMismatch {
            expected: "read".into(),
            found: "write".into()
        }
    );
    // A scope in the token with none configured is a mismatch too (as OPA).
    let v = hmac_verifier("k", SECRET);
    assert_eq!(
        failure(load(
            signed(&sample(), &hmac_signer(), Some("k"), Some("write")),
            &v
        ))
        .name(),
        "scope_mismatch"
    );
}

#[test]
fn unsigned_bundle_is_rejected_when_verifying() {
    let v = hmac_verifier("k", SECRET);
    assert_eq!(
        failure(load(sample(), &v)),
        SignatureFailure::MissingSignature
    );
}

#[test]
fn algorithm_confusion_is_rejected() {
    // An RSA key configured; the token claims HS256, made with the PEM text
    // of the public key as the HMAC secret.
    let forged = SigningKey::new("HS256", &rsa_key().public).unwrap();
    let v = verifier(&config(&[(
        "k",
        KeyConfig::new("RS256", rsa_key().public.clone(), None),
    )]));
    assert_eq!(
        failure(load(signed(&sample(), &forged, Some("k"), None), &v)).name(),
        "algorithm_mismatch"
    );
}

#[test]
fn multiple_or_malformed_signatures_are_rejected() {
    let v = hmac_verifier("k", SECRET);
    let one = sign_files(&sample(), &hmac_signer(), Some("k"), None).unwrap();
    let token: Value = serde_json::from_slice(&one.bytes).unwrap();
    let token = token["signatures"][0].as_str().unwrap().to_string();

    let with_sig = |text: String| {
        let mut files = sample();
        files.push(file(SIGNATURES_FILE, &text));
        files
    };
    assert_eq!(
        failure(load(
            with_sig(json!({"signatures": [token, token]}).to_string()),
            &v
        )),
        SignatureFailure::MultipleSignatures { count: 2 }
    );
    for bad in [
        "not json".to_string(),
        json!({"signatures": []}).to_string(),
        json!({"signatures": ["a.b"]}).to_string(),
        json!({"signatures": ["!!!.###.$$$"]}).to_string(),
        json!({"signatures": [token], "plugin": "custom"}).to_string(),
    ] {
        assert_eq!(
            failure(load(with_sig(bad.clone()), &v)).name(),
            "malformed",
            "{bad}"
        );
    }
}

#[test]
fn unsupported_file_hash_algorithm_is_rejected() {
    // A token made by hand, listing the manifest with an unknown algorithm.
    let v = hmac_verifier("k", SECRET);
    let files = vec![file(".manifest", "{}")];
    let token = hs256_token(json!({
        "files": [{"name": ".manifest", "hash": "00", "algorithm": "MD6"}],
        "keyid": "k"
    }));
    let mut with = files.clone();
    with.push(file(
        SIGNATURES_FILE,
        &json!({"signatures": [token]}).to_string(),
    ));
    assert_eq!(
        failure(load(with, &v)),
        SignatureFailure::UnsupportedHashAlgorithm {
            file: ".manifest".into(),
            algorithm: "MD6".into()
        }
    );
}

fn hs256_token(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------
// OPA compatibility
// ---------------------------------------------------------------------------

#[test]
fn tokens_signed_by_opa_verify() {
    let vectors = opa_vectors();
    let first = SignatureFailure::SignedFileMissing {
        file: vectors["signed_files_first"].clone(),
    };
    // A bundle holding only the token: the JWT checks pass, and the first
    // listed file is reported missing. That proves signature, key id and
    // scope were all accepted.
    let only = |token: &str| {
        vec![file(
            SIGNATURES_FILE,
            &json!({ "signatures": [token] }).to_string(),
        )]
    };
    let secret = &vectors["hs256_secret"];

    let hs = |scope: Option<&str>, keyid: Option<&str>| {
        verifier(&VerificationConfig {
            scope: scope.map(String::from),
            keyid: keyid.map(String::from),
            ..config(&[("foo", KeyConfig::new("HS256", secret.as_str(), None))])
        })
    };
    let rs = verifier(&VerificationConfig {
        scope: Some("write".into()),
        ..config(&[(
            "foo",
            KeyConfig::new("RS256", vectors["rs256_public_key"].as_str(), None),
        )])
    });

    // kid header.
    assert_eq!(
        failure(load(
            only(&vectors["hs256_kid_foo_scope_write"]),
            &hs(Some("write"), None)
        )),
        first
    );
    // Deprecated keyid claim.
    assert_eq!(
        failure(load(
            only(&vectors["hs256_keyid_claim_foo"]),
            &hs(Some("write"), None)
        )),
        first
    );
    // kid `bar`, but the configured keyid `foo` wins.
    assert_eq!(
        failure(load(
            only(&vectors["hs256_kid_bar"]),
            &hs(Some("write"), Some("foo"))
        )),
        first
    );
    assert_eq!(
        failure(load(
            only(&vectors["hs256_kid_bar"]),
            &hs(Some("write"), None)
        )),
        SignatureFailure::UnknownKey {
            key_id: "bar".into()
        }
    );
    // RS256 from OPA's signer.
    assert_eq!(
        failure(load(only(&vectors["rs256_kid_foo_scope_write"]), &rs)),
        first
    );

    // And the same tokens fail where OPA fails them.
    assert_eq!(
        failure(load(
            only(&vectors["hs256_kid_foo_scope_write"]),
            &hs(Some("bad_scope"), None)
        ))
        .name(),
        "scope_mismatch"
    );
    let wrong = verifier(&config(&[(
        "foo",
        KeyConfig::new("RS256", vectors["rs256_other_public_key"].as_str(), None),
    )]));
    assert_eq!(
        failure(load(only(&vectors["rs256_kid_foo_scope_write"]), &wrong)).name(),
        "bad_signature"
    );
}

#[test]
fn canonical_manifest_digest_matches_opa() {
    // OPA's MD5 of `{"revision": "quickbrownfaux"}` as a structured file.
    let vectors = opa_vectors();
    let v = hmac_verifier("k", SECRET);
    let token = hs256_token(json!({
        "files": [{"name": ".manifest", "hash": vectors["manifest_md5"], "algorithm": "MD5"}],
        "keyid": "k"
    }));
    let files = vec![
        file(".manifest", &vectors["manifest_text"]),
        file(SIGNATURES_FILE, &json!({"signatures": [token]}).to_string()),
    ];
    load(files, &v).unwrap();
}

#[test]
fn signatures_file_has_opa_layout() {
    let sig = sign_files(&sample(), &hmac_signer(), Some("k"), Some("write")).unwrap();
    assert_eq!(sig.path, ".signatures.json");
    let text = String::from_utf8(sig.bytes).unwrap();
    assert!(text.starts_with("{\n \"signatures\": [\n  \"ey"), "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let token = doc["signatures"][0].as_str().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    use base64::Engine as _;
    let decode = |s: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(decode(parts[0]), json!({"alg": "HS256", "kid": "k"}));
    let payload = decode(parts[1]);
    assert_eq!(payload["keyid"], "k");
    assert_eq!(payload["scope"], "write");
    let names: Vec<&str> = payload["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["algorithm"], "SHA-256");
            f["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            ".manifest",
            "README.txt",
            "authz/policy.rego",
            "users/data.json"
        ]
    );
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[test]
fn bad_configuration_fails_when_building_the_verifier() {
    let cases = [
        (
            "unknown algorithm",
            config(&[("k", KeyConfig::new("RS007", "x", None))]),
        ),
        (
            "ES512",
            config(&[("k", KeyConfig::new("ES512", ec_key().public.clone(), None))]),
        ),
        (
            "not PEM",
            config(&[("k", KeyConfig::new("RS256", "hello", None))]),
        ),
        (
            "broken PEM",
            config(&[(
                "k",
                KeyConfig::new(
                    "RS256",
                    "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                    None,
                ),
            )]),
        ),
        (
            "private key",
            config(&[(
                "k",
                KeyConfig::new("RS256", rsa_key().private.clone(), None),
            )]),
        ),
        (
            "EC key for RSA",
            config(&[("k", KeyConfig::new("RS256", ec_key().public.clone(), None))]),
        ),
        (
            "RSA key for EC",
            config(&[("k", KeyConfig::new("ES256", rsa_key().public.clone(), None))]),
        ),
        (
            "keyid without key",
            VerificationConfig {
                keyid: Some("missing".into()),
                ..config(&[("k", KeyConfig::new("HS256", SECRET, None))])
            },
        ),
        (
            "bad exclude pattern",
            VerificationConfig {
                exclude_files: vec!["[".into()],
                ..config(&[("k", KeyConfig::new("HS256", SECRET, None))])
            },
        ),
    ];
    for (what, cfg) in cases {
        let err = Verifier::new(&cfg).expect_err(what);
        assert_eq!(err.kind(), "signing_config", "{what}: {err}");
    }
    assert_eq!(
        SigningKey::new("RS256", "not a key").unwrap_err().kind(),
        "signing_config"
    );
}

#[test]
fn configuration_reads_opa_key_names() {
    let keys: BTreeMap<String, KeyConfig> = serde_json::from_value(json!({
        "global_key": {"algorithm": "RS256", "key": rsa_key().public, "scope": "read"},
        "hmac": {"algorithm": "HS256", "key": SECRET},
        "default_alg": {"key": rsa_key().public},
        "signer_only": {"private_key": "-----BEGIN PRIVATE KEY-----..."}
    }))
    .unwrap();
    assert_eq!(keys["default_alg"].algorithm, "RS256");
    assert!(
        !format!("{:?}", keys["hmac"]).contains(SECRET),
        "secrets stay out of Debug"
    );
    let signing: VerificationConfig =
        serde_yaml_ng::from_str("keyid: global_key\nscope: read\nexclude_files: [\"*.md\"]\n")
            .unwrap();
    let cfg = VerificationConfig { keys, ..signing };
    assert_eq!(cfg.keyid.as_deref(), Some("global_key"));
    let v = verifier(&cfg);
    let key = SigningKey::new("RS256", &rsa_key().private).unwrap();
    load(signed(&sample(), &key, None, Some("read")), &v).unwrap();
}

#[test]
fn key_can_be_read_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("public.pem");
    std::fs::write(&path, &ec_key().public).unwrap();
    let from_file = KeyConfig::from_key_or_file("ES256", path.to_str().unwrap(), None).unwrap();
    assert_eq!(from_file.key, ec_key().public);
    // Text that is no file is taken literally (an HMAC secret).
    let literal = KeyConfig::from_key_or_file("HS256", SECRET, Some("s")).unwrap();
    assert_eq!(literal.key, SECRET);
    assert_eq!(literal.scope.as_deref(), Some("s"));
    let v = verifier(&config(&[("ec", from_file)]));
    let key = SigningKey::new("ES256", &ec_key().private).unwrap();
    load(signed(&sample(), &key, Some("ec"), None), &v).unwrap();
}

// ---------------------------------------------------------------------------
// Property: any single-byte change is caught
// ---------------------------------------------------------------------------

fn same_json(a: &[u8], b: &[u8]) -> bool {
    match (
        serde_json::from_slice::<Value>(a),
        serde_json::from_slice::<Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Changing one byte of any file (the signature file included) gets the
    /// bundle rejected — unless the file is JSON and the change is
    /// whitespace the canonical hash ignores by design.
    #[test]
    fn any_single_byte_change_is_rejected(which in 0usize..5, at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        static SIGNED: OnceLock<Vec<BundleFile>> = OnceLock::new();
        let original = SIGNED.get_or_init(|| signed(&sample(), &hmac_signer(), Some("k"), None));
        let v = hmac_verifier("k", SECRET);
        let mut files = original.clone();
        let target = &mut files[which];
        let i = at.index(target.bytes.len());
        prop_assume!(target.bytes[i] != byte);
        let before = target.bytes.clone();
        target.bytes[i] = byte;
        let path = target.path.clone();
        let after = target.bytes.clone();
        match load(files, &v) {
            Ok(_) => {
                let structured = path.ends_with(".json") || path == ".manifest";
                prop_assert!(structured && same_json(&before, &after),
                    "{path}: byte {i} changed to {byte:#x} and the bundle still loaded");
            }
            Err(e) => prop_assert!(
                matches!(e.kind(), "signature_invalid" | "bad_data" | "bad_manifest" | "invalid_utf8" | "bad_package"),
                "{path}: unexpected error {e}"
            ),
        }
    }
}

#[test]
fn verifier_and_signing_key_are_shareable() {
    fn shareable<T: Send + Sync + Clone + std::fmt::Debug>() {}
    shareable::<Verifier>();
    shareable::<SigningKey>();
    // Debug never shows secrets.
    let shown = format!("{:?} {:?}", hmac_verifier("k", SECRET), hmac_signer());
    assert!(!shown.contains(SECRET), "{shown}");
}
