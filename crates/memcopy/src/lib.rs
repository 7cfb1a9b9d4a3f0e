//! `memcpy` and `memmove` for the static musl x86_64 build, in place of musl's.
//!
//! Why: musl's x86_64 `memcpy` aligns and finishes with one `movsb` per byte around a
//! `rep movsq`, which is built for long copies; a request here makes about forty short ones
//! (struct moves in hyper, header bytes, the access line), and under the benchmark's `/health`
//! load musl's `memcpy` was the hottest function of the process: 5.7 % of the server core's time
//! (perf sampling), more than any function of hyper's. glibc's is fast at these sizes, so the
//! same code dynamically linked does not pay it (a known gap: astral-sh/uv#10610). No maintained
//! crate offers these two symbols for a hosted target, so this one does, with the usual
//! technique: every length up to 64 bytes in at most four overlapping SSE2 loads and stores,
//! longer ones in 64-byte blocks.
//!
//! Only a static musl x86_64 build exports the symbols (the linker then takes them instead of
//! libc.a's, and musl's `memmove`, which jumps into its `memcpy`, goes too). Elsewhere the crate
//! is the same functions under Rust names, which the tests run on any x86_64 target.
//!
//! `no_builtins`: LLVM must not turn the copy loop below back into a call to `memcpy`.
#![no_std]
#![no_builtins]

#[cfg(target_arch = "x86_64")]
mod x86_64 {
    use core::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
    use core::ptr::{read_unaligned, write_unaligned};

    /// 64 bytes held in registers (SSE2 is part of x86_64's baseline).
    #[derive(Clone, Copy)]
    struct Block([__m128i; 4]);

    #[inline(always)]
    unsafe fn load16(p: *const u8) -> __m128i {
        _mm_loadu_si128(p.cast())
    }

    #[inline(always)]
    unsafe fn store16(p: *mut u8, v: __m128i) {
        _mm_storeu_si128(p.cast(), v);
    }

    #[inline(always)]
    unsafe fn load64(p: *const u8) -> Block {
        Block([
            load16(p),
            load16(p.add(16)),
            load16(p.add(32)),
            load16(p.add(48)),
        ])
    }

    #[inline(always)]
    unsafe fn store64(p: *mut u8, b: Block) {
        let [a, b, c, e] = b.0;
        store16(p, a);
        store16(p.add(16), b);
        store16(p.add(32), c);
        store16(p.add(48), e);
    }

    /// Copies `size_of::<T>() <= n <= 2 * size_of::<T>()` bytes as two `T`s, one at each end,
    /// overlapping in the middle; both are loaded before either is stored.
    #[inline(always)]
    unsafe fn head_tail<T: Copy>(d: *mut u8, s: *const u8, n: usize) {
        let k = core::mem::size_of::<T>();
        let (a, z) = (
            read_unaligned(s.cast::<T>()),
            read_unaligned(s.add(n - k).cast::<T>()),
        );
        write_unaligned(d.cast::<T>(), a);
        write_unaligned(d.add(n - k).cast::<T>(), z);
    }

    /// Copies `n <= 64` bytes: a head and a tail piece that overlap in the middle. Every load
    /// comes before the first store, so overlapping regions are copied correctly too.
    #[inline(always)]
    unsafe fn small(d: *mut u8, s: *const u8, n: usize) {
        if n >= 32 {
            let (a, b) = (load16(s), load16(s.add(16)));
            let (y, z) = (load16(s.add(n - 32)), load16(s.add(n - 16)));
            store16(d, a);
            store16(d.add(16), b);
            store16(d.add(n - 32), y);
            store16(d.add(n - 16), z);
        } else if n >= 16 {
            head_tail::<__m128i>(d, s, n);
        } else if n >= 8 {
            head_tail::<u64>(d, s, n);
        } else if n >= 4 {
            head_tail::<u32>(d, s, n);
        } else if n >= 2 {
            head_tail::<u16>(d, s, n);
        } else if n == 1 {
            *d = *s;
        }
    }

    /// Copies `n > 64` bytes front to back: right for disjoint regions and for `d` below `s`.
    /// The last 64 bytes are loaded first, before any store can overwrite them.
    #[inline(always)]
    unsafe fn forward(d: *mut u8, s: *const u8, n: usize) {
        let last = load64(s.add(n - 64));
        let mut i = 0;
        while i + 64 < n {
            store64(d.add(i), load64(s.add(i)));
            i += 64;
        }
        store64(d.add(n - 64), last);
    }

    /// Copies `n > 64` bytes back to front, for `d` above an overlapping `s`. The first 64 bytes
    /// are loaded first, for the same reason.
    #[inline(always)]
    unsafe fn backward(d: *mut u8, s: *const u8, n: usize) {
        let first = load64(s);
        let mut end = n;
        while end > 64 {
            end -= 64;
            store64(d.add(end), load64(s.add(end)));
        }
        store64(d, first);
    }

    /// `memcpy`: the regions must not overlap.
    ///
    /// # Safety
    /// `s` readable and `d` writable for `n` bytes.
    #[inline]
    pub unsafe fn copy_nonoverlapping(d: *mut u8, s: *const u8, n: usize) {
        if n <= 64 {
            small(d, s, n);
        } else {
            forward(d, s, n);
        }
    }

    /// `memmove`: the regions may overlap.
    ///
    /// # Safety
    /// As [`copy_nonoverlapping`].
    #[inline]
    pub unsafe fn copy(d: *mut u8, s: *const u8, n: usize) {
        if n <= 64 {
            small(d, s, n);
        } else if (d as usize).wrapping_sub(s as usize) >= n {
            // `d` below `s`, or past its end: front to back never reads what it wrote.
            forward(d, s, n);
        } else {
            backward(d, s, n);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86_64::{copy, copy_nonoverlapping};

/// The C symbols, in the static musl build only.
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
mod symbols {
    #[no_mangle]
    unsafe extern "C" fn memcpy(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
        super::copy_nonoverlapping(d, s, n);
        d
    }

    #[no_mangle]
    unsafe extern "C" fn memmove(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
        super::copy(d, s, n);
        d
    }
}
