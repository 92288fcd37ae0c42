//! A Galera cluster for tests: three MariaDB nodes on 127.0.0.1 that
//! replicate synchronously, started by `scripts/lib-galera.sh` (through
//! `scripts/test`, or by hand with `scripts/galera -- COMMAND`).
//!
//! The cluster comes from the environment:
//! - `FIELDSEAL_TEST_GALERA_URLS`: the nodes' server URLs, comma-separated,
//!   node 1 first (`mysql://root@127.0.0.1:PORT,...`).
//! - `FIELDSEAL_TEST_GALERA_DIR`: set only for a throwaway cluster. It holds
//!   `node1`, `node2`, ..., each with a `pid` file, an executable `start`
//!   script and the error log `server.log`: [`Cluster::kill_node`] and
//!   [`Cluster::restart_node`] use them.
//!
//! Without the URLs, or when a node does not answer, a test is skipped
//! with a note, unless `FIELDSEAL_REQUIRE_SERVERS=1` or `CI=true`: then it
//! fails. Without the directory, only the tests that kill nodes skip (see
//! [`Cluster::from_env_restartable`]).
//!
//! The cluster is shared by all tests. A test that kills a node restarts
//! it before it ends, and must not run at the same time as other tests on
//! the cluster (put such tests in a nextest test group with
//! `max-threads = 1`). Kill one node at a time: with two of three down,
//! the last loses quorum and the cluster does not recover by itself.
//!
//! Galera certifies a commit on every node before it returns, but applies
//! it on the other nodes a moment later: to read a write on another node,
//! run `SET SESSION wsrep_sync_wait = 1` on that connection first.
//!
//! Nodes are numbered from 0 here: node `i` is `node_urls()[i]`, in the
//! directory `node{i + 1}`.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`Cluster::wait_synced`] (and so [`Cluster::restart_node`])
/// waits for a node to be Synced: a rejoin by state transfer on a busy
/// machine takes a while.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(180);

/// How long [`Cluster::kill_node`] waits for the killed process to be gone,
/// and [`Cluster::create_database`] for the database to reach every node.
const SHORT_TIMEOUT: Duration = Duration::from_secs(30);

const POLL: Duration = Duration::from_millis(250);

/// A running Galera cluster, as described by the environment.
#[derive(Debug, Clone)]
pub struct Cluster {
    urls: Vec<String>,
    dir: Option<PathBuf>,
}

/// A node's replication state, from its `wsrep_%` status variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// `wsrep_ready`: the node accepts queries.
    pub ready: bool,
    /// `wsrep_cluster_size`: the number of nodes in its component.
    pub cluster_size: usize,
    /// `wsrep_cluster_status`: `Primary` when its component has quorum.
    pub cluster_status: String,
    /// `wsrep_local_state_comment`: `Synced`, `Joining`, `Joined`,
    /// `Donor/Desynced`...
    pub state: String,
}

impl NodeStatus {
    /// Ready, Synced, and in the primary component of `size` nodes.
    pub fn is_synced(&self, size: usize) -> bool {
        self.ready
            && self.cluster_size == size
            && self.cluster_status == "Primary"
            && self.state == "Synced"
    }
}

/// A database that exists on the whole cluster for one test and is
/// dropped with it.
pub struct ClusterDb {
    urls: Vec<String>,
    servers: Vec<String>,
    name: String,
}

/// A row of SHOW STATUS or SHOW VARIABLES.
#[derive(QueryableByName)]
struct StatusRow {
    #[diesel(sql_type = Text, column_name = Variable_name)]
    name: String,
    #[diesel(sql_type = Text, column_name = Value)]
    value: String,
}

