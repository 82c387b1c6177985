//! Bringing a deployed checkout to the newest commit of its branch, as gitreload's
//! `/update` did, without its hole: the checkout is looked up under `repodir` from
//! checked repository names only (see [`locate`]), and only a push to the branch the
//! checkout has checked out moves it. Shared by `fetch-update` (this is all it does)
//! and `edx-import` (this, then the import).

pub mod locate;
mod update;

pub use update::{Checkout, Options, Update, Updated, find, update};
