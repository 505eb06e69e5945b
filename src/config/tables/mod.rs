//! One builder per kind of table: each reads its raw table (raw.rs) into the model
//! (model.rs), recording every problem with its key in the shared [`super::builder::Builder`].

pub mod admin;
pub mod basic;
pub mod certificate;
pub mod location;
pub mod lua;
pub mod plugin;
pub mod server;
pub mod storage;
pub mod upstream;
