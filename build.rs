//! Compiles `proto/sso/v1/*.proto` with protox (no `protoc` needed on the machine), writes
//! the file descriptor set that the reflection service serves, and generates the
//! super-user gate's table from the methods marked `(sso.v1.super_user_only)`.

use std::{env, fmt::Write as _, path::PathBuf};

use protox::prost_reflect::{DescriptorPool, Value};

/// The custom method option that marks a super-user-only RPC (`options.proto`).
const SUPER_USER_OPTION: &str = "sso.v1.super_user_only";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/sso/v1/options.proto",
        "proto/sso/v1/common.proto",
        "proto/sso/v1/user.proto",
        "proto/sso/v1/session.proto",
        "proto/sso/v1/attribute.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files(files)?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // Encoded from the pool, not from prost types: prost drops extension options, and
    // reflection clients should see `super_user_only`.
    std::fs::write(
        out_dir.join("sso_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    std::fs::write(
        out_dir.join("super_user_methods.rs"),
        super_user_methods(&compiler.descriptor_pool())?,
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

/// `pub const SUPER_USER_METHODS: &[&str]`: the gRPC path of every marked sso.v1 method.
fn super_user_methods(pool: &DescriptorPool) -> Result<String, Box<dyn std::error::Error>> {
    let option = pool
        .get_extension_by_name(SUPER_USER_OPTION)
        .ok_or("options.proto does not define sso.v1.super_user_only")?;
    let mut table = String::from(
        "/// The methods marked `(sso.v1.super_user_only) = true` in the protos.\n\
         pub const SUPER_USER_METHODS: &[&str] = &[\n",
    );
    for service in pool.services().filter(|s| s.package_name() == "sso.v1") {
        for method in service.methods() {
            if let Value::Bool(true) = *method.options().get_extension(&option) {
                writeln!(table, "    \"/{}/{}\",", service.full_name(), method.name())?;
            }
        }
    }
    table.push_str("];\n");
    Ok(table)
}