fn skip_or_fail<T>(msg: &str) -> Option<T> {
    if super::required() {
        panic!("{msg} (required because CI=true or FIELDSEAL_REQUIRE_SERVERS=1)");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Retry `f` every [`POLL`] until it gives `Some`, or `None` after `timeout`.
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// True while the process exists and is not a zombie (the nodes are
/// detached, so init reaps them, maybe a little later).
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) if Path::new("/proc/self/stat").exists() => false,
        Err(_) => Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

/// Whether the server at `url` replicates with Galera (`wsrep_on`). SHOW,
/// unlike SELECT, works while a node is still joining.
fn wsrep_on(url: &str) -> Result<bool, String> {
    let mut conn = MysqlConnection::establish(url).map_err(|e| e.to_string())?;
    let rows: Vec<StatusRow> = diesel::sql_query("SHOW GLOBAL VARIABLES LIKE 'wsrep\\_on'")
        .load(&mut conn)
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().any(|r| r.value == "ON"))
}

/// The last `lines` lines of a file, or a note why there are none.
fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

impl Cluster {
    /// The cluster in `FIELDSEAL_TEST_GALERA_URLS`, once every node answers
    /// and is Synced; `None` (the test skips) when the variable is unset or
    /// a node does not answer. Panics instead when servers are required
    /// (`CI=true`, `FIELDSEAL_REQUIRE_SERVERS=1`), and when a node answers
    /// but does not become Synced within [`SYNC_TIMEOUT`].
    pub fn from_env() -> Option<Cluster> {
        let Some(list) = std::env::var("FIELDSEAL_TEST_GALERA_URLS")
            .ok()
            .filter(|v| !v.trim().is_empty())
        else {
            return skip_or_fail(
                "no Galera cluster: FIELDSEAL_TEST_GALERA_URLS is not set \
                 (scripts/test and scripts/galera set it)",
            );
        };
        let urls: Vec<String> = list
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        for url in &urls {
            match wsrep_on(url) {
                Ok(true) => {}
                Ok(false) => panic!(
                    "{url} in FIELDSEAL_TEST_GALERA_URLS is not a Galera node: wsrep_on is OFF"
                ),
                Err(e) => {
                    return skip_or_fail(&format!("Galera node at {url} is unreachable: {e}"))
                }
            }
        }
        let dir = std::env::var_os("FIELDSEAL_TEST_GALERA_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        let cluster = Cluster { urls, dir };
        for i in 0..cluster.urls.len() {
            cluster.wait_synced(i);
        }
        Some(cluster)
    }

    /// Like [`Cluster::from_env`], for tests that kill and restart nodes:
    /// also `None` when `FIELDSEAL_TEST_GALERA_DIR` is unset (a cluster not
    /// started by `scripts/lib-galera.sh`), with a note, even in CI.
    pub fn from_env_restartable() -> Option<Cluster> {
        let cluster = Cluster::from_env()?;
        if !cluster.can_restart() {
            eprintln!(
                "SKIPPED: FIELDSEAL_TEST_GALERA_DIR is not set, so the Galera nodes \
                 cannot be killed and restarted"
            );
            return None;
        }
        Some(cluster)
    }

    /// True when nodes can be killed and restarted
    /// (`FIELDSEAL_TEST_GALERA_DIR` is set).
    pub fn can_restart(&self) -> bool {
        self.dir.is_some()
    }

    /// The nodes' server URLs (no database), node 0 first.
    pub fn node_urls(&self) -> &[String] {
        &self.urls
    }

    /// Create a uniquely named database (utf8mb4, binary collation) through
    /// node 0 and wait until every node has it. It is dropped with the
    /// returned [`ClusterDb`]. All nodes must be up.
    pub fn create_database(&self) -> ClusterDb {
        let name = super::unique_name();
        let mut admin = MysqlConnection::establish(&self.urls[0])
            .unwrap_or_else(|e| panic!("connect to Galera node 0 at {}: {e}", self.urls[0]));
        admin
            .batch_execute(&format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            ))
            .expect("create Galera test database");
        let urls: Vec<String> = self.urls.iter().map(|u| format!("{u}/{name}")).collect();
        // Every node runs the DDL in the same order, the others just after
        // node 0 returns.
        for (i, url) in urls.iter().enumerate() {
            let mut last = String::new();
            let found = poll(SHORT_TIMEOUT, || match MysqlConnection::establish(url) {
                Ok(_) => Some(()),
                Err(e) => {
                    last = e.to_string();
                    None
                }
            });
            if found.is_none() {
                panic!(
                    "database {name} did not reach Galera node {i} within {} s: {last}",
                    SHORT_TIMEOUT.as_secs()
                );
            }
        }
        ClusterDb {
            urls,
            servers: self.urls.clone(),
            name,
        }
    }

