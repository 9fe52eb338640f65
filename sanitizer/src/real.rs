//! The next definitions of the functions the runtime interposes (`dlsym(RTLD_NEXT)`),
//! resolved on first use: another preloaded library's constructor may call one before
//! this library's constructor has run.

use std::sync::atomic::{AtomicUsize, Ordering};

macro_rules! next {
    ($( $name:ident ( $($a:ident : $t:ty),* ) -> $r:ty; )*) => {$(
        /// The next definition of the libc function of the same name.
        #[allow(non_snake_case)]
        ///
        /// # Safety
        /// As for the libc function.
        pub unsafe fn $name($($a: $t),*) -> $r {
            static PTR: AtomicUsize = AtomicUsize::new(0);
            let mut p = PTR.load(Ordering::Relaxed);
            if p == 0 {
                // SAFETY: dlsym with a NUL-terminated name.
                p = unsafe {
                    libc::dlsym(libc::RTLD_NEXT, concat!(stringify!($name), "\0").as_ptr().cast())
                } as usize;
                if p == 0 {
                    crate::die(concat!("zcsafe-sanitizer: no next definition of ", stringify!($name), "\n"));
                }
                PTR.store(p, Ordering::Relaxed);
            }
            // SAFETY: the symbol is libc's function of this name and signature.
            let f: unsafe extern "C" fn($($t),*) -> $r = unsafe { std::mem::transmute(p) };
            // SAFETY: the caller upholds the function's contract.
            unsafe { f($($a),*) }
        }
    )*};
}

use libc::{
    c_int, c_uint, c_void, iovec, mmsghdr, msghdr, off_t, sigaction as Sigaction, sighandler_t,
    sigset_t, size_t, sockaddr, socklen_t, ssize_t,
};

next! {
    send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t;
    sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, to: *const sockaddr, tolen: socklen_t) -> ssize_t;
    sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    sendmmsg(fd: c_int, msgs: *mut mmsghdr, n: c_uint, flags: c_int) -> c_int;
    recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t;
    recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, from: *mut sockaddr, fromlen: *mut socklen_t) -> ssize_t;
    recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t;
    read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t;
    readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t;
    pread(fd: c_int, buf: *mut c_void, len: size_t, off: off_t) -> ssize_t;
    pread64(fd: c_int, buf: *mut c_void, len: size_t, off: off_t) -> ssize_t;
    close(fd: c_int) -> c_int;
    sigaction(sig: c_int, act: *const Sigaction, old: *mut Sigaction) -> c_int;
    sigprocmask(how: c_int, set: *const sigset_t, old: *mut sigset_t) -> c_int;
    pthread_sigmask(how: c_int, set: *const sigset_t, old: *mut sigset_t) -> c_int;
    _exit(status: c_int) -> ();
    _Exit(status: c_int) -> ();
}

/// `signal(2)`'s handler type, for the interposed `signal`.
pub type Handler = sighandler_t;
