//! The slice of crc-fast's API that aws-smithy-checksums uses, on the `crc` crate.
//!
//! Why: crc-fast picks its algorithm at run time from an enum of about thirty, so every table and
//! SIMD path stays in the binary (0.7 MB of suaicloudapp's release build) although the SDK only
//! ever asks for three. The S3 probe checksums a few bytes per check: `crc`'s compile-time
//! tables are plenty fast for that. Values are the catalogue's; the tests check them against the
//! standard check input.

use crc::{Algorithm, Crc};

/// The algorithms aws-smithy-checksums names (crc-fast's names, so its code compiles as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrcAlgorithm {
    /// CRC-32 as in zlib and S3's `x-amz-checksum-crc32`.
    Crc32IsoHdlc,
    /// CRC-32C, S3's `x-amz-checksum-crc32c`.
    Crc32Iscsi,
    /// CRC-64/NVME, S3's `x-amz-checksum-crc64nvme`.
    Crc64Nvme,
}

static CRC32_ISO_HDLC: Crc<u32> = Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
static CRC32_ISCSI: Crc<u32> = Crc::<u32>::new(&crc::CRC_32_ISCSI);
static CRC64_NVME: Crc<u64> = Crc::<u64>::new(&CRC_64_NVME_PARAMS);

/// CRC-64/NVME from the reveng catalogue (also crc-catalog's `CRC_64_NVME` in newer releases).
const CRC_64_NVME_PARAMS: Algorithm<u64> = Algorithm {
    width: 64,
    poly: 0xad93_d235_94c9_3659,
    init: 0xffff_ffff_ffff_ffff,
    refin: true,
    refout: true,
    xorout: 0xffff_ffff_ffff_ffff,
    check: 0xae8b_1486_0a79_9888,
    residue: 0xf310_303b_2b6f_6e42,
};

/// A running checksum. `finalize` does not consume it, as in crc-fast.
#[derive(Clone)]
pub struct Digest {
    algorithm: CrcAlgorithm,
    state: State,
}

#[derive(Clone)]
enum State {
    Crc32(crc::Digest<'static, u32>),
    Crc64(crc::Digest<'static, u64>),
}

impl Digest {
    pub fn new(algorithm: CrcAlgorithm) -> Self {
        let state = match algorithm {
            CrcAlgorithm::Crc32IsoHdlc => State::Crc32(CRC32_ISO_HDLC.digest()),
            CrcAlgorithm::Crc32Iscsi => State::Crc32(CRC32_ISCSI.digest()),
            CrcAlgorithm::Crc64Nvme => State::Crc64(CRC64_NVME.digest()),
        };
        Digest { algorithm, state }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc32(d) => d.update(data),
            State::Crc64(d) => d.update(data),
        }
    }

    pub fn finalize(&self) -> u64 {
        match &self.state {
            State::Crc32(d) => u64::from(d.clone().finalize()),
            State::Crc64(d) => d.clone().finalize(),
        }
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest")
            .field("algorithm", &self.algorithm)
            .field("value", &self.finalize())
            .finish()
    }
}

/// The checksum of `buf` in one call.
pub fn checksum(algorithm: CrcAlgorithm, buf: &[u8]) -> u64 {
    let mut digest = Digest::new(algorithm);
    digest.update(buf);
    digest.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue's check values (input "123456789"), as crc-fast's own doc tests use.
    #[test]
    fn check_values_match_the_catalogue() {
        let input = b"123456789";
        assert_eq!(checksum(CrcAlgorithm::Crc32IsoHdlc, input), 0xcbf4_3926);
        assert_eq!(checksum(CrcAlgorithm::Crc32Iscsi, input), 0xe306_9283);
        assert_eq!(
            checksum(CrcAlgorithm::Crc64Nvme, input),
            0xae8b_1486_0a79_9888
        );
    }

    #[test]
    fn updates_in_pieces_equal_one_update_and_finalize_does_not_consume() {
        for algorithm in [
            CrcAlgorithm::Crc32IsoHdlc,
            CrcAlgorithm::Crc32Iscsi,
            CrcAlgorithm::Crc64Nvme,
        ] {
            let mut d = Digest::new(algorithm);
            d.update(b"12345");
            let partial = d.finalize();
            d.update(b"6789");
            assert_ne!(partial, d.finalize());
            assert_eq!(d.finalize(), checksum(algorithm, b"123456789"));
        }
    }
}