    /// Node `i`'s replication state, or why it could not be read (the node
    /// is down, or still starting).
    pub fn node_status(&self, i: usize) -> Result<NodeStatus, String> {
        let url = &self.urls[i];
        let mut conn = MysqlConnection::establish(url).map_err(|e| e.to_string())?;
        let rows: Vec<StatusRow> = diesel::sql_query(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', \
             'wsrep_cluster_size', 'wsrep_cluster_status', 'wsrep_local_state_comment')",
        )
        .load(&mut conn)
        .map_err(|e| e.to_string())?;
        let value = |name: &str| {
            rows.iter()
                .find(|r| r.name.eq_ignore_ascii_case(name))
                .map(|r| r.value.clone())
                .unwrap_or_default()
        };
        Ok(NodeStatus {
            ready: value("wsrep_ready") == "ON",
            cluster_size: value("wsrep_cluster_size").parse().unwrap_or(0),
            cluster_status: value("wsrep_cluster_status"),
            state: value("wsrep_local_state_comment"),
        })
    }

    /// Wait until node `i` is ready, Synced, and in the primary component
    /// of all the nodes. Panics after [`SYNC_TIMEOUT`], or as soon as its
    /// process is gone (when `FIELDSEAL_TEST_GALERA_DIR` tells where its pid
    /// is), showing the end of its error log.
    pub fn wait_synced(&self, i: usize) {
        let size = self.urls.len();
        let deadline = Instant::now() + SYNC_TIMEOUT;
        loop {
            let last = match self.node_status(i) {
                Ok(status) if status.is_synced(size) => return,
                Ok(status) => format!("{status:?}"),
                Err(e) => e,
            };
            if let Some(pid) = self.pid(i).filter(|&pid| !pid_alive(pid)) {
                panic!(
                    "Galera node {i} ({}) is not running (pid {pid}): {last}{}",
                    self.urls[i],
                    self.log_tail(i)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "Galera node {i} ({}) not Synced in a cluster of {size} within {} s: {last}{}",
                    self.urls[i],
                    SYNC_TIMEOUT.as_secs(),
                    self.log_tail(i)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Crash node `i`: SIGKILL to its mariadbd, then wait until the process
    /// is gone. The other nodes notice some seconds later (Galera's suspect
    /// timeout, 5 s); until then, writes on them wait. Needs
    /// `FIELDSEAL_TEST_GALERA_DIR`.
    pub fn kill_node(&self, i: usize) {
        let pid = self.pid(i).unwrap_or_else(|| {
            panic!(
                "no pid for Galera node {i} in {}",
                self.node_dir(i).join("pid").display()
            )
        });
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -KILL {pid} (Galera node {i}) failed: {status}"
        );
        if poll(SHORT_TIMEOUT, || (!pid_alive(pid)).then_some(())).is_none() {
            panic!(
                "Galera node {i} (pid {pid}) still running {} s after SIGKILL",
                SHORT_TIMEOUT.as_secs()
            );
        }
    }

    /// Start node `i` again after [`Cluster::kill_node`] (or a shutdown)
    /// with its `start` script, which recovers the node's position with
    /// `mariadbd --wsrep-recover` after a crash, then wait until the node
    /// is Synced in the full cluster ([`Cluster::wait_synced`]). Needs
    /// `FIELDSEAL_TEST_GALERA_DIR`.
    pub fn restart_node(&self, i: usize) {
        let start = self.node_dir(i).join("start");
        let out = Command::new(&start)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", start.display()));
        assert!(
            out.status.success(),
            "{} failed ({}): {}{}",
            start.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end(),
            self.log_tail(i)
        );
        self.wait_synced(i);
    }

    /// Node `i`'s directory. Panics without `FIELDSEAL_TEST_GALERA_DIR`.
    fn node_dir(&self, i: usize) -> PathBuf {
        assert!(
            i < self.urls.len(),
            "no Galera node {i}: the cluster has {}",
            self.urls.len()
        );
        let dir = self.dir.as_ref().expect(
            "FIELDSEAL_TEST_GALERA_DIR is not set: get the cluster from \
             Cluster::from_env_restartable to kill and restart nodes",
        );
        dir.join(format!("node{}", i + 1))
    }

    /// The pid in node `i`'s pid file, if the directory is known and the
    /// file is there.
    fn pid(&self, i: usize) -> Option<u32> {
        self.dir.as_ref()?;
        std::fs::read_to_string(self.node_dir(i).join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The end of node `i`'s error log, for panic messages (empty when the
    /// directory is unknown).
    fn log_tail(&self, i: usize) -> String {
        if self.dir.is_none() {
            return String::new();
        }
        let log = self.node_dir(i).join("server.log");
        format!("\n--- {} (end) ---\n{}", log.display(), tail(&log, 30))
    }
}

impl ClusterDb {
    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL on each node, node 0 first.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The database's URL on node `i`.
    pub fn url(&self, i: usize) -> &str {
        &self.urls[i]
    }
}

impl Drop for ClusterDb {
    /// Drop the database through the first node that does it (the DDL
    /// replicates to the others).
    fn drop(&mut self) {
        let mut errors = Vec::new();
        for server in &self.servers {
            let result = MysqlConnection::establish(server)
                .map_err(|e| e.to_string())
                .and_then(|mut c| {
                    c.batch_execute(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
                        .map_err(|e| e.to_string())
                });
            match result {
                Ok(()) => return,
                Err(e) => errors.push(format!("{server}: {e}")),
            }
        }
        eprintln!(
            "could not drop Galera test database {}: {}",
            self.name,
            errors.join("; ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::BigInt;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// Rows of `t` as node `i` sees them, after it applied all writes.
    fn count(db: &ClusterDb, i: usize) -> i64 {
        let mut conn = MysqlConnection::establish(db.url(i)).unwrap();
        conn.batch_execute("SET SESSION wsrep_sync_wait = 1")
            .unwrap();
        diesel::sql_query("SELECT COUNT(*) AS n FROM t")
            .get_result::<Count>(&mut conn)
            .unwrap()
            .n
    }

    /// The harness against a real cluster: a write on one node read on
    /// another, then crashes and rejoins, of the last node and of node 0
    /// (the one that bootstrapped the cluster). It kills nodes that other
    /// tests use, so it runs only on request, alone:
    /// `scripts/galera -- cargo test -p fieldseal-testdb --lib -- --ignored`
    #[test]
    #[ignore = "kills cluster nodes: run alone under scripts/galera"]
    fn nodes_crash_and_rejoin() {
        let Some(cluster) = Cluster::from_env_restartable() else {
            return;
        };
        let last = cluster.node_urls().len() - 1;
        let db = cluster.create_database();
        let mut writer = MysqlConnection::establish(db.url(1)).unwrap();
        writer
            .batch_execute(
                "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT);
                 INSERT INTO t (v) VALUES ('a'), ('b');",
            )
            .unwrap();
        assert_eq!(count(&db, last), 2);

        for node in [last, 0] {
            cluster.kill_node(node);
            // Written while the node is down: it gets this by IST.
            writer
                .batch_execute("INSERT INTO t (v) VALUES ('c')")
                .unwrap();
            // The others notice the crash after their suspect timeout.
            let survivor = if node == 0 { 1 } else { 0 };
            let noticed = poll(SHORT_TIMEOUT, || {
                let size = cluster.node_status(survivor).ok()?.cluster_size;
                (size == last).then_some(())
            });
            assert!(
                noticed.is_some(),
                "node {survivor} did not notice the crash"
            );
            cluster.restart_node(node);
            for i in 0..=last {
                assert_eq!(cluster.node_status(i).unwrap().cluster_size, last + 1);
            }
            assert_eq!(count(&db, node), 3 + i64::from(node == 0));
        }
    }
}
