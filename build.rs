//! Embeds the libtorch library directory as an rpath, so that the binary and the tests run
//! without `LD_LIBRARY_PATH`. torch-sys reports the directory it linked against through the
//! `links = "tch"` metadata key.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
