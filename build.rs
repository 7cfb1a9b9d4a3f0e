//! Link settings for the static (musl) release binary only.
//!
//! A static-pie binary carries one relocation per pointer in its data (vtables, string tables):
//! 0.9 MB of `.rela.dyn` in plain RELA form. `-z pack-relative-relocs` stores them as a DT_RELR
//! bitmap instead (binutils >= 2.38; musl's start-up code applies it since 1.2.4), a few kB for
//! the same effect. Measured in bench/RESULTS.md (binary size).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("musl") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
