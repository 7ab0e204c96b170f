//! Link settings for libtorch.
//!
//! - An rpath to the libtorch library directory, so that the binary and the tests run
//!   without `LD_LIBRARY_PATH`. torch-sys reports the directory it linked against through
//!   the `links = "tch"` metadata key.
//! - libtorch_cuda.so kept as a dependency where that directory has it (the PyPI wheel
//!   does). Nothing calls into it by name: its static initialisers register libtorch's
//!   CUDA backend when it loads. torch-sys asks for it, but the linker's default
//!   `--as-needed` drops a library no symbol is taken from, which leaves a binary that
//!   sees no CUDA device on any machine (tch-rs issue 980).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    // For the tests: which libtorch was linked.
    println!("cargo:rustc-env=DISTILLERY_LIBTORCH_LIB={dir}");
    let cuda = std::path::Path::new(&dir).join("libtorch_cuda.so");
    if cuda.exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
