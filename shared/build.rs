//! Compiles `proto/tollgate/v1/*.proto` with a pure-Rust compiler (protox): no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["tollgate/v1/config.proto", "tollgate/v1/stream.proto"];
    let fds = protox::compile(files, ["../proto"])?;
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=../proto");
    Ok(())
}
