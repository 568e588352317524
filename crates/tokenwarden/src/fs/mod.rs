//! Files that hold the organisation's data or a secret: every private file is opened, checked and
//! replaced here.

mod private_dir;

pub(crate) use private_dir::PrivateDir;
