//! Files a config names (its own text, certificates, key sets, password files, specs, tokens)
//! are read with a size bound: a path to a device or a runaway file gets an error that says
//! so, not all of the process's memory.

use std::io::{self, Read};
use std::path::Path;

/// Largest config file (the bound of a snapshot on the wire).
pub const MAX_CONFIG: u64 = 64 << 20;
/// Largest certificate, key, key set, credential or token file.
pub const MAX_SECRET: u64 = 4 << 20;
/// Largest password file or OpenAPI spec.
pub const MAX_DOCUMENT: u64 = 32 << 20;

/// The whole file, or an error when it holds more than `limit` bytes: a regular file's size
/// is known before reading; a device or a file still growing is cut at the bound.
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let too_large = || {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than the limit of {}", bytesize::ByteSize(limit)),
        )
    };
    let file = std::fs::File::open(path)?;
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > limit)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_to_string(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_an_error_at_its_bound() {
        let err = read(Path::new("/dev/zero"), 1024).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(err.to_string(), "larger than the limit of 1.0 KiB");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, [b'a'; 1024]).unwrap();
        assert_eq!(
            read(&file, 1024).unwrap().len(),
            1024,
            "the bound itself is fine"
        );
        std::fs::write(&file, [0xff]).unwrap();
        assert_eq!(
            read_to_string(&file, 1024).unwrap_err().to_string(),
            "not UTF-8 text"
        );
    }
}
