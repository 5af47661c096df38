//! Real PostgreSQL and Redis servers for tests, on free loopback ports, owned by the test
//! process.
//!
//! PostgreSQL: `initdb` runs once per machine into a cached template cluster (guarded by a file
//! lock, so parallel test processes do not race), and each server copies it into its own
//! directory (on `/dev/shm` when there is one) and starts there with durability off (`fsync`,
//! `synchronous_commit` and `full_page_writes` off: a test database is thrown away anyway) and
//! dynamic shared memory kept as files in the data directory, so even a killed server leaves
//! nothing behind. PostgreSQL refuses to run as root, so as root every PostgreSQL command runs
//! as the existing `postgres` user via `runuser`.
//! [`PostgresServer::create_database`] gives each test its own empty database.
//!
//! No server outlives the test process: `Drop` stops it, and because a server kept in a
//! `static` is never dropped, each server also has a watchdog (a tiny `sh` loop) that stops it
//! and removes its files once the test process's pid is gone.
//!
//! When a binary is missing, `start` reports it through [`crate::requirements::missing`] (a
//! failure under `CI=true`, a loud skip elsewhere) and returns `None`.

use std::{
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::requirements::missing;

/// How often a watchdog checks whether the test process is still alive.
const WATCHDOG_INTERVAL: &str = "0.5";
/// Attempts at starting a server, each on a fresh free port, before giving up.
const START_ATTEMPTS: usize = 3;

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// The first `name` that exists in `dirs`, then on `PATH`.
fn find_binary(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.iter()
        .chain(path_dirs.iter())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Where server files go: `/dev/shm` when there is one (a RAM disk: copying the template and
/// starting PostgreSQL there take a tenth of the time they take on disk, and nothing here
/// needs to survive), else the temporary directory.
fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = shm.is_dir()
        && tempfile::Builder::new()
            .prefix("inbox-testkit-probe-")
            .tempfile_in(shm)
            .is_ok();
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs `command` to completion; its output in the error when it fails.
fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot run {command:?}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Starts a detached `sh` loop that waits until this process exits or `guard_check` fails
/// (the server was stopped normally); in the first case it runs `cleanup`. `args` are the
/// script's `$1`, `$2`, … (after the parent pid, which it shifts away).
fn spawn_watchdog(guard_check: &str, cleanup: &str, args: &[&str]) {
    let script = format!(
        "parent=$1; shift; \
         while kill -0 \"$parent\" 2>/dev/null && {guard_check}; do sleep {WATCHDOG_INTERVAL}; done; \
         if {guard_check}; then {cleanup}; fi"
    );
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("inbox-testkit-watchdog")
        .arg(std::process::id().to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        // Never waited for: it must outlive this process. Reaped by init afterwards.
        Ok(child) => drop(child),
        Err(err) => eprintln!("inbox-testkit: cannot start a server watchdog: {err}"),
    }
}

// ----- PostgreSQL --------------------------------------------------------------------------

/// The PostgreSQL binaries of one installation.
#[derive(Debug, Clone)]
struct PostgresBinaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    createdb: PathBuf,
}

impl PostgresBinaries {
    fn find() -> Option<Self> {
        let mut dirs = vec![PathBuf::from("/usr/local/bin")];
        // Debian keeps each major version's binaries in /usr/lib/postgresql/<major>/bin; prefer
        // the newest.
        if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
            let mut versions: Vec<(u32, PathBuf)> = entries
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| {
                    let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((major, entry.path().join("bin")))
                })
                .collect();
            versions.sort();
            dirs.extend(versions.into_iter().rev().map(|(_, bin)| bin));
        }
        let initdb = find_binary("initdb", &dirs)?;
        // Use pg_ctl and createdb from the same installation as initdb.
        let sibling = |name: &str| {
            let real = fs::canonicalize(&initdb).unwrap_or_else(|_| initdb.clone());
            real.parent()
                .map(|dir| dir.join(name))
                .filter(|p| p.is_file())
        };
        let pg_ctl = sibling("pg_ctl").or_else(|| find_binary("pg_ctl", &dirs))?;
        let createdb = sibling("createdb").or_else(|| find_binary("createdb", &dirs))?;
        let _postgres = sibling("postgres").or_else(|| find_binary("postgres", &dirs))?;
        Some(PostgresBinaries {
            initdb,
            pg_ctl,
            createdb,
        })
    }

    /// A command that runs `program` as the `postgres` user when we are root.
    fn command(program: &Path) -> Command {
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// The installation's version line, to key the template cache.
    fn version_tag(&self) -> String {
        let output = Command::new(&self.pg_ctl).arg("--version").output();
        let text = output
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let tag: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        tag.trim_matches('-').to_owned()
    }
}

/// The `postgres` user's uid and gid, when running as root.
fn postgres_user() -> Option<(u32, u32)> {
    let user = nix::unistd::User::from_name("postgres").ok().flatten()?;
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// Gives `path` to the `postgres` user when we are root (PostgreSQL's files must be its own).
fn chown_to_postgres(path: &Path) -> Result<(), String> {
    if let (true, Some((uid, gid))) = (is_root(), postgres_user()) {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|err| format!("cannot chown {} to postgres: {err}", path.display()))?;
    }
    Ok(())
}

/// The cached template cluster, made by `initdb` once per machine and installation.
fn template_cluster(binaries: &PostgresBinaries) -> Result<PathBuf, String> {
    let cache = scratch_dir().join(format!("inbox-testkit-postgres-{}", binaries.version_tag()));
    fs::create_dir_all(&cache)
        .map_err(|err| format!("cannot create {}: {err}", cache.display()))?;
    let template = cache.join("template");
    let ready = cache.join("template.ready");
    if ready.exists() {
        return Ok(template);
    }
    let lock_file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache.join("template.lock"))
        .map_err(|err| format!("cannot open the template lock: {err}"))?;
    let mut lock = fd_lock::RwLock::new(lock_file);
    let _guard = lock
        .write()
        .map_err(|err| format!("cannot lock the template: {err}"))?;
    if ready.exists() {
        // Another process made it while we waited for the lock.
        return Ok(template);
    }
    let _ = fs::remove_dir_all(&template);
    // The cache directory must be traversable by `postgres`; the template itself is its own.
    fs::create_dir_all(&template)
        .map_err(|err| format!("cannot create {}: {err}", template.display()))?;
    chown_to_postgres(&template)?;
    run(PostgresBinaries::command(&binaries.initdb)
        .arg("-D")
        .arg(&template)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]))?;
    fs::write(&ready, b"").map_err(|err| format!("cannot mark the template ready: {err}"))?;
    Ok(template)
}

