//! Checking downloaded and imported files against the catalog's checksums.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::catalog::Checksum;

#[derive(Debug, Clone, thiserror::Error)]
#[error("checksum mismatch (expected {algorithm} {expected}, got {actual}): {}", path.display())]
pub struct ChecksumMismatch {
    pub algorithm: &'static str,
    pub expected: String,
    pub actual: String,
    pub path: PathBuf,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest
        .iter()
        .fold(String::with_capacity(digest.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Checks `bytes` against `expected`; `path` names them in the error.
pub fn verify(bytes: &[u8], expected: &Checksum, path: &Path) -> Result<(), ChecksumMismatch> {
    match expected {
        Checksum::Sha256(hex) => verify_sha256(bytes, hex, path),
        Checksum::Md5(hex) => compare("md5", md5_hex(bytes), hex, path),
    }
}

pub fn verify_sha256(bytes: &[u8], expected: &str, path: &Path) -> Result<(), ChecksumMismatch> {
    compare("sha256", sha256_hex(bytes), expected, path)
}

fn compare(
    algorithm: &'static str,
    actual: String,
    expected: &str,
    path: &Path,
) -> Result<(), ChecksumMismatch> {
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ChecksumMismatch {
            algorithm,
            expected: expected.to_ascii_lowercase(),
            actual,
            path: path.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn mismatch_names_both_digests_and_the_file() {
        let err = verify(
            b"abc",
            &Checksum::Md5("00".repeat(16)),
            Path::new("/m/u2net.onnx"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("900150983cd24fb0d6963f7d28e17f72") && text.ends_with("/m/u2net.onnx"),
            "{text}"
        );
        assert!(
            verify(
                b"abc",
                &Checksum::Sha256(sha256_hex(b"abc").to_uppercase()),
                Path::new("x")
            )
            .is_ok()
        );
    }
}
