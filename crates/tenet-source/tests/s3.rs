//! `S3Source` against a real S3-protocol server in-process on 127.0.0.1:
//! s3s (SigV4 authentication with static keys) over s3s-fs (objects in a
//! temporary directory), served by hyper. Objects are uploaded, replaced and
//! deleted during the tests through object_store, as an operator's tooling
//! would.
//!
//! s3s-fs answers a conditional GET with the full object, so the server
//! here wraps it with `If-None-Match` handling (a 304 when the ETag matches),
//! as S3 itself does, and counts the 304s it sends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use s3s::dto::{
    DeleteObjectInput, DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, ETagCondition,
    GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, PutObjectInput,
    PutObjectOutput,
};
use s3s::{S3Request, S3Response, S3Result, S3};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tenet_bundle::{write_tar_gz, BundleError, BundleFile, BundleSource, Fetched, Limits};
use tenet_source::{S3Client, S3Options, S3Source, Secret, SourceOptions, Template};

const ACCESS_KEY: &str = "AKIDTENETTEST";
const SECRET_KEY: &str = "tenet-test-secret-key";
const BUCKET: &str = "bundles";

/// s3s-fs plus conditional GET.
struct Conditional {
    inner: s3s_fs::FileSystem,
    not_modified: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl S3 for Conditional {
    async fn get_object(
        &self,
        mut req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let condition = req.input.if_none_match.take();
        let response = self.inner.get_object(req).await?;
        let matches = match (&condition, &response.output.e_tag) {
            (Some(ETagCondition::Any), Some(_)) => true,
            (Some(ETagCondition::ETag(wanted)), Some(held)) => wanted.value() == held.value(),
            _ => false,
        };
        if matches {
            self.not_modified.fetch_add(1, Ordering::SeqCst);
            return Err(s3s::s3_error!(NotModified));
        }
        Ok(response)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.inner.head_object(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.inner.put_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.inner.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.inner.delete_objects(req).await
    }
}

struct Server {
    addr: SocketAddr,
    not_modified: Arc<AtomicUsize>,
    _root: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let not_modified = Arc::new(AtomicUsize::new(0));
        let store = Conditional {
            inner: s3s_fs::FileSystem::new(root.path()).unwrap(),
            not_modified: Arc::clone(&not_modified),
        };
        let mut builder = s3s::service::S3ServiceBuilder::new(store);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            not_modified,
            _root: root,
        }
    }

    fn options(&self) -> S3Options {
        S3Options {
            from_env: false,
            endpoint: Some(format!("http://{}", self.addr)),
            region: Some("us-east-1".into()),
            allow_http: Some(true),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(Secret::new(SECRET_KEY)),
            max_retries: 0,
            timeout_seconds: 30,
            ..S3Options::default()
        }
    }

    /// The operator's handle on the bucket.
    fn admin(&self) -> Arc<dyn ObjectStore> {
        S3Client::new(BUCKET, &self.options(), Limits::default())
            .unwrap()
            .store()
    }

    fn not_modified(&self) -> usize {
        self.not_modified.load(Ordering::SeqCst)
    }
}

fn archive(revision: u32) -> Vec<u8> {
    write_tar_gz(&[
        BundleFile {
            path: "authz/policy.rego".into(),
            bytes: b"package authz\n\nallow if input.user == \"alice\"\n".to_vec(),
        },
        BundleFile {
            path: "data.json".into(),
            bytes: format!("{{\"revision\": {revision}}}").into_bytes(),
        },
    ])
    .unwrap()
}

async fn upload(store: &Arc<dyn ObjectStore>, key: &str, bytes: Vec<u8>) {
    store
        .put(&ObjectPath::from(key), PutPayload::from(bytes))
        .await
        .unwrap();
}

fn bundle(fetched: Fetched) -> (tenet_bundle::VersionTag, u64) {
    match fetched {
        Fetched::Bundle { payload, version } => {
            let bundle = payload.into_bundle(&Limits::default()).unwrap();
            (version, bundle.data["revision"].as_u64().unwrap())
        }
        Fetched::NotModified => panic!("expected a bundle, got NotModified"),
    }
}

