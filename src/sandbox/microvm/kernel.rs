//! The guest kernel as QEMU boots it fastest: the uncompressed `vmlinux` ELF (PVH entry), taken
//! out of the distribution's compressed `vmlinuz` once and cached. Under TCG, decompressing the
//! kernel inside the guest costs seconds of every boot. Debian compresses x86 kernels with LZ4
//! (legacy frame); other formats fall back to booting the `vmlinuz` itself.

use std::path::{Path, PathBuf};

const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
/// Every block of an LZ4 legacy frame but the last decompresses to exactly this.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// The image to boot for `kernel` (cached `vmlinux` under `cache`, else the `vmlinuz`).
pub fn bootable(kernel: &super::host::Kernel, cache: &Path) -> PathBuf {
    let target = cache.join(format!("vmlinux-{}", kernel.version));
    if target.exists() {
        return target;
    }
    match extract(&kernel.image) {
        Some(elf) => {
            let tmp = cache.join(format!(".vmlinux-{}.{}", kernel.version, std::process::id()));
            let written = std::fs::create_dir_all(cache)
                .and_then(|_| std::fs::write(&tmp, &elf))
                .and_then(|_| std::fs::rename(&tmp, &target));
            match written {
                Ok(()) => target,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!(error = %e, "cannot cache the uncompressed guest kernel; booting vmlinuz");
                    kernel.image.clone()
                }
            }
        }
        None => kernel.image.clone(),
    }
}

/// The ELF kernel inside a bzImage compressed with LZ4, if that is what it is.
fn extract(bzimage: &Path) -> Option<Vec<u8>> {
    let data = std::fs::read(bzimage).ok()?;
    let start = data.windows(4).position(|w| w == LZ4_LEGACY_MAGIC)?;
    let out = lz4_legacy(&data[start + 4..]);
    (out.len() > 4 && out[..4] == *b"\x7fELF").then_some(out)
}

/// Decodes LZ4 legacy-frame blocks until the last (short) block, the end of the input or data
/// that is not a block (the size word the kernel appends after its payload).
fn lz4_legacy(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while input.len() >= 4 {
        let size = u32::from_le_bytes([input[0], input[1], input[2], input[3]]) as usize;
        if size == 0 || size > input.len() - 4 || size > LZ4_LEGACY_BLOCK + LZ4_LEGACY_BLOCK / 255 + 16 {
            break;
        }
        let before = out.len();
        if lz4_block(&input[4..4 + size], &mut out).is_none() {
            out.truncate(before);
            break;
        }
        input = &input[4 + size..];
        if out.len() - before < LZ4_LEGACY_BLOCK {
            break;
        }
    }
    out
}

/// One LZ4 block appended to `out`; `None` on malformed input.
fn lz4_block(block: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let start = out.len();
    let mut i = 0;
    let extend = |i: &mut usize, mut len: usize| -> Option<usize> {
        loop {
            let b = *block.get(*i)?;
            *i += 1;
            len += b as usize;
            if b != 255 {
                return Some(len);
            }
        }
    };
    while i < block.len() {
        let token = block[i];
        i += 1;
        let mut literals = (token >> 4) as usize;
        if literals == 15 {
            literals = extend(&mut i, literals)?;
        }
        out.extend_from_slice(block.get(i..i + literals)?);
        i += literals;
        if i >= block.len() {
            break;
        }
        let offset = u16::from_le_bytes([*block.get(i)?, *block.get(i + 1)?]) as usize;
        i += 2;
        let mut length = (token & 15) as usize;
        if length == 15 {
            length = extend(&mut i, length)?;
        }
        length += 4;
        if offset == 0 || offset > out.len() - start {
            return None;
        }
        let from = out.len() - offset;
        for k in 0..length {
            let b = out[from + k];
            out.push(b);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_literals_and_overlapping_matches() {
        // "abc" then a match of 9 bytes at offset 3: "abcabcabcabc".
        let block = [0x35, b'a', b'b', b'c', 3, 0];
        let mut out = Vec::new();
        lz4_block(&block, &mut out).unwrap();
        assert_eq!(out, b"abcabcabcabc");
        // A legacy frame of that block, followed by a size word that is not a block.
        let mut frame = (block.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&block);
        frame.extend_from_slice(&0x0400_0000u32.to_le_bytes());
        assert_eq!(lz4_legacy(&frame), b"abcabcabcabc");
    }
}
