//! `trailkeep serve` as a process: it caps glibc's malloc arenas by starting itself again with
//! `MALLOC_ARENA_MAX=2` (same process id), and leaves an operator's own setting alone.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts `serve` on port 0 and waits for its "listening on" line.
fn serve(dir: &std::path::Path, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailkeep"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env_remove("MALLOC_ARENA_MAX")
        .env_remove("GLIBC_TUNABLES")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let listening = out.lines().map_while(Result::ok).any(|line| line.starts_with("listening on "));
    if !listening {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server exited before listening");
    }
    child
}

/// The environment of a running process, as `KEY=VALUE` strings.
fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

fn stop(mut child: Child) {
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn serve_caps_malloc_arenas_unless_the_operator_chose() {
    let dir = tempfile::tempdir().unwrap();
    let child = serve(dir.path(), &[]);
    let env = environ(child.id());
    assert!(env.iter().any(|e| e == "MALLOC_ARENA_MAX=2"), "{env:?}");
    stop(child);

    let child = serve(dir.path(), &[("MALLOC_ARENA_MAX", "4")]);
    let env = environ(child.id());
    assert!(env.iter().any(|e| e == "MALLOC_ARENA_MAX=4"), "{env:?}");
    assert!(!env.iter().any(|e| e == "MALLOC_ARENA_MAX=2"), "{env:?}");
    stop(child);
}
