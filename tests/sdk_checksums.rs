//! The AWS SDK's checksums, computed through patches/crc-fast (the stand-in for crc-fast, see
//! Cargo.toml's `[patch.crates-io]`): the header values S3 would see and check. A wrong
//! stand-in would make every checksummed upload and every validated download fail.

use aws_smithy_checksums::ChecksumAlgorithm;

/// The value of `x-amz-checksum-<algorithm>` for `body`, as the SDK computes it.
fn header_value(algorithm: &str, body: &[u8]) -> String {
    let algorithm: ChecksumAlgorithm = algorithm.parse().expect("an algorithm the SDK knows");
    let mut checksum = algorithm.into_impl();
    // Two pieces: the SDK feeds a streamed body chunk by chunk.
    let (head, tail) = body.split_at(body.len() / 2);
    checksum.update(head);
    checksum.update(tail);
    checksum
        .header_value()
        .to_str()
        .expect("base64 is ASCII")
        .to_string()
}

#[test]
fn crc_headers_carry_the_catalogue_check_values() {
    // "123456789": CRC-32 0xcbf43926, CRC-32C 0xe3069283, CRC-64/NVME 0xae8b14860a799888,
    // base64 of their big-endian bytes.
    assert_eq!(header_value("crc32", b"123456789"), "y/Q5Jg==");
    assert_eq!(header_value("crc32c", b"123456789"), "4waSgw==");
    assert_eq!(header_value("crc64nvme", b"123456789"), "rosUhgp5mIg=");
}

#[test]
fn crc32_header_matches_zlib_for_other_input() {
    // zlib.crc32(b"suaicloudapp") == 0x3118a91b
    assert_eq!(header_value("crc32", b"suaicloudapp"), "MRipGw==");
}
