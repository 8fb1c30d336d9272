//! Generates the satchel.v1 Rust code with protox, so no system `protoc` is needed.

use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "satchel/v1/satchel.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // tonic-prost-build does not write the descriptor set when handed one, and
    // server reflection needs it, so write it here.
    fs::write(out.join("satchel_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // File bytes as `bytes::Bytes`: chunks pass through without copies.
        .bytes(".satchel.v1")
        .compile_fds(fds)?;
    Ok(())
}
