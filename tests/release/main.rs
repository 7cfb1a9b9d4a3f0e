//! The full tier, release: the static builds (x86_64 and, under qemu-user, aarch64), the OCI
//! image, the Packer template and the pins (toolchain, Python lock, import layers).

mod aarch64;
mod image;
mod packer;
mod release;
mod signing;
mod static_binary;
