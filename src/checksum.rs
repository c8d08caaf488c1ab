//! Checking downloaded and imported files against the catalog's checksums.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256, Sha512};

use crate::models::catalog::Checksum;

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

/// A checksum computed piece by piece, for files streamed from disk or the
/// network (a model is 40–250 MB: never held whole just to hash it).
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
    Md5(Md5),
}

impl Hasher {
    /// A hasher of the same kind as `expected`.
    pub fn for_checksum(expected: &Checksum) -> Self {
        match expected {
            Checksum::Sha256(_) => Hasher::Sha256(Sha256::new()),
            Checksum::Sha512(_) => Hasher::Sha512(Sha512::new()),
            Checksum::Md5(_) => Hasher::Md5(Md5::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
            Hasher::Md5(h) => h.update(bytes),
        }
    }

    /// The algorithm's name and the digest in hex.
    pub fn finish(self) -> (&'static str, String) {
        match self {
            Hasher::Sha256(h) => ("sha256", hex(&h.finalize())),
            Hasher::Sha512(h) => ("sha512", hex(&h.finalize())),
            Hasher::Md5(h) => ("md5", hex(&h.finalize())),
        }
    }

    /// Compares the digest with `expected` (of the same kind).
    pub fn verify(self, expected: &Checksum, path: &Path) -> Result<(), ChecksumMismatch> {
        let (algorithm, actual) = self.finish();
        compare(algorithm, actual, expected.hex(), path)
    }
}

/// Streams a file through `hasher`.
pub fn hash_file(path: &Path, hasher: &mut Hasher) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
}

/// sha256 of a file, read in pieces.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Hasher::Sha256(Sha256::new());
    hash_file(path, &mut hasher)?;
    Ok(hasher.finish().1)
}

/// Checks `bytes` against `expected`; `path` names them in the error.
pub fn verify(bytes: &[u8], expected: &Checksum, path: &Path) -> Result<(), ChecksumMismatch> {
    match expected {
        Checksum::Sha256(hex) => verify_sha256(bytes, hex, path),
        Checksum::Md5(hex) => compare("md5", md5_hex(bytes), hex, path),
        Checksum::Sha512(hex) => compare("sha512", self::hex(&Sha512::digest(bytes)), hex, path),
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