fn io_error(result: Result<Fetched, BundleError>) -> (ErrorKind, String) {
    match result {
        Err(e @ BundleError::Io { .. }) => {
            let message = e.to_string();
            let BundleError::Io { source, .. } = e else {
                unreachable!()
            };
            (source.kind(), message)
        }
        Err(other) => panic!("expected an I/O error, got {other:?}"),
        Ok(fetched) => panic!("expected an error, got {fetched:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_not_modified_replace_delete() {
    let server = Server::start().await;
    let admin = server.admin();
    upload(&admin, "prod/acme.tar.gz", archive(1)).await;
    let src = S3Source::new(
        BUCKET,
        "prod/acme.tar.gz",
        &server.options(),
        Limits::default(),
    )
    .unwrap();
    assert_eq!(src.location(), "s3://bundles/prod/acme.tar.gz");

    let (v1, revision) = bundle(src.fetch(None).await.unwrap());
    assert_eq!(revision, 1);
    assert!(!v1.0.is_empty());

    // A conditional GET: the server itself answers 304.
    assert!(matches!(
        src.fetch(Some(&v1)).await.unwrap(),
        Fetched::NotModified
    ));
    assert_eq!(server.not_modified(), 1);

    // Replacement: a new ETag and the new bundle.
    upload(&admin, "prod/acme.tar.gz", archive(2)).await;
    let (v2, revision) = bundle(src.fetch(Some(&v1)).await.unwrap());
    assert_eq!(revision, 2);
    assert_ne!(v1, v2);
    assert_eq!(server.not_modified(), 1);

    // Deletion: "this tenant has no bundle".
    admin
        .delete(&ObjectPath::from("prod/acme.tar.gz"))
        .await
        .unwrap();
    let (kind, message) = io_error(src.fetch(Some(&v2)).await);
    assert_eq!(kind, ErrorKind::NotFound, "{message}");
    assert!(
        message.contains("s3://bundles/prod/acme.tar.gz"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_objects_are_refused() {
    let server = Server::start().await;
    upload(&server.admin(), "big.tar.gz", vec![7u8; 10_000]).await;
    let limits = Limits {
        max_compressed_bytes: 4096,
        ..Limits::default()
    };
    let src = S3Source::new(BUCKET, "big.tar.gz", &server.options(), limits).unwrap();
    match src.fetch(None).await {
        Err(BundleError::CompressedTooLarge { size, limit }) => {
            assert_eq!((size, limit), (10_000, 4096))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_an_error_not_a_missing_bundle() {
    let server = Server::start().await;
    upload(&server.admin(), "acme.tar.gz", archive(1)).await;
    let mut options = server.options();
    options.secret_access_key = Some(Secret::new("not-the-secret"));
    let src = S3Source::new(BUCKET, "acme.tar.gz", &options, Limits::default()).unwrap();
    let (kind, message) = io_error(src.fetch(None).await);
    assert_ne!(kind, ErrorKind::NotFound, "{message}");
    assert!(message.contains("s3://bundles/acme.tar.gz"), "{message}");

    options.access_key_id = Some("UNKNOWNKEY".into());
    let src = S3Source::new(BUCKET, "acme.tar.gz", &options, Limits::default()).unwrap();
    let (kind, message) = io_error(src.fetch(None).await);
    assert_ne!(kind, ErrorKind::NotFound, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_maps_tenants_to_keys_in_one_bucket() {
    let server = Server::start().await;
    let admin = server.admin();
    upload(&admin, "tenants/acme.tar.gz", archive(1)).await;
    upload(&admin, "tenants/globex.tar.gz", archive(7)).await;
    let template = Template::new(
        "s3://bundles/tenants/{tenant}.tar.gz",
        SourceOptions {
            s3: server.options(),
            ..SourceOptions::default()
        },
    )
    .unwrap();
    assert_eq!(template.kind(), "s3");

    let (_, acme) = bundle(template.source("acme").fetch(None).await.unwrap());
    let (_, globex) = bundle(template.source("globex").fetch(None).await.unwrap());
    assert_eq!((acme, globex), (1, 7));
    let missing = template.source("initech");
    assert_eq!(missing.location(), "s3://bundles/tenants/initech.tar.gz");
    assert_eq!(io_error(missing.fetch(None).await).0, ErrorKind::NotFound);
}