/// A PostgreSQL server for this test process, listening on 127.0.0.1 only, superuser
/// `postgres` with trust authentication. Stopped on drop, or by its watchdog when the process
/// exits.
#[derive(Debug)]
pub struct PostgresServer {
    binaries: PostgresBinaries,
    root: TempDir,
    data: PathBuf,
    port: u16,
}

static DATABASE_COUNTER: AtomicU32 = AtomicU32::new(0);

impl PostgresServer {
    /// Starts a server, or returns `None` (after [`missing`]) when PostgreSQL is not installed.
    ///
    /// # Panics
    /// When PostgreSQL is installed but cannot be started (a broken machine should fail loudly).
    pub fn start() -> Option<PostgresServer> {
        let Some(binaries) = PostgresBinaries::find() else {
            missing(
                "PostgreSQL (initdb, pg_ctl, postgres, createdb)",
                "Install it, e.g. `apt-get install -y postgresql`",
            );
            return None;
        };
        if is_root() && postgres_user().is_none() {
            missing(
                "the `postgres` system user (PostgreSQL refuses to run as root)",
                "Install the postgresql package, which creates it",
            );
            return None;
        }
        match Self::start_with(binaries) {
            Ok(server) => Some(server),
            Err(err) => panic!("PostgreSQL is installed but did not start: {err}"),
        }
    }

    fn start_with(binaries: PostgresBinaries) -> Result<PostgresServer, String> {
        let template = template_cluster(&binaries)?;
        let root = tempfile::Builder::new()
            .prefix("inbox-testkit-pg-")
            .tempdir_in(scratch_dir())
            .map_err(|err| format!("cannot create a temporary directory: {err}"))?;
        chown_to_postgres(root.path())?;
        let data = root.path().join("data");
        // `cp -a` keeps the owner (postgres) and the 0700 mode PostgreSQL insists on.
        run(Command::new("cp").arg("-a").arg(&template).arg(&data))?;
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={data} \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c max_connections=200 -c shared_buffers=32MB \
                 -c dynamic_shared_memory_type=mmap",
                data = data.display()
            );
            let started = run(PostgresBinaries::command(&binaries.pg_ctl)
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(data.join("server.log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(&options)
                .arg("start"));
            match started {
                Ok(()) => {
                    let server = PostgresServer {
                        binaries,
                        root,
                        data,
                        port,
                    };
                    server.watch();
                    return Ok(server);
                }
                // Most likely another process took the port between our probe and the bind.
                Err(err) => last_error = err,
            }
        }
        Err(last_error)
    }

