// kubeadm-certd: the one change to etcd-client 0.21.1 as published on crates.io (besides the
// protox build-dependency in Cargo.toml): the .proto files are compiled by protox, a protobuf
// compiler written in Rust, instead of the `protoc` executable, so that `cargo build` needs
// nothing but the Rust toolchain. protox::compile runs like prost-build's protoc call
// (--include_imports --include_source_info, google/protobuf/*.proto built in) and the same
// tonic-prost-build configuration generates the code from its FileDescriptorSet
// (tonic-prost-build 0.14 `Builder::compile_fds`): the generated files are byte-identical to
// those of the protoc build. See vendor/README.md.

#[cfg(feature = "build-server")]
fn should_build_server() -> bool {
    true
}

#[cfg(not(feature = "build-server"))]
fn should_build_server() -> bool {
    false
}

fn main() {
    let proto_root = "proto";
    println!("cargo:rerun-if-changed={proto_root}");

    let fds = protox::compile(
        [
            "proto/etcd/api/authpb/auth.proto",
            "proto/etcd/api/etcdserverpb/rpc.proto",
            "proto/etcd/api/mvccpb/kv.proto",
            "proto/etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto",
            "proto/etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
        ],
        [proto_root],
    )
    .expect("Failed to parse proto files");

    tonic_prost_build::configure()
        .build_server(should_build_server())
        // What compile_protos adds by itself (tonic-prost-build 0.14.9 src/lib.rs,
        // compile_with_config) and compile_fds does not: the generated code stays
        // byte-identical to the protoc build's.
        .type_attribute(".", "#[allow(clippy::all)]")
        .compile_fds(fds)
        .expect("Failed to compile proto files");
}
