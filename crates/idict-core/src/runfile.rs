//! Run files: how a served run says where it is. A run file is a small JSON
//! document (name, pid, host, address, tokens, start time) written with mode
//! 0600 into the runs directory (`$IDICT_RUNS_DIR`, else the platform data
//! directory) and removed when the server closes. Files of processes that
//! are gone are ignored, so a crashed run never shows up as live.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The contents of a run file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFile {
    pub name: String,
    pub pid: u32,
    pub host: String,
    /// Where to connect: `http://127.0.0.1:PORT` or `unix:/path`.
    pub address: String,
    pub observer_token: String,
    pub controller_token: String,
    /// Unix time of the run's start, in milliseconds.
    pub started_unix_ms: i64,
    pub protocol_version: u32,
    /// Unix time (ms) the run last said it is alive: its server rewrites
    /// the file every few seconds. On another host (a home directory shared
    /// by a cluster's nodes), where its pid cannot be checked, the run
    /// counts as live only while this is fresh. 0 in files of older idicts.
    #[serde(default)]
    pub heartbeat_unix_ms: i64,
    /// Where Prometheus scrapes the run's `/metrics` (host:port), if it
    /// serves them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// The processes the run is made of: an MPI job's ranks (idict-mpi),
    /// 1 otherwise (and in files of older idicts, which leave it out).
    #[serde(default = "one_rank", skip_serializing_if = "is_one_rank")]
    pub ranks: u32,
}

fn one_rank() -> u32 {
    1
}

fn is_one_rank(ranks: &u32) -> bool {
    *ranks == 1
}

impl RunFile {
    /// True if `token` is one of this run's.
    pub fn holds_token(&self, token: &str) -> bool {
        token == self.observer_token || token == self.controller_token
    }
}

/// A run file found in the runs directory.
#[derive(Debug, Clone)]
pub struct FoundRun {
    pub path: PathBuf,
    pub run: RunFile,
}

/// Errors reading or writing run files.
#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error("no runs directory: set IDICT_RUNS_DIR or HOME")]
    NoRunsDir,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an idict run file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is readable by other users (mode {mode:o}); refusing to use its tokens")]
    Insecure { path: PathBuf, mode: u32 },
    #[error(
        "{path}: {reason}, so another user could plant or read run files there; refusing to \
         write tokens into it (use a directory only you can write: chmod 700 it, or point \
         IDICT_RUNS_DIR elsewhere)"
    )]
    UnsafeDir { path: PathBuf, reason: String },
}

/// The directory where run files live.
pub fn runs_dir() -> Result<PathBuf, RunFileError> {
    if let Some(dir) = std::env::var_os("IDICT_RUNS_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::data_local_dir()
        .map(|d| d.join("idict").join("runs"))
        .ok_or(RunFileError::NoRunsDir)
}

/// This machine's host name.
#[cfg(unix)]
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// This machine's host name.
#[cfg(not(unix))]
pub fn host_name() -> String {
    std::env::var("COMPUTERNAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".into())
}

/// True if a process with this pid exists on this machine.
#[cfg(unix)]
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match rustix::process::Pid::from_raw(pid) {
        Some(p) => match rustix::process::test_kill_process(p) {
            Ok(()) => true,
            // The process exists but belongs to someone else.
            Err(e) => e == rustix::io::Errno::PERM,
        },
        None => false,
    }
}

/// True if a process with this pid exists on this machine (and has not
/// exited: Windows keeps a process object while handles to it are open).
#[cfg(windows)]
pub fn process_alive(pid: u32) -> bool {
    use windows_sys::Win32::Foundation::{
        CloseHandle, ERROR_ACCESS_DENIED, GetLastError, STILL_ACTIVE,
    };
    use windows_sys::Win32::System::Threading::{
        GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    };
    // SAFETY: plain Win32 calls on a handle this function opens and closes.
    unsafe {
        let handle = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if handle.is_null() {
            // It exists but belongs to someone else.
            return GetLastError() == ERROR_ACCESS_DENIED;
        }
        let mut code = 0u32;
        let ok = GetExitCodeProcess(handle, &mut code) != 0;
        CloseHandle(handle);
        ok && code == STILL_ACTIVE as u32
    }
}

