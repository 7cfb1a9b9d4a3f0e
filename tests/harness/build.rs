//! Hands the repository's root (two levels above this crate) to the harness as `SUAI_REPO`:
//! the tests read scripts, the test environment and the release builds from there.
fn main() {
    let here = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let repo = std::path::Path::new(&here)
        .join("../..")
        .canonicalize()
        .expect("the repository root exists");
    println!("cargo:rustc-env=SUAI_REPO={}", repo.display());
    println!("cargo:rerun-if-changed=build.rs");
}
