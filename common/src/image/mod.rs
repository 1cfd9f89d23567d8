//! The image store as every tool sees it: references ([`mod@reference`]) and the read side of the
//! store, an OCI image layout with unpacked layers beside it ([`layout`]). `nsimage` writes
//! the store; `mntns --image` reads it.

pub mod layout;
pub mod reference;

pub use layout::{Image, Layout};
pub use reference::Reference;
