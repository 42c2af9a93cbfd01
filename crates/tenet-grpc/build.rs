//! Generates the `tenet.v1` gRPC code and its descriptor set (served by
//! reflection) from `proto/`, and the descriptor set of Envoy's ext_authz
//! service from `proto/third_party/` (reflection only), with the protoc
//! that protoc-bin-vendored ships (no protoc is installed on the build
//! machines, and nothing is downloaded). Decoding goes through `crate::codec::Codec`, which reports a
//! malformed message as `INVALID_ARGUMENT`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    // prost-build runs the protoc named by PROTOC (edition 2021: a safe call,
    // and a build script is single-threaded here).
    std::env::set_var("PROTOC", &protoc);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::Codec")
        .file_descriptor_set_path(out.join("tenet_v1_descriptor.bin"))
        .compile_protos(
            &[PathBuf::from("proto/tenet/v1/decisions.proto")],
            &[PathBuf::from("proto"), include.clone()],
        )?;
    // Envoy's ext_authz service, for reflection only: its Rust types come
    // from envoy-types, whose protos are vendored in proto/third_party
    // (see PROVENANCE.md there).
    let status = std::process::Command::new(&protoc)
        .arg("--include_imports")
        .arg(format!(
            "--descriptor_set_out={}",
            out.join("envoy_authz_descriptor.bin").display()
        ))
        .arg(format!(
            "-I{}",
            PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?)
                .join("proto/third_party")
                .display()
        ))
        .arg(format!("-I{}", include.display()))
        .arg("envoy/service/auth/v3/external_auth.proto")
        .status()?;
    if !status.success() {
        return Err(format!("protoc failed on Envoy's ext_authz protos: {status}").into());
    }
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
