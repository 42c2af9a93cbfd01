//! Compiled policies: a `Bundle` turned into an immutable, thread-shareable policy.
mod extensions;
