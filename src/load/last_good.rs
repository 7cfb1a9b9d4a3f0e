//! The last known good copy of an s3:// config, kept in the state directory, and the choice to
//! serve it at boot when S3 cannot be read. Only `serve` keeps or reads a copy.
//!
//! A copy is written only for text that parsed and validated, so a malformed object in S3 never
//! replaces a good copy. It is written atomically (a private temporary file in the same
//! directory, then a rename) with mode 0600, because it may hold passwords.
//!
//! SECURITY: the state directory is never the working directory by default, and the copy's
//! name (`last-good.toml`) cannot be mistaken for a user's `config.toml`. Beside it,
//! `last-good.meta` records the object's ETag and the copy's SHA-256: a file there whose digest
//! does not match was not written by this program (or was edited since), so it is neither
//! replaced nor served. This module reads and writes files and parses the copy; it never
//! fetches (that is `source.rs`) and never swaps a running config (that is `refetch.rs`).

use super::{ConfigSource, FetchOptions, Loaded};
use crate::config::ConfigError;
use crate::probes::Config;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::SystemTime;
use tracing::{error, warn};

/// The copy's file name in the state directory: the object's text, byte for byte.
pub const COPY_FILE: &str = "last-good.toml";
/// Beside it: the object's ETag and the copy's digest, which marks the copy as ours.
pub const META_FILE: &str = "last-good.meta";
/// The state directory a packaged install provides (the unit's `StateDirectory=`, an AMI).
const SYSTEM_DIR: &str = "/var/lib/suaicloudapp";

/// Where copies are kept when `--state-dir` is not given: systemd's `$STATE_DIRECTORY`, else
/// `/var/lib/suaicloudapp` when it exists and this process may write there, else the XDG
/// state directory (`$XDG_STATE_HOME/suaicloudapp`, `~/.local/state/suaicloudapp`). Never
/// the working directory, which holds the user's own files. `None` with no home either.
pub fn default_dir() -> Option<PathBuf> {
    choose_dir(|k| std::env::var_os(k), writable_dir)
}

fn choose_dir(
    env: impl Fn(&str) -> Option<OsString>,
    writable: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let absolute = |v: OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    // systemd passes one directory per StateDirectory= entry, colon-separated.
    if let Some(first) = env("STATE_DIRECTORY")
        .and_then(|v| {
            v.to_str()
                .and_then(|v| v.split(':').next())
                .map(OsString::from)
        })
        .and_then(absolute)
    {
        return Some(first);
    }
    if writable(Path::new(SYSTEM_DIR)) {
        return Some(SYSTEM_DIR.into());
    }
    if let Some(xdg) = env("XDG_STATE_HOME").and_then(absolute) {
        return Some(xdg.join("suaicloudapp"));
    }
    env("HOME")
        .and_then(absolute)
        .map(|home| home.join(".local/state/suaicloudapp"))
}

fn writable_dir(dir: &Path) -> bool {
    use nix::unistd::{access, AccessFlags};
    dir.is_dir() && access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
}

/// Why, and since when, the config being served is the last known good copy, not S3's object.
#[derive(Debug, Clone)]
pub struct Fallback {
    /// When that copy was fetched from S3 (the modification time of its file).
    pub fetched_at: SystemTime,
    /// Why S3's object is not served, in our own words: never text from the object itself,
    /// which could echo a secret onto the dashboard.
    pub reason: &'static str,
    /// Background fetches tried so far; the re-fetch task counts, the dashboard shows.
    pub attempts: Arc<AtomicU64>,
}

/// A copy read back from the state directory.
struct Copy {
    text: String,
    etag: Option<String>,
    fetched_at: SystemTime,
    path: PathBuf,
}

/// Keeps `loaded` (already parsed and validated) as the last known good copy when it came from
/// S3. A failure is logged, never fatal: serving matters more than the copy. Returns where the
/// copy is.
pub fn keep(source: &ConfigSource, opts: &FetchOptions, loaded: &Loaded) -> Option<PathBuf> {
    let (ConfigSource::S3 { .. }, Some(dir)) = (source, opts.state_dir.as_deref()) else {
        return None;
    };
    match save(dir, &loaded.text, loaded.etag.as_deref()) {
        Ok(path) => Some(path),
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "cannot keep a copy of the fetched config");
            None
        }
    }
}

