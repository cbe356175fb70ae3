//! Disk faults under the checkpoint (issue 8): its file system fills up or turns read-only
//! mid-run; inlet stops with an error that says so, and once fixed resumes exactly once.
//! The checkpoint lives on a small tmpfs the test mounts (it needs root).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::support::*;

/// A tmpfs mounted on a directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).expect("mkdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs for the checkpoint (these tests need root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.dir)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "remount {opts}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writes a filler file until the file system refuses more; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).and_then(|()| f.flush()).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Runs continuously until some files are committed, breaks the checkpoint's disk with
/// `break_it` (mid-run, or after stopping the run when `mid_run` is false), lands more
/// files, and expects the run (or the next) to stop with `message`; then `fix`, a draining
/// run, and every row once.
fn stop_then_resume(
    size: &str,
    mid_run: bool,
    break_it: impl FnOnce(&Tmpfs) -> Option<PathBuf>,
    fix: impl FnOnce(&Tmpfs, Option<PathBuf>),
    message: &str,
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fs = Tmpfs::mount(&tmp.path().join("state"), size);
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(3, 50);
    let config = write_config(
        tmp.path(),
        "pipeline_id = \"disk\"\n[source]\nurl = \"landing\"\nmax_files_per_batch = 1\n\
         [sink]\ntable = \"table\"\n[checkpoint]\nlocation = \"state\"\n[trigger]\ninterval_seconds = 1\n",
    );
    let run = Running::start(&config, &[], &[]);
    wait_for(60, "the first files committed", Some(&run), || {
        committed(&config) == 3
    });
    let (run, broken) = if mid_run {
        let broken = break_it(&fs);
        (run, broken)
    } else {
        run.stop();
        let broken = break_it(&fs);
        (Running::start(&config, &[], &[]), broken)
    };
    landing.add_files(40, 50);
    let (status, log) = run.wait();
    assert!(
        !status.success(),
        "a run whose checkpoint cannot be written must stop: {log}"
    );
    assert!(
        log.contains(message),
        "the error should say {message:?}:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");

    fix(&fs, broken);
    landing.add_files(2, 50);
    drain(&config, &[], &[]);
    let ids = read_delta(&url_of(&tmp.path().join("table")), &json!({})).ints("id");
    assert_eq!(
        ids,
        landing.ids.iter().copied().collect::<Vec<_>>(),
        "rows lost or doubled"
    );
    let files = files_json(&config);
    assert_eq!(files.len(), 45);
    assert!(files.iter().all(|f| f["state"] == "committed"), "{files:?}");
}

#[test]
fn a_full_checkpoint_disk_stops_the_run_and_it_resumes_once_freed() {
    stop_then_resume(
        "4m",
        true,
        |fs| Some(fs.fill()),
        |_, filler| std::fs::remove_file(filler.expect("filler")).expect("free space"),
        "the disk holding the checkpoint is full",
    );
}

#[test]
fn a_read_only_checkpoint_disk_stops_the_run_and_it_resumes_once_writable() {
    // Linux refuses to make a file system read-only while a file on it is open for
    // writing, so the disk turns read-only between two runs (a volume remounted, or
    // restored read-only).
    stop_then_resume(
        "16m",
        false,
        |fs| {
            fs.remount("ro");
            None
        },
        |fs, _| fs.remount("rw"),
        "Read-only file system",
    );
}
