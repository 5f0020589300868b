//! Compiles `proto/sso/v1/*.proto` with protox (no `protoc` needed on the machine) and
//! writes the file descriptor set that the reflection service serves.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/sso/v1/common.proto",
        "proto/sso/v1/user.proto",
        "proto/sso/v1/session.proto",
        "proto/sso/v1/attribute.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("sso_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