/// True if a process with this pid exists on this machine: not knowable
/// here, so every run file counts as live until it is removed.
#[cfg(not(any(unix, windows)))]
pub fn process_alive(_pid: u32) -> bool {
    true
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunFileError + '_ {
    move |source| RunFileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a run file atomically (temp file, then rename) with mode 0600.
///
/// The runs directory must be one another user cannot write (or a sticky
/// one, where nobody can replace our files). The temporary file has an
/// unguessable name and is created exclusively (`O_EXCL`, which never
/// follows a symlink), and the rename replaces whatever is at the run
/// file's name (a planted symlink included) without following it: a
/// neighbour can make the write fail, never redirect the tokens.
pub fn write_run_file(dir: &Path, run: &RunFile) -> Result<PathBuf, RunFileError> {
    create_private_dir(dir)?;
    check_dir_is_private(dir)?;
    let safe: String = run
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    // The host too: on a runs directory shared by a cluster's nodes, two
    // runs of one name can have one pid (containers start at 1).
    let host: String = run
        .host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let path = dir.join(format!("{safe}-{host}-{}.json", run.pid));
    let mut nonce = [0u8; 8];
    // Without randomness the name is still exclusive, only guessable.
    let _ = getrandom::fill(&mut nonce);
    let tmp = dir.join(format!(
        ".{safe}-{}-{:016x}.json.tmp",
        run.pid,
        u64::from_le_bytes(nonce)
    ));
    let json = serde_json::to_vec_pretty(run).map_err(|source| RunFileError::Parse {
        path: path.clone(),
        source,
    })?;
    let written = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&json).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| path)
}

/// Refuses a runs directory another user could write into: one owned by
/// someone else, or writable by group or others, unless it is sticky (as
/// /tmp is: there nobody can rename or delete another's files).
fn check_dir_is_private(dir: &Path) -> Result<(), RunFileError> {
    // Elsewhere (Windows) the per-user data directory's ACL keeps other
    // users out; a directory given by IDICT_RUNS_DIR is taken as given.
    #[cfg(not(unix))]
    let _ = dir;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir).map_err(io_err(dir))?;
        let unsafe_dir = |reason: String| RunFileError::UnsafeDir {
            path: dir.to_owned(),
            reason,
        };
        if !meta.is_dir() {
            return Err(unsafe_dir("not a directory".into()));
        }
        let mode = meta.mode();
        let sticky = mode & 0o1000 != 0;
        if sticky {
            return Ok(());
        }
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(unsafe_dir(format!(
                "it belongs to uid {}, not to you (uid {me})",
                meta.uid()
            )));
        }
        if mode & 0o022 != 0 {
            return Err(unsafe_dir(format!(
                "other users can write it (mode {:o}) and it is not sticky",
                mode & 0o7777
            )));
        }
    }
    Ok(())
}

/// A regular file (not a symlink) owned by the user running this process:
/// the only run files a listing trusts. Another user's file could name an
/// address of theirs, to collect the tokens sent to it.
fn is_own_run_file(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.file_type().is_file() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return false;
        }
    }
    true
}

fn create_private_dir(dir: &Path) -> Result<(), RunFileError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(io_err(dir))
}

