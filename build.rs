//! Link settings for the static (musl) binary only.
//!
//! A static-pie binary carries one relocation per pointer in its data (vtables, string tables):
//! 0.9 MB of `.rela.dyn` in plain RELA form. `-z pack-relative-relocs` stores them as a DT_RELR
//! bitmap instead (binutils >= 2.38), a few kB for the same effect. musl's start-up code
//! applies it since 1.2.4, which Rust bundles for static linking since 1.93; an older
//! toolchain (down to `rust-version`) would build a binary that crashes at start, so it keeps
//! the plain form.
//!
//! The release build also links with the toolchain's own lld and `--icf=all`: generic code
//! instantiated for many types (the SDK clients' runtime plugins, serde visitors, drop glue)
//! often compiles to byte-identical functions, and folding them saves about 0.2 MB. Rust
//! promises nothing about function addresses being distinct, so folding is safe. A toolchain
//! without rustup's `gcc-ld` wrapper links as before. Both measured in bench/RESULTS.md.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let musl = std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("musl");
    if !musl {
        return;
    }
    if version_check::is_min_version("1.93.0").unwrap_or(false) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if let Some(dir) = release.then(rust_lld_wrapper_dir).flatten() {
        println!("cargo:rustc-link-arg-bins=-fuse-ld=lld");
        println!("cargo:rustc-link-arg-bins=-B{}", dir.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
    }
}

/// rustup ships lld as `rust-lld` plus a `gcc-ld/ld.lld` wrapper that the C compiler driver
/// finds with `-B`; `None` when this toolchain has no such wrapper.
fn rust_lld_wrapper_dir() -> Option<PathBuf> {
    let rustc = std::env::var("RUSTC").ok()?;
    let host = std::env::var("HOST").ok()?;
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8(out.stdout).ok()?;
    let dir = PathBuf::from(sysroot.trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin/gcc-ld");
    dir.join("ld.lld").is_file().then_some(dir)
}
