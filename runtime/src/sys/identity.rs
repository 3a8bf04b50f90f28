//! The build's identity, the same on every platform: what the linker wrote into the image
//! when it wrote something (`linker_identity` of the platform's `image`), otherwise a hash of
//! the executable file. Two processes with the same identity run the same code at the same
//! offsets.

use std::sync::OnceLock;

/// Identifies this build (computed once): the linker's identity, tagged with its kind, or
/// `file-hash:` and a hash of the executable file.
pub(crate) fn build_identity() -> &'static [u8] {
    static IDENTITY: OnceLock<Vec<u8>> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        let mut identity = Vec::new();
        match super::linker_identity() {
            Some((tag, id)) => {
                identity.extend_from_slice(tag);
                identity.extend_from_slice(&id);
            }
            None => {
                identity.extend_from_slice(b"file-hash:");
                identity.extend_from_slice(&executable_hash().to_le_bytes());
            }
        }
        identity
    })
}

/// A hash of the running executable's file; 0 when it cannot be read (then every worker of
/// this parent agrees, and where the linker writes an identity a rebuild is still told apart).
fn executable_hash() -> u64 {
    use std::hash::Hasher;
    use std::io::Read;
    let Ok(path) = super::own_executable() else {
        return 0;
    };
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    // Fixed keys: the same bytes hash the same in every process of this build.
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => hasher.write(buffer.get(..n).unwrap_or_default()),
        }
    }
    hasher.finish()
}
