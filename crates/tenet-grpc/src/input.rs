//! The policy input of one Check, built as opa-envoy-plugin builds it
//! (envoyauth/request.go, `RequestToInput`): the rendered request
//! (`attributes`), `version` (`{"ext_authz": "v3", "encoding":
//! "protojson"}`), `parsed_path`, `parsed_query`, and unless
//! `skip_request_body_parse`, `parsed_body` and `truncated_body`; plus
//! `source_principal` when the source peer has one.
//!
//! Bodies are parsed for `application/json` and
//! `application/x-www-form-urlencoded` content types (matched as
//! substrings of `content-type`, as the plugin does), from `body` or else
//! `raw_body`. A body is truncated (`parsed_body` null, `truncated_body`
//! true) when Envoy says so (`x-envoy-auth-partial-body: true`) or when
//! `content-length` is larger than the body. gRPC and multipart bodies are
//! not parsed (`parsed_body` null).
//!
//! Every size is checked before the work it bounds: the body, the header
//! count, the query pairs, the JSON nesting (pre-scanned without
//! recursion). No evaluation, no tenants.

use crate::attributes::{self, RenderError};
use crate::config::ExtAuthzConfig;
use crate::urlencoded::{self, UrlError};
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use serde_json::{json, Value};

/// Why no input could be built from a request. Each is answered with a
/// denied response ([`InputError::http_status`]), never with a gRPC error:
/// Envoy's `failure_mode_allow` must not let a malformed request through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The path or query does not decode.
    #[error("request_parse_error: path: {0}")]
    Path(UrlError),
    /// A form body does not decode.
    #[error("request_parse_error: form body: {0}")]
    Form(UrlError),
    /// A JSON body does not parse.
    #[error("request_parse_error: JSON body: {0}")]
    Json(String),
    /// A JSON body nests deeper than the input depth limit allows.
    #[error("request_parse_error: JSON body nests deeper than {0} levels")]
    JsonTooDeep(usize),
    /// `content-length` is not a number.
    #[error("request_parse_error: invalid content-length {0:?}")]
    ContentLength(String),
    /// The body is larger than `max_body_bytes`.
    #[error("request body of {size} bytes is over the limit of {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },
    /// More headers than `max_headers`.
    #[error("request has {count} headers, over the limit of {limit}")]
    TooManyHeaders { count: usize, limit: usize },
    /// The metadata cannot be rendered.
    #[error("request_parse_error: {0}")]
    Render(RenderError),
}

impl InputError {
    /// The HTTP status of the denied response.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::BodyTooLarge { .. } => 413,
            Self::TooManyHeaders { .. } => 431,
            _ => 400,
        }
    }
}

/// The limits input building works under.
#[derive(Debug, Clone, Copy)]
pub struct InputLimits {
    /// Largest `body` or `raw_body`.
    pub max_body_bytes: usize,
    /// Most headers.
    pub max_headers: usize,
    /// Most query or form pairs.
    pub max_query_params: usize,
    /// Deepest nesting of the whole input document.
    pub max_depth: usize,
}

impl InputLimits {
    /// The limits of `config`, with the host's input depth.
    pub fn new(config: &ExtAuthzConfig, max_depth: usize) -> Self {
        Self {
            max_body_bytes: config.max_body_bytes,
            max_headers: config.max_headers,
            max_query_params: config.max_query_params,
            max_depth,
        }
    }
}

/// The input document of `request`.
pub fn build(
    request: &CheckRequest,
    skip_request_body_parse: bool,
    limits: &InputLimits,
) -> Result<Value, InputError> {
    let http = request
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref());
    let empty = Default::default();
    let http = http.unwrap_or(&empty);
    let header_count = http.headers.len() + http.header_map.as_ref().map_or(0, |m| m.headers.len());
    if header_count > limits.max_headers {
        return Err(InputError::TooManyHeaders {
            count: header_count,
            limit: limits.max_headers,
        });
    }
    let size = http.body.len().max(http.raw_body.len());
    if size > limits.max_body_bytes {
        return Err(InputError::BodyTooLarge {
            size,
            limit: limits.max_body_bytes,
        });
    }
    // `attributes` sits one level below the input; metadata Structs two
    // further (attributes.metadataContext.filterMetadata.<name>).
    let mut input = attributes::check_request(
        request.attributes.as_ref(),
        limits.max_depth.saturating_sub(4),
    )
    .map_err(InputError::Render)?;
    input.insert(
        "version".into(),
        json!({"ext_authz": "v3", "encoding": "protojson"}),
    );
    let parsed_path = urlencoded::parsed_path(&http.path).map_err(InputError::Path)?;
    let parsed_query =
        urlencoded::parse_query(urlencoded::raw_query(&http.path), limits.max_query_params)
            .map_err(InputError::Path)?;
    input.insert("parsed_path".into(), json!(parsed_path));
    input.insert("parsed_query".into(), Value::Object(parsed_query));
    if !skip_request_body_parse {
        let (parsed, truncated) = parsed_body(http, limits)?;
        input.insert("parsed_body".into(), parsed);
        input.insert("truncated_body".into(), Value::Bool(truncated));
    }
    if let Some(principal) = request
        .attributes
        .as_ref()
        .and_then(|a| a.source.as_ref())
        .map(|s| s.principal.as_str())
        .filter(|p| !p.is_empty())
    {
        input.insert("source_principal".into(), Value::String(principal.into()));
    }
    Ok(Value::Object(input))
}

type HttpRequest = envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;

/// `(parsed_body, truncated_body)`.
fn parsed_body(http: &HttpRequest, limits: &InputLimits) -> Result<(Value, bool), InputError> {
    let header = |name: &str| http.headers.get(name).map(String::as_str);
    if header("x-envoy-auth-partial-body") == Some("true") {
        return Ok((Value::Null, true));
    }
    let Some(content_type) = header("content-type") else {
        return Ok((Value::Null, false));
    };
    let json = content_type.contains("application/json");
    let form = !json && content_type.contains("application/x-www-form-urlencoded");
    if !json && !form {
        return Ok((Value::Null, false));
    }
    let payload: &[u8] = if !http.body.is_empty() {
        http.body.as_bytes()
    } else if !http.raw_body.is_empty() {
        &http.raw_body
    } else {
        return Ok((Value::Null, false));
    };
    if let Some(length) = header("content-length") {
        let declared: i64 = length
            .parse()
            .map_err(|_| InputError::ContentLength(length.to_string()))?;
        let actual = i64::try_from(payload.len()).unwrap_or(i64::MAX);
        if declared != -1 && declared > actual {
            return Ok((Value::Null, true));
        }
    }
    if json {
        // parsed_body is one level below the input.
        let depth = limits.max_depth.saturating_sub(1);
        if tenet_bundle::depth::json_exceeds(payload, depth) {
            return Err(InputError::JsonTooDeep(depth));
        }
        let value: Value =
            serde_json::from_slice(payload).map_err(|e| InputError::Json(e.to_string()))?;
        return Ok((value, false));
    }
    let text = String::from_utf8_lossy(payload);
    let parsed =
        urlencoded::parse_query(&text, limits.max_query_params).map_err(InputError::Form)?;
    Ok((Value::Object(parsed), false))
}
