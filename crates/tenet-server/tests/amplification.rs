//! Requests that are small on the wire but large once parsed, merged or
//! answered (#10 findings 2–5), sent to the real binary. Each test sends the
//! hostile request, checks the OPA-shaped refusal, then proves the process
//! is alive, its resident memory grew by less than a bound the attack would
//! pass by gigabytes, and the example tenant `payments` still decides
//! correctly. The payloads are generated here; none is stored in the repo.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::io::Write;
use support::{alice, client, still_answers, Server, ALLOW};

/// Most a hostile request may add to the server's resident memory. Every
/// attack here would add gigabytes; a refused request adds little.
const RSS_GROWTH_KIB: u64 = 400 * 1024;

/// Starts the server, warms `payments` up, and returns it with its RSS.
async fn start(c: &reqwest::Client, args: &[&str]) -> (Server, u64) {
    let mut server = Server::start(args);
    still_answers(c, &mut server, "start", 0, RSS_GROWTH_KIB).await;
    let rss = server.rss_kib();
    (server, rss)
}

/// The status and the JSON body (`null` when not JSON).
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// An answer for a failure message: its first 300 characters (an answer
/// that was not refused can be gigabytes).
fn short(answer: &Value) -> String {
    answer.to_string().chars().take(300).collect()
}

