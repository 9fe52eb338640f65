//! The real-kernel backend: drives a [`zcsafe_policy::Policy`] with real system calls.