/// At boot, after `failed` ended the attempt to read an s3:// config: the last known good copy,
/// parsed, when there is one that still parses. The caller completes it as it completes a
/// fetched config ([`super::Loader::fallback`]). `None` (the caller exits with `failed`) for a
/// file source, no state directory, no copy, a file there this program did not write (or that
/// was edited since), or a copy that no longer parses (this build's schema changed).
pub fn fallback(
    source: &ConfigSource,
    opts: &FetchOptions,
    failed: &ConfigError,
) -> Option<(Config, Loaded)> {
    let (ConfigSource::S3 { .. }, Some(dir)) = (source, opts.state_dir.as_deref()) else {
        return None;
    };
    let copy = match read(dir) {
        Ok(Some(copy)) => copy,
        Ok(None) => return None,
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "cannot read the last known good config");
            return None;
        }
    };
    let origin = source.to_string();
    let config = match Config::parse(&copy.text, &copy.path.display().to_string()) {
        Ok(config) => config,
        Err(e) => {
            error!("the last known good config does not parse either: {e}");
            return None;
        }
    };
    let reason = match failed {
        ConfigError::Read { .. } => "S3 could not be read within the start deadline",
        ConfigError::Parse { .. } | ConfigError::Invalid { .. } => {
            "the S3 object was rejected (see the log)"
        }
    };
    let loaded = Loaded {
        text: copy.text,
        origin,
        etag: copy.etag,
        copy: Some(copy.path),
        fallback: Some(Fallback {
            fetched_at: copy.fetched_at,
            reason,
            attempts: Arc::default(),
        }),
    };
    Some((config, loaded))
}

