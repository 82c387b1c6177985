//! Writing one output file through WASI as cheaply as it can be: every call here crosses
//! into the host, so the common case (the directory is already there) is a single open.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::Path;

/// Writes `bytes` to `path`, replacing the file, and makes its directory (with any
/// missing parents) when it is not there yet.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Open first and make directories only when that fails: a site's files share a few
    // directories, so checking the parents before every file would cost two host calls
    // (a `mkdir` that fails and a `stat`) per file for nothing.
    let mut file = match File::create(path) {
        Ok(file) => file,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            File::create(path)?
        }
        Err(err) => return Err(err),
    };
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A directory of its own under the system's temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("md2html-fs-write-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_file_in_missing_directories_is_written_and_they_are_made() {
        let scratch = Scratch::new("missing");
        let path = scratch.0.join("u/acme/site/0123456789/part3/page3.html");
        write(&path, b"<p>three</p>").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"<p>three</p>");
        // A sibling in the directory just made, then one in a new directory beside it.
        write(&scratch.0.join("u/acme/site/0123456789/part3/page20.html"), b"20").unwrap();
        write(&scratch.0.join("u/acme/site/0123456789/part4/page4.html"), b"4").unwrap();
        assert_eq!(std::fs::read(scratch.0.join("u/acme/site/0123456789/part4/page4.html")).unwrap(), b"4");
    }

    #[test]
    fn a_second_write_replaces_the_whole_file() {
        let scratch = Scratch::new("replace");
        let path = scratch.0.join("index.html");
        write(&path, b"a longer first version").unwrap();
        write(&path, b"short").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
    }

    #[test]
    fn a_file_where_a_directory_should_be_is_an_error_and_stays() {
        let scratch = Scratch::new("file-in-the-way");
        std::fs::write(scratch.0.join("part1"), b"not a directory").unwrap();
        assert!(write(&scratch.0.join("part1/page.html"), b"x").is_err());
        assert!(write(&scratch.0.join("part1/deeper/page.html"), b"x").is_err());
        assert_eq!(std::fs::read(scratch.0.join("part1")).unwrap(), b"not a directory");
    }
}
