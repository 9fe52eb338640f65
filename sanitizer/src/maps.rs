//! `/proc/self/maps`, read with raw system calls (never through the program's `read`,
//! which the runtime interposes).

/// One mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: i32,
    /// File offset of `start`.
    pub offset: u64,
    /// The file, `[stack]`, `[heap]`, … or empty.
    pub path: String,
}

/// Reads the mappings of this process (empty if `/proc` cannot be read).
pub fn read() -> Vec<Mapping> {
    let mut text: Vec<u8> = Vec::with_capacity(16384);
    // SAFETY: raw openat/read/close on a buffer we own; the path is NUL-terminated.
    unsafe {
        let fd = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        ) as i32;
        if fd < 0 {
            return Vec::new();
        }
        loop {
            if text.capacity() - text.len() < 4096 {
                text.reserve(text.capacity());
            }
            let spare = text.capacity() - text.len();
            let n = libc::syscall(libc::SYS_read, fd, text.as_mut_ptr().add(text.len()), spare);
            if n <= 0 {
                break;
            }
            text.set_len(text.len() + n as usize);
        }
        libc::syscall(libc::SYS_close, fd);
    }
    parse(&String::from_utf8_lossy(&text))
}

/// Parses the text of a maps file.
pub fn parse(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(line).collect()
}

fn line(l: &str) -> Option<Mapping> {
    let mut f = l.splitn(6, ' ');
    let (range, perms, offset) = (f.next()?, f.next()?, f.next()?);
    let (_dev, _inode) = (f.next()?, f.next()?);
    let path = f.next().unwrap_or("").trim_start().to_string();
    let (s, e) = range.split_once('-')?;
    let b = perms.as_bytes();
    let mut prot = 0;
    if b.first() == Some(&b'r') {
        prot |= libc::PROT_READ;
    }
    if b.get(1) == Some(&b'w') {
        prot |= libc::PROT_WRITE;
    }
    if b.get(2) == Some(&b'x') {
        prot |= libc::PROT_EXEC;
    }
    Some(Mapping {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        prot,
        offset: u64::from_str_radix(offset, 16).ok()?,
        path,
    })
}

/// The mapping holding `addr`.
pub fn find(maps: &[Mapping], addr: u64) -> Option<&Mapping> {
    maps.iter().find(|m| m.start <= addr && addr < m.end)
}

/// The offset of `addr` in the file its mapping maps (what `addr2line -e FILE` takes
/// for a position-independent object).
pub fn file_offset(m: &Mapping, addr: u64) -> u64 {
    addr - m.start + m.offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_proc_maps_parse() {
        let m = parse(
            "55d0c0000000-55d0c0001000 r-xp 00001000 08:01 123   /usr/bin/prog\n\
             7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0     [stack]\n\
             7f0000000000-7f0000001000 ---p 00000000 00:00 0\n",
        );
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].prot, libc::PROT_READ | libc::PROT_EXEC);
        assert_eq!(m[0].path, "/usr/bin/prog");
        assert_eq!(file_offset(&m[0], 0x55d0c0000010), 0x1010);
        assert_eq!(m[1].path, "[stack]");
        assert_eq!((m[2].prot, m[2].path.as_str()), (0, ""));
        assert_eq!(find(&m, 0x7ffd00000100).unwrap().path, "[stack]");
        assert!(read().iter().any(|m| m.path == "[stack]"));
    }
}