/// Writes the copy and its meta file. The meta file is removed before the copy is renamed into
/// place and written after, so a crash in between leaves a copy without a meta file (refused
/// as not ours until removed by hand), never a copy labelled with another object's ETag.
/// Refuses to replace a file this program did not write.
fn save(dir: &Path, text: &str, etag: Option<&str>) -> io::Result<PathBuf> {
    // Private from its creation: the copies may hold passwords.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(COPY_FILE);
    let meta_path = dir.join(META_FILE);
    if let Some(copy) = read_file(&path)? {
        ours(&copy, &meta_path)?;
    }
    let meta = Meta {
        etag: etag.unwrap_or("").to_string(),
        sha256: sha256_hex(text.as_bytes()),
    };
    let text_tmp = private_temp(dir, text.as_bytes())?;
    let meta_tmp = private_temp(dir, meta.render().as_bytes())?;
    match fs::remove_file(&meta_path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    text_tmp.persist(&path).map_err(|e| e.error)?;
    meta_tmp.persist(&meta_path).map_err(|e| e.error)?;
    // The renames themselves reach the disk: a power cut after this cannot bring back the
    // previous copy.
    fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

/// A synced temporary file with `bytes`, mode 0600 from its creation (no window in which it is
/// readable by others), in `dir` so the rename stays on one file system.
fn private_temp(dir: &Path, bytes: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let mut f = tempfile::Builder::new()
        .prefix(".last-good-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    f.write_all(bytes)?;
    f.as_file().sync_all()?;
    Ok(f)
}

/// What `last-good.meta` records: `etag=` and `sha256=` lines.
struct Meta {
    etag: String,
    sha256: String,
}

impl Meta {
    fn render(&self) -> String {
        format!("etag={}\nsha256={}\n", self.etag, self.sha256)
    }

    fn parse(text: &str) -> Option<Meta> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(|v| v.trim().to_string())
        };
        Some(Meta {
            etag: field("etag")?,
            sha256: field("sha256").filter(|d| d.len() == 64)?,
        })
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The file's bytes, or `None` when there is no such file.
fn read_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The meta file of `copy` when its digest matches, which proves this program wrote it; an
/// error naming the file otherwise.
fn ours(copy: &[u8], meta_path: &Path) -> io::Result<Meta> {
    let meta = read_file(meta_path)?
        .and_then(|m| String::from_utf8(m).ok())
        .and_then(|m| Meta::parse(&m));
    match meta {
        Some(meta) if meta.sha256 == sha256_hex(copy) => Ok(meta),
        _ => Err(io::Error::other(format!(
            "{} was not written by suaicloudapp, or was changed since (its digest is not the \
             one {META_FILE} records): leaving it alone; move it away to let the copy be kept",
            meta_path.with_file_name(COPY_FILE).display()
        ))),
    }
}

/// The copy in `dir`, if one was ever kept; an error for a file there that is not ours.
fn read(dir: &Path) -> io::Result<Option<Copy>> {
    let path = dir.join(COPY_FILE);
    let Some(bytes) = read_file(&path)? else {
        return Ok(None);
    };
    let meta = ours(&bytes, &dir.join(META_FILE))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| io::Error::other(format!("{} is not UTF-8", path.display())))?;
    let fetched_at = fs::metadata(&path)?.modified()?;
    Ok(Some(Copy {
        text,
        etag: Some(meta.etag).filter(|e| !e.is_empty()),
        fetched_at,
        path,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_saved_copy_is_private_and_reads_back_with_its_etag() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "[server]\n", Some("abc")).unwrap();
        save(dir.path(), "[server]\nport = 1\n", Some("def")).unwrap();
        let copy = read(dir.path()).unwrap().unwrap();
        assert_eq!(copy.text, "[server]\nport = 1\n");
        assert_eq!(copy.etag.as_deref(), Some("def"));
        for name in [COPY_FILE, META_FILE] {
            let mode = fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        // No temporary file is left behind.
        assert_eq!(names(dir.path()), [META_FILE, COPY_FILE]);
    }

    #[test]
    fn no_copy_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
    }

    #[test]
    fn a_file_it_did_not_write_is_neither_replaced_nor_read() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = "# someone's own file\n[server]\nport = 9\n";
        fs::write(dir.path().join(COPY_FILE), theirs).unwrap();
        let e = save(dir.path(), "[server]\n", Some("abc")).unwrap_err();
        assert!(
            e.to_string().contains("was not written by suaicloudapp"),
            "{e}"
        );
        assert!(read(dir.path()).is_err());
        assert_eq!(
            fs::read_to_string(dir.path().join(COPY_FILE)).unwrap(),
            theirs
        );
        assert_eq!(names(dir.path()), [COPY_FILE]);
    }

    #[test]
    fn a_copy_edited_after_it_was_kept_is_no_longer_ours() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "[server]\n", Some("abc")).unwrap();
        fs::write(dir.path().join(COPY_FILE), "[server]\nport = 2\n").unwrap();
        assert!(read(dir.path()).is_err());
        assert!(save(dir.path(), "[server]\nport = 3\n", None).is_err());
        assert_eq!(
            fs::read_to_string(dir.path().join(COPY_FILE)).unwrap(),
            "[server]\nport = 2\n"
        );
    }

    #[test]
    fn the_default_state_directory_is_never_the_working_one() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
        };
        let none = |_: &Path| false;
        let all = |_: &Path| true;
        let systemd = env(&[
            ("STATE_DIRECTORY", "/var/lib/a:/var/lib/b"),
            ("HOME", "/root"),
        ]);
        assert_eq!(choose_dir(systemd, all), Some("/var/lib/a".into()));
        let home = env(&[("HOME", "/home/op")]);
        assert_eq!(choose_dir(home, all), Some(SYSTEM_DIR.into()));
        assert_eq!(
            choose_dir(home, none),
            Some("/home/op/.local/state/suaicloudapp".into())
        );
        let xdg = env(&[("XDG_STATE_HOME", "/x/state"), ("HOME", "/home/op")]);
        assert_eq!(choose_dir(xdg, none), Some("/x/state/suaicloudapp".into()));
        // Relative values would resolve against the working directory: ignored.
        let relative = env(&[
            ("STATE_DIRECTORY", "."),
            ("XDG_STATE_HOME", "s"),
            ("HOME", "h"),
        ]);
        assert_eq!(choose_dir(relative, none), None);
    }
}
