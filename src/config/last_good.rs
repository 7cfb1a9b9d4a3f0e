//! The last known good copy of an s3:// config, kept in the state directory, and the choice to
//! serve it at boot when S3 cannot be read.
//!
//! A copy is written only for text that parsed and validated, so a malformed object in S3 never
//! replaces a good copy. It is written atomically (a private temporary file in the same
//! directory, then a rename) with mode 0600, because it may hold passwords. This module reads
//! and writes files and parses the copy; it never fetches (that is `source.rs`) and never
//! swaps a running config (that is the re-fetch task, `crate::refetch`).

use super::{Config, ConfigError, ConfigSource, FetchOptions, Loaded};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::SystemTime;
use tracing::{error, warn};

/// The copy's file name in the state directory: the object's text, byte for byte.
pub const COPY_FILE: &str = "config.toml";
/// The object's ETag beside it; empty or absent when unknown.
pub const ETAG_FILE: &str = "config.etag";

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
/// fetched config (`probes::prepare`: secrets from the environment, `[health]` names).
/// `None` (the caller exits with `failed`) for a file source, no state directory, no copy, or
/// a copy that no longer parses (this build's schema changed, the file was edited by hand).
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

/// Writes the copy and its ETag. The ETag file is removed before the copy is renamed into
/// place and written after, so a crash in between leaves a copy without an ETag, never a copy
/// labelled with another object's ETag.
fn save(dir: &Path, text: &str, etag: Option<&str>) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let path = dir.join(COPY_FILE);
    let etag_path = dir.join(ETAG_FILE);
    let text_tmp = private_temp(dir, text.as_bytes())?;
    let etag_tmp = private_temp(dir, etag.unwrap_or("").as_bytes())?;
    match fs::remove_file(&etag_path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    text_tmp.persist(&path).map_err(|e| e.error)?;
    etag_tmp.persist(&etag_path).map_err(|e| e.error)?;
    // The renames themselves reach the disk: a power cut after this cannot bring back the
    // previous copy.
    fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

/// A synced temporary file with `bytes`, mode 0600 from its creation (no window in which it is
/// readable by others), in `dir` so the rename stays on one file system.
fn private_temp(dir: &Path, bytes: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let mut f = tempfile::Builder::new()
        .prefix(".config-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    f.write_all(bytes)?;
    f.as_file().sync_all()?;
    Ok(f)
}

/// The copy in `dir`, if one was ever kept.
fn read(dir: &Path) -> io::Result<Option<Copy>> {
    let path = dir.join(COPY_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let fetched_at = fs::metadata(&path)?.modified()?;
    let etag = fs::read_to_string(dir.join(ETAG_FILE))
        .ok()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    Ok(Some(Copy {
        text,
        etag,
        fetched_at,
        path,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_copy_is_private_and_reads_back_with_its_etag() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "[server]\n", Some("abc")).unwrap();
        save(dir.path(), "[server]\nport = 1\n", Some("def")).unwrap();
        let copy = read(dir.path()).unwrap().unwrap();
        assert_eq!(copy.text, "[server]\nport = 1\n");
        assert_eq!(copy.etag.as_deref(), Some("def"));
        for name in [COPY_FILE, ETAG_FILE] {
            let mode = fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn no_copy_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
    }
}
