//! `capstan-probe --disk PATH`: the size and free space of the filesystem holding `PATH`,
//! printed as `total_bytes free_bytes` (free as an unprivileged writer sees it). Run by
//! the daemon in a one-off container on a server whose engine's data root is mounted
//! read-only there, so a remote engine's disk is measured through the Docker API alone.
//! std only: `statvfs` is declared here, for 64-bit Linux (glibc and musl lay the struct
//! out alike there); elsewhere the mode says it is not supported.

/// The filesystem's size and free bytes.
pub fn measure(path: &str) -> Result<(u64, u64), String> {
    imp::measure(path)
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    use std::ffi::CString;
    use std::os::raw::{c_char, c_int};

    /// `struct statvfs` on 64-bit Linux is 11 unsigned longs and 6 ints (112 bytes):
    /// f_bsize, f_frsize, f_blocks, f_bfree, f_bavail, ... Room is kept for more.
    #[repr(C)]
    struct StatVfs {
        words: [u64; 32],
    }

    extern "C" {
        fn statvfs(path: *const c_char, buf: *mut StatVfs) -> c_int;
    }

    pub fn measure(path: &str) -> Result<(u64, u64), String> {
        let c_path = CString::new(path).map_err(|_| format!("{path:?} holds a NUL byte"))?;
        let mut stat = StatVfs { words: [0; 32] };
        // SAFETY: the path is NUL-terminated; the buffer is larger than the C struct and
        // owned here for the call.
        if unsafe { statvfs(c_path.as_ptr(), &mut stat) } != 0 {
            return Err(format!(
                "statvfs {path}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let [_, frsize, blocks, _, avail, ..] = stat.words;
        Ok((blocks.saturating_mul(frsize), avail.saturating_mul(frsize)))
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod imp {
    pub fn measure(_path: &str) -> Result<(u64, u64), String> {
        Err("--disk is supported on 64-bit Linux only".into())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_root_filesystem_has_a_size_and_free_space_within_it() {
        let (total, free) = super::measure("/").unwrap();
        assert!(total > 0 && free <= total, "{total} {free}");
    }

    #[test]
    fn a_missing_path_is_an_error() {
        assert!(super::measure("/no/such/dir/here").is_err());
    }
}