/// `answer` refuses the request: `status`, OPA's error `code`, and a
/// message naming `needle`.
fn assert_refused(what: &str, (status, answer): &(u16, Value), want: (u16, &str, &str)) {
    let (want_status, code, needle) = want;
    assert_eq!(*status, want_status, "{what}: {}", short(answer));
    assert_eq!(answer["code"], code, "{what}: {}", short(answer));
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{what}: {}", short(answer));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// #10 finding 2: a 50 KB YAML body whose input refers 10,000 times to an
/// anchor of 2,000 strings describes 20 million strings (gigabytes once
/// built). The bounded parser charges every node and string byte against
/// `max_input_bytes` as it builds, so it stops at 10 MiB with a 413.
#[tokio::test]
async fn yaml_alias_bombs_are_refused_while_parsing() {
    let c = client(120);
    let (mut server, baseline) = start(&c, &[]).await;
    let anchor = format!("[{}]", "xxxxxxxx,".repeat(2_000));
    let refs = format!("[{}]", "*a,".repeat(10_000));
    for (path, body) in [
        (ALLOW, format!("a: &a {anchor}\ninput: {refs}\n")),
        // `POST /`: the whole body is the input.
        ("/tenants/payments", format!("a: &a {anchor}\nb: {refs}\n")),
    ] {
        assert!(body.len() < 60_000, "{}", body.len());
        let answer = send(
            c.post(server.url(path))
                .header("content-type", "application/yaml")
                .body(body),
        )
        .await;
        assert_refused(path, &answer, (413, "invalid_parameter", "larger than"));
        still_answers(
            &c,
            &mut server,
            &format!("an alias bomb on {path}"),
            baseline,
            RSS_GROWTH_KIB,
        )
        .await;
    }
}

/// #10 finding 3: a million levels of YAML nesting in a gzipped body of a
/// few KiB. libyaml's scan of `{a: {a: …` is quadratic in its depth (hours
/// at this size); the pre-scan refuses it in one pass, before the parser.
#[tokio::test]
async fn deep_yaml_is_refused_before_parsing() {
    let c = client(120);
    let (mut server, baseline) = start(&c, &[]).await;
    let n = 1_000_000;
    for (form, nested) in [
        ("flow mappings", "{a: ".repeat(n)),
        ("flow sequences", "[".repeat(n)),
        ("block sequences", "- ".repeat(n) + "x"),
    ] {
        let body = gzip(format!("input: {nested}").as_bytes());
        assert!(body.len() < 64 * 1024, "{form}: {} bytes", body.len());
        let answer = send(
            c.post(server.url(ALLOW))
                .header("content-type", "application/x-yaml")
                .header("content-encoding", "gzip")
                .body(body),
        )
        .await;
        assert_refused(form, &answer, (400, "invalid_parameter", "deeper than"));
        still_answers(
            &c,
            &mut server,
            &format!("deep {form}"),
            baseline,
            RSS_GROWTH_KIB,
        )
        .await;
    }
}

/// #10 finding 4: a 1.5 MB `common_input` merged under 2,000 inputs is 3 GB
/// of merged documents (41 s of CPU before the bound). The batch is refused
/// with a 413 before any input is merged or decided; a small batch is
/// still answered.
#[tokio::test]
async fn batches_are_bounded_before_the_work() {
    let c = client(120);
    let (mut server, baseline) = start(&c, &[]).await;
    let batch = "/tenants/payments/v1/batch/data/payments/authz/allow";
    let inputs: serde_json::Map<String, Value> =
        (0..2_000).map(|i| (i.to_string(), alice())).collect();
    let common = json!({ "blob": "x".repeat(1_500_000) });
    let answer = send(
        c.post(server.url(batch))
            .json(&json!({ "inputs": inputs, "common_input": common })),
    )
    .await;
    assert_refused(
        "a large common_input",
        &answer,
        (413, "invalid_parameter", "max_batch_bytes"),
    );
    still_answers(
        &c,
        &mut server,
        "a batch past max_batch_bytes",
        baseline,
        RSS_GROWTH_KIB,
    )
    .await;

    let (status, answer) = send(c.post(server.url(batch)).json(&json!({
        "inputs": { "a": alice(), "b": { "user": "nobody" } },
        "common_input": { "action": "refund" },
    })))
    .await;
    assert_eq!(status, 200, "{}", short(&answer));
    assert_eq!(
        answer["responses"]["a"]["result"],
        true,
        "{}",
        short(&answer)
    );
    assert_eq!(
        answer["responses"]["b"]["result"],
        false,
        "{}",
        short(&answer)
    );

    // The bounds come from the config.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tenet.yaml");
    std::fs::write(
        &config,
        "server:\n  max_batch_inputs: 2\n  max_batch_bytes: 1000\n",
    )
    .unwrap();
    let mut small = Server::start(&["--config", config.to_str().unwrap()]);
    for (inputs, common, what) in [
        (
            json!({"a": {}, "b": {}, "c": {}}),
            json!({}),
            "max 2 inputs",
        ),
        (
            json!({"a": {}, "b": {}}),
            json!({"blob": "x".repeat(600)}),
            "max_batch_bytes",
        ),
    ] {
        let (status, answer) = send(
            c.post(small.url(batch))
                .json(&json!({ "inputs": inputs, "common_input": common })),
        )
        .await;
        assert_eq!(status, 413, "{what}: {}", short(&answer));
    }
    still_answers(&c, &mut small, "a small config", 0, RSS_GROWTH_KIB).await;
}

/// #10 finding 5: a policy whose result holds 1,000 references to a 1 MB
/// input string (1 GB once converted and written) is answered 500
/// `internal_error` naming `max_result_bytes`, measured before conversion;
/// 50 MB of `print` output in one evaluation is cut to `max_print_bytes`.
#[tokio::test]
async fn results_are_bounded_before_they_are_written() {
    let c = client(120);
    let (mut server, _) = start(&c, &[]).await;
    let policy = r#"package big

many := [s | some i in numbers.range(1, 1000); s := input.big]

one := input.big

noisy if {
    every i in numbers.range(1, 50) {
        print(input.big)
    }
}
"#;
    let (status, answer) = send(
        c.put(server.url("/tenants/amplify/v1/policies/big.rego"))
            .body(policy),
    )
    .await;
    assert_eq!(status, 200, "{}", short(&answer));
    let baseline = server.rss_kib();
    let input = json!({ "input": { "big": "x".repeat(1 << 20) } });
    let answer = send(
        c.post(server.url("/tenants/amplify/v1/data/big/many"))
            .json(&input),
    )
    .await;
    assert_refused(
        "1,000 references",
        &answer,
        (500, "internal_error", "max_result_bytes"),
    );
    still_answers(
        &c,
        &mut server,
        "a result past max_result_bytes",
        baseline,
        RSS_GROWTH_KIB,
    )
    .await;

    let (status, answer) = send(
        c.post(server.url("/tenants/amplify/v1/data/big/noisy"))
            .json(&input),
    )
    .await;
    assert_eq!(
        (status, &answer["result"]),
        (200, &json!(true)),
        "{}",
        short(&answer)
    );
    still_answers(
        &c,
        &mut server,
        "50 MB of print output",
        baseline,
        RSS_GROWTH_KIB,
    )
    .await;

    // The bound comes from the config: a 1 MB result passes the default
    // and not `max_result_bytes: 100000`.
    let small_input = json!({ "input": { "big": "x".repeat(1000) } });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tenet.yaml");
    std::fs::write(&config, "server:\n  max_result_bytes: 100000\n").unwrap();
    let small = Server::start(&["--config", config.to_str().unwrap()]);
    for (server, want) in [(&server, 200), (&small, 500)] {
        let (status, _) = send(
            c.put(server.url("/tenants/amplify/v1/policies/big.rego"))
                .body(policy),
        )
        .await;
        assert_eq!(status, 200);
        let (status, answer) = send(
            c.post(server.url("/tenants/amplify/v1/data/big/many"))
                .json(&small_input),
        )
        .await;
        assert_eq!(status, want, "{}", short(&answer));
        // A batch's results add up to the same bound: 200 results of 1 KB.
        let inputs: serde_json::Map<String, Value> = (0..200)
            .map(|i| (i.to_string(), small_input["input"].clone()))
            .collect();
        let (status, answer) = send(
            c.post(server.url("/tenants/amplify/v1/batch/data/big/one"))
                .json(&json!({ "inputs": inputs })),
        )
        .await;
        assert_eq!(status, want, "{}", short(&answer));
        if want == 500 {
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap()
                    .contains("max_result_bytes"),
                "{}",
                short(&answer)
            );
        }
    }
}