/// Reads one run file; refuses one that other users can read.
pub fn read_run_file(path: &Path) -> Result<RunFile, RunFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(io_err(path))?;
        // A directory is no run file; a pipe may be (`idict info <(…)`).
        if meta.is_dir() {
            return Err(io_err(path)(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a directory, not a run file",
            )));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(RunFileError::Insecure {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|source| RunFileError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// How often a run's server refreshes its run file's heartbeat.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// A run file from another host whose heartbeat is older than this is a
/// dead run's (six missed heartbeats, and room for clocks that disagree).
pub const HEARTBEAT_STALE_MS: i64 = 30_000;

/// Unix time now, in milliseconds.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// True if the run is on this host and its process is alive, or on
/// another host (a home directory shared by a cluster's nodes) and its
/// heartbeat is fresh: a run file a killed node left behind never counts.
pub fn is_live(run: &RunFile) -> bool {
    if run.host == host_name() {
        process_alive(run.pid)
    } else {
        now_unix_ms() - run.heartbeat_unix_ms < HEARTBEAT_STALE_MS
    }
}

/// Keeps a run file's heartbeat fresh: a thread that rewrites it every
/// `every` until stopped. Stopping waits for a rewrite under way, so the
/// file removed after `stop` stays removed.
pub struct Heartbeat {
    state: std::sync::Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)>,
}

impl Heartbeat {
    pub fn start(dir: PathBuf, mut run: RunFile, every: std::time::Duration) -> Heartbeat {
        // Often enough that other hosts never see the run go stale, and
        // never a busy loop.
        let every = every.clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_millis(HEARTBEAT_STALE_MS as u64 / 3),
        );
        let state =
            std::sync::Arc::new((parking_lot::Mutex::new(false), parking_lot::Condvar::new()));
        let shared = state.clone();
        let beat = move || {
            let (stopped, wake) = &*shared;
            let mut stopped = stopped.lock();
            loop {
                wake.wait_for(&mut stopped, every);
                if *stopped {
                    return;
                }
                run.heartbeat_unix_ms = now_unix_ms();
                if let Err(e) = write_run_file(&dir, &run) {
                    tracing::warn!("cannot refresh the run file's heartbeat: {e}");
                }
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("idict-heartbeat".into())
            .spawn(beat)
        {
            tracing::warn!("no heartbeat thread ({e}): other hosts will not see this run");
        }
        Heartbeat { state }
    }

    pub fn stop(&self) {
        let (stopped, wake) = &*self.state;
        *stopped.lock() = true;
        wake.notify_all();
    }
}

/// The live runs in the runs directory, oldest first. Unreadable files,
/// files of dead processes, symlinks and other users' files are skipped.
pub fn list_runs() -> Result<Vec<FoundRun>, RunFileError> {
    list_runs_in(&runs_dir()?)
}

/// The live runs in `dir`, oldest first.
pub fn list_runs_in(dir: &Path) -> Result<Vec<FoundRun>, RunFileError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut runs: Vec<FoundRun> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| is_own_run_file(p))
        .filter_map(|path| {
            let run = read_run_file(&path).ok()?;
            is_live(&run).then_some(FoundRun { path, run })
        })
        .collect();
    runs.sort_by_key(|r| (r.run.started_unix_ms, r.run.pid));
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, pid: u32) -> RunFile {
        RunFile {
            name: name.into(),
            pid,
            host: host_name(),
            address: "http://127.0.0.1:1".into(),
            observer_token: "o".into(),
            controller_token: "c".into(),
            started_unix_ms: 1,
            protocol_version: 1,
            heartbeat_unix_ms: 1,
            metrics: None,
            ranks: 1,
        }
    }

    #[test]
    fn run_files_are_private_and_dead_pids_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let path = write_run_file(dir.path(), &run("heat/2d", me)).unwrap();
        assert_eq!(
            path.file_name().unwrap(),
            format!(
                "heat_2d-{}-{me}.json",
                host_name().replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
            )
            .as_str()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // A pid that cannot exist: ignored.
        write_run_file(dir.path(), &run("ghost", 0x7fff_fff0)).unwrap();
        let runs = list_runs_in(dir.path()).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].run.name, "heat/2d");
        assert_eq!(read_run_file(&path).unwrap(), run("heat/2d", me));
    }

    #[cfg(unix)]
    fn mode(dir: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A neighbour who can write the runs directory plants symlinks at the
    /// names a run will write (the old fixed temporary name, and the run
    /// file's own) pointing at a file of theirs, to read the tokens there.
    #[cfg(unix)]
    #[test]
    fn planted_symlinks_never_receive_the_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let loot = dir.path().join("loot");
        let me = std::process::id();
        for name in [format!(".x-{me}.json.tmp"), format!("x-{me}.json")] {
            std::os::unix::fs::symlink(&loot, dir.path().join(name)).unwrap();
        }
        let path = write_run_file(dir.path(), &run("x", me)).unwrap();
        assert!(!loot.exists(), "the tokens were written through a symlink");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(
            meta.file_type().is_file(),
            "the run file is still a symlink"
        );
        assert_eq!(read_run_file(&path).unwrap(), run("x", me));
    }

    #[cfg(unix)]
    #[test]
    fn a_runs_directory_others_can_write_is_refused_unless_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        mode(dir.path(), 0o777);
        let err = write_run_file(dir.path(), &run("x", me)).unwrap_err();
        assert!(
            matches!(&err, RunFileError::UnsafeDir { reason, .. } if reason.contains("other users can write it")),
            "{err}"
        );
        mode(dir.path(), 0o770);
        assert!(matches!(
            write_run_file(dir.path(), &run("x", me)),
            Err(RunFileError::UnsafeDir { .. })
        ));
        // Sticky, as /tmp is: nobody can replace another's files there.
        mode(dir.path(), 0o1777);
        write_run_file(dir.path(), &run("x", me)).unwrap();
        mode(dir.path(), 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn listings_skip_symlinks_and_other_users_files() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let mine = write_run_file(dir.path(), &run("mine", me)).unwrap();
        // A symlink to a live run file, under a name a user might type.
        std::os::unix::fs::symlink(&mine, dir.path().join("lorenz-1.json")).unwrap();
        // Another user's file naming a live pid (only root can make one).
        if rustix::process::geteuid().is_root() {
            let theirs = dir.path().join("evil-1.json");
            std::fs::copy(&mine, &theirs).unwrap();
            let text = std::fs::read_to_string(&theirs)
                .unwrap()
                .replace("\"mine\"", "\"evil\"");
            std::fs::write(&theirs, text).unwrap();
            mode(&theirs, 0o600);
            std::os::unix::fs::chown(&theirs, Some(12345), None).unwrap();
        }
        let names: Vec<String> = list_runs_in(dir.path())
            .unwrap()
            .into_iter()
            .map(|r| r.run.name)
            .collect();
        assert_eq!(names, vec!["mine".to_string()]);
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_run_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = write_run_file(dir.path(), &run("x", std::process::id())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_run_file(&path),
            Err(RunFileError::Insecure { .. })
        ));
    }

    #[test]
    fn a_run_file_from_another_host_is_live_only_while_its_heartbeat_is_fresh() {
        let mut other = run("heat", 1);
        other.host = format!("{}-elsewhere", host_name());
        other.heartbeat_unix_ms = now_unix_ms() - 1000;
        assert!(is_live(&other), "a heartbeat a second old");
        other.heartbeat_unix_ms = now_unix_ms() - HEARTBEAT_STALE_MS - 1000;
        assert!(!is_live(&other), "a node that died long ago");
        other.heartbeat_unix_ms = 0;
        assert!(!is_live(&other), "an older idict's file, with no heartbeat");
        // Here, the pid decides, whatever the heartbeat says.
        let mut here = run("heat", std::process::id());
        here.heartbeat_unix_ms = 0;
        assert!(is_live(&here));
    }

    #[test]
    fn a_run_file_without_a_heartbeat_still_reads() {
        let json = r#"{"name":"old","pid":1,"host":"h","address":"http://127.0.0.1:1",
            "observer_token":"o","controller_token":"c","started_unix_ms":5,"protocol_version":1}"#;
        let rf: RunFile = serde_json::from_str(json).expect("an older idict's run file");
        assert_eq!(rf.heartbeat_unix_ms, 0);
    }

    #[test]
    fn the_heartbeat_refreshes_the_file_until_stopped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("runs");
        let rf = run("beat", std::process::id());
        let path = write_run_file(&sub, &rf).expect("written");
        let beat = Heartbeat::start(sub.clone(), rf, std::time::Duration::from_millis(20));
        let first = read_run_file(&path).expect("read").heartbeat_unix_ms;
        let start = std::time::Instant::now();
        while read_run_file(&path)
            .map(|r| r.heartbeat_unix_ms)
            .unwrap_or(0)
            <= first
        {
            assert!(start.elapsed().as_secs() < 10, "the heartbeat never moved");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        beat.stop();
        std::fs::remove_file(&path).expect("removed");
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!path.exists(), "a stopped heartbeat wrote the file again");
    }
}
