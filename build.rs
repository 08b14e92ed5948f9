//! Compiles the protobuf contract into Rust with a pure-Rust protobuf compiler (protox), so
//! no system `protoc` is needed, and writes the descriptor set that server reflection serves.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/tokenauthority/v1/resources.proto",
    "proto/tokenauthority/v1/token_service.proto",
    "proto/tokenauthority/v1/admin_service.proto",
];

const EXAMPLE_PROTO: &str = "examples/proto/orders/v1/orders.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let file_descriptors = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(
        out_dir.join("tokenauthority_descriptor.bin"),
        prost::Message::encode_to_vec(&file_descriptors),
    )?;
    tonic_prost_build::configure()
        // Smaller per-call buffers than tonic's 8 KiB (src/codec.rs says why).
        .codec_path("crate::codec::SmallBufferCodec")
        // The messages that carry a plaintext secret get a hand-written, redacting Debug
        // (src/proto.rs), so that no `{:?}` anywhere can print a secret.
        .skip_debug([
            "tokenauthority.v1.CreateTokenResponse",
            "tokenauthority.v1.ResetTokenResponse",
            "tokenauthority.v1.DuplicateTokenResponse",
            "tokenauthority.v1.VerifyTokenRequest",
            "tokenauthority.v1.ReportLeakedTokensRequest",
        ])
        .compile_fds(file_descriptors)?;
    // The example backend's own API (examples/backend.rs).
    tonic_prost_build::configure()
        .build_client(true)
        .compile_fds(protox::compile([EXAMPLE_PROTO], ["examples/proto"])?)?;
    for proto in PROTOS.iter().chain(&[EXAMPLE_PROTO]) {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
