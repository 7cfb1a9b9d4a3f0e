//! The full tier, the boot rehearsal: a real VM under QEMU whose cloud-init runs user-data.sh.
//! Its own binary: it runs for minutes and must not share the two cores with load figures.

mod vm_rehearsal;