    /// Stops the server and removes its files once this process is gone.
    fn watch(&self) {
        let data = self.data.display().to_string();
        let root = self.root.path().display().to_string();
        let pg_ctl = self.binaries.pg_ctl.display().to_string();
        let stop = if is_root() {
            "runuser -u postgres -- \"$3\" -D \"$1\" -m immediate stop >/dev/null 2>&1; rm -rf \"$2\""
        } else {
            "\"$3\" -D \"$1\" -m immediate stop >/dev/null 2>&1; rm -rf \"$2\""
        };
        spawn_watchdog("[ -d \"$1\" ]", stop, &[&data, &root, &pg_ctl]);
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the `postgres` maintenance database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates a fresh, empty database and returns its URL.
    ///
    /// # Panics
    /// When `createdb` fails.
    pub fn create_database(&self) -> String {
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            DATABASE_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new(&self.binaries.createdb)
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(&name))
        .unwrap_or_else(|err| panic!("cannot create database {name}: {err}"));
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = run(PostgresBinaries::command(&self.binaries.pg_ctl)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]));
        // The TempDir removes the files, and the watchdog then finds the data directory gone.
    }
}

// ----- Redis -------------------------------------------------------------------------------

/// A `redis-server` child process on a free 127.0.0.1 port, without persistence. It can be
/// stopped, killed and restarted on the same port, to test reconnection.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server, or returns `None` (after [`missing`]) when `redis-server` is absent.
    ///
    /// # Panics
    /// When `redis-server` exists but does not start.
    pub fn start() -> Option<RedisServer> {
        let dirs = [PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")];
        let Some(binary) = find_binary("redis-server", &dirs) else {
            missing(
                "redis-server",
                "Install it, e.g. `apt-get install -y redis-server`",
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("inbox-testkit-redis-")
            .tempdir()
            .expect("creating a temporary directory for Redis");
        let mut server = RedisServer {
            binary,
            dir,
            port: 0,
            child: None,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return Some(server),
                // Most likely another process took the port between our probe and the bind.
                Err(err) => last_error = err,
            }
        }
        panic!("redis-server is installed but did not start: {last_error}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("cannot run {}: {err}", self.binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.answers_ping() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server exited at start ({status})"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("redis-server did not answer PING within 10 s".to_owned());
            }
            thread::sleep(Duration::from_millis(10));
        }
        let pid = child.id().to_string();
        // Ends when the server is gone (stopped or killed by us), or kills it when we are.
        spawn_watchdog("kill -0 \"$1\" 2>/dev/null", "kill -9 \"$1\"", &[&pid]);
        self.child = Some(child);
        Ok(())
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Stops it gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let _ = child.wait();
        }
    }

    /// Kills it (SIGKILL), as a crash would, and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (after [`stop`](Self::stop) or [`kill`](Self::kill);
    /// a running server is killed first). Its data starts empty.
    ///
    /// # Panics
    /// When it does not come back within a few seconds.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The old socket may linger for a moment after a kill.
                Err(err) if Instant::now() > deadline => {
                    panic!("redis-server did not restart: {err}")
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_roundtrip(port: u16) -> String {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        stream.write_all(b"SET k v\r\nGET k\r\n").unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut reply = vec![0u8; 12];
        stream.read_exact(&mut reply).unwrap();
        String::from_utf8(reply).unwrap()
    }

    #[test]
    fn redis_starts_survives_a_kill_by_restarting_and_stops() {
        let Some(mut redis) = RedisServer::start() else {
            return;
        };
        assert!(redis.url().starts_with("redis://127.0.0.1:"));
        assert_eq!(redis_roundtrip(redis.port()), "+OK\r\n$1\r\nv\r\n");
        let port = redis.port();
        redis.kill();
        assert!(!redis.is_running());
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
        redis.restart();
        assert_eq!(redis.port(), port);
        assert!(redis.is_running());
        assert_eq!(redis_roundtrip(port), "+OK\r\n$1\r\nv\r\n");
        redis.stop();
        assert!(!redis.is_running());
    }

    #[test]
    fn postgres_gives_each_caller_a_fresh_database() {
        let Some(server) = PostgresServer::start() else {
            return;
        };
        let first = server.create_database();
        let second = server.create_database();
        assert_ne!(first, second);
        assert!(first.starts_with(&format!("postgres://postgres@127.0.0.1:{}/", server.port())));
        let data = server.data.clone();
        assert!(data.join("postmaster.pid").exists());
        drop(server);
        assert!(!data.exists(), "the server's files are removed on drop");
    }
}
