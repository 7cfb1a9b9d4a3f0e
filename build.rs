//! Link settings for the static (musl) release binary only.
//!
//! A static-pie binary carries one relocation per pointer in its data (vtables, string tables):
//! 0.9 MB of `.rela.dyn` in plain RELA form. `-z pack-relative-relocs` stores them as a DT_RELR
//! bitmap instead (binutils >= 2.38), a few kB for the same effect. musl's start-up code
//! applies it since 1.2.4, which Rust bundles for static linking since 1.93; an older
//! toolchain (down to `rust-version`) would build a binary that crashes at start, so it keeps
//! the plain form. Measured in bench/RESULTS.md (binary size).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let musl = std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("musl");
    if musl && version_check::is_min_version("1.93.0").unwrap_or(false) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
