//! Every length to 300 at every alignment, overlaps in both directions, and random long copies,
//! each checked against the standard library's copy, including the bytes around the target.
#![cfg(target_arch = "x86_64")]

use memcopy::{copy, copy_nonoverlapping};
use proptest::prelude::*;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Lengths around each branch of the copy (8, 16, 32, 64 and 64-byte blocks).
fn edge_lengths() -> impl Iterator<Item = usize> {
    (0..=140).chain([191, 192, 193, 255, 256, 257, 300, 1000, 4096, 4097])
}

#[test]
fn disjoint_copies_at_every_length_and_alignment() {
    let src = pattern(300 + 16);
    for n in 0..=300 {
        for so in 0..16 {
            for dof in 0..16 {
                let mut dst = vec![0xEE; 300 + 32];
                unsafe { copy_nonoverlapping(dst.as_mut_ptr().add(dof), src.as_ptr().add(so), n) };
                assert_eq!(
                    &dst[dof..dof + n],
                    &src[so..so + n],
                    "n={n} so={so} do={dof}"
                );
                assert!(dst[..dof].iter().all(|&b| b == 0xEE), "before: n={n}");
                assert!(dst[dof + n..].iter().all(|&b| b == 0xEE), "after: n={n}");
            }
        }
    }
}

#[test]
fn overlapping_moves_both_ways() {
    const LEN: usize = 4097 + 160;
    let original = pattern(LEN);
    for n in edge_lengths() {
        for from in 0..80 {
            for to in 0..80 {
                let mut ours = original.clone();
                let mut want = original.clone();
                want.copy_within(from..from + n, to);
                unsafe { copy(ours.as_mut_ptr().add(to), ours.as_ptr().add(from), n) };
                assert!(ours == want, "n={n} from={from} to={to}");
            }
        }
    }
}

proptest! {
    #[test]
    fn random_moves_match_copy_within(n in 0usize..20_000, from in 0usize..300, to in 0usize..300) {
        let original = pattern(20_300);
        let mut ours = original.clone();
        let mut want = original.clone();
        want.copy_within(from..from + n, to);
        unsafe { copy(ours.as_mut_ptr().add(to), ours.as_ptr().add(from), n) };
        prop_assert!(ours == want);
    }

    #[test]
    fn random_copies_match(n in 0usize..20_000, so in 0usize..64, dof in 0usize..64) {
        let src = pattern(n + so);
        let mut dst = vec![0xEEu8; n + dof + 64];
        unsafe { copy_nonoverlapping(dst.as_mut_ptr().add(dof), src.as_ptr().add(so), n) };
        prop_assert_eq!(&dst[dof..dof + n], &src[so..]);
        prop_assert!(dst[..dof].iter().chain(&dst[dof + n..]).all(|&b| b == 0xEE));
    }
}
