//! fieldseal on a MariaDB Galera cluster: three nodes on 127.0.0.1 that
//! all accept writes and certify every commit against the others (see
//! `crates/testdb/src/galera.rs`; `scripts/test` starts the cluster). A
//! conflict between nodes reaches the loser at commit as error 1213, and
//! must be retried, never shown; no interleaving may lose a write or leave
//! a keyring that no master key opens.

use crate::cli::{stderr, PASS};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use fieldseal::{KdfParams, KeyStore, MasterSecret, Passphrase};
use fieldseal_testdb::galera::{Cluster, ClusterDb};
use std::process::{Child, Command, Output, Stdio};

fn pass(text: &str) -> MasterSecret {
    MasterSecret::Passphrase(Passphrase::new(text.to_owned()))
}

/// The binary against node `node` of the cluster database.
fn tool(db: &ClusterDb, node: usize, dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fieldseal"));
    cmd.args(args)
        .current_dir(dir)
        .env("DATABASE_URL", db.url(node))
        .env("FIELDSEAL_PASSPHRASE", PASS)
        .env_remove("FIELDSEAL_MASTER_KEY")
        .env_remove("FIELDSEAL_KEY_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn spawn(mut cmd: Command) -> Child {
    cmd.spawn().expect("run fieldseal")
}

/// A connection to node `node` that sees every write certified anywhere.
fn synced(db: &ClusterDb, node: usize) -> MysqlConnection {
    let mut c = MysqlConnection::establish(db.url(node)).unwrap();
    c.batch_execute("SET SESSION wsrep_sync_wait = 1").unwrap();
    c
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(c: &mut MysqlConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(c).unwrap().n
}

fn write_csv(dir: &std::path::Path, name: &str, ids: impl Iterator<Item = u32>) -> String {
    let mut csv = String::from("name,email,age\n");
    for i in ids {
        csv.push_str(&format!("Person {i},p{i}@example.org,{}\n", i % 100));
    }
    std::fs::write(dir.join(name), csv).unwrap();
    name.to_owned()
}

/// The race that destroyed a key store: rotations on node 1 against
/// passphrase changes on node 2, round after round. Every write is a
/// compare-and-swap on a version that really changes, so the two always
/// conflict at certification and one retries.
#[test]
fn rotation_racing_a_passphrase_change_across_nodes_leaves_one_openable_keyring() {
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let db = cluster.create_database();
    let mut c0 = MysqlConnection::establish(db.url(0)).unwrap();
    KeyStore::install_schema(&mut c0).unwrap();
    let passes = [pass("first passphrase"), pass("second passphrase")];
    KeyStore::create(&mut c0, &passes[0], KdfParams::FLOOR).unwrap();
    const ROUNDS: usize = 40;
    let added = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let (passes, added) = (&passes, &added);
        // Causal reads, as the tool sets them: node 2 must see the keyring
        // node 1 just created.
        let mut c1 = synced(&db, 0);
        let mut c2 = synced(&db, 1);
        s.spawn(move || {
            for _ in 0..ROUNDS {
                for p in passes {
                    match KeyStore::add_data_key(&mut c1, p) {
                        Ok(ring) => {
                            added.lock().unwrap().push(ring.active_key_id());
                            break;
                        }
                        Err(fieldseal::Error::WrongMasterKey) => continue,
                        Err(e) => panic!("rotation failed: {e}"),
                    }
                }
            }
        });
        s.spawn(move || {
            for round in 0..ROUNDS {
                let (old, new) = (&passes[round % 2], &passes[(round + 1) % 2]);
                KeyStore::change_master(&mut c2, old, new, KdfParams::FLOOR)
                    .unwrap_or_else(|e| panic!("passphrase change {round} failed: {e}"));
            }
        });
    });
    // Read on the third node, after every write there is applied.
    let mut c3 = synced(&db, 2);
    let opened: Vec<_> = passes
        .iter()
        .filter_map(|p| KeyStore::unlock(&mut c3, p).ok())
        .collect();
    assert_eq!(opened.len(), 1, "exactly one passphrase opens the keyring");
    let ring = &opened[0];
    let added = added.into_inner().unwrap();
    for id in &added {
        assert!(
            ring.has_key(*id),
            "data key {id} a rotation reported is there"
        );
    }
    assert_eq!(ring.key_ids().count(), added.len() + 1);
}

/// A rotation on node 1 while records are updated on node 2: every
/// update survives (the rotation's compare-and-swap leaves rows a writer
/// changed), and no certification conflict reaches anyone.
#[test]
fn updates_on_one_node_survive_a_rotation_on_another() {
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let db = cluster.create_database();
    let dir = tempfile::tempdir().unwrap();
    let seed = write_csv(dir.path(), "seed.csv", 1..=3000);
    ok(tool(&db, 0, dir.path(), &["import", &seed])
        .output()
        .unwrap());
    // Ids have gaps on a cluster (each node hands out every third one):
    // update 30 that exist.
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let ids: Vec<Id> = diesel::sql_query("SELECT id FROM users ORDER BY id")
        .load(&mut synced(&db, 1))
        .unwrap();
    let updated: Vec<i64> = ids.iter().step_by(100).map(|r| r.id).collect();
    assert_eq!(updated.len(), 30);
    let rotation = spawn(tool(
        &db,
        0,
        dir.path(),
        &["keys", "rotate", "--batch-size", "100"],
    ));
    for id in &updated {
        ok(tool(
            &db,
            1,
            dir.path(),
            &["update", &id.to_string(), "--age", "150"],
        )
        .output()
        .unwrap());
    }
    ok(rotation.wait_with_output().unwrap());
    let mut c = synced(&db, 2);
    assert_eq!(
        count(&mut c, "SELECT COUNT(*) AS n FROM users WHERE age = 150"),
        30
    );
    let list = ok(tool(&db, 2, dir.path(), &["list", "--format", "csv"])
        .output()
        .unwrap());
    assert_eq!(list.lines().count(), 3001, "every row opens on node 3");
    for id in updated {
        let line = list
            .lines()
            .find(|l| l.starts_with(&format!("{id},")))
            .unwrap_or_else(|| panic!("row {id} listed"));
        assert!(line.contains(",150,"), "update of {id} survived: {line}");
    }
}

/// Two importers on two nodes whose files share emails, in opposite
/// orders: certification conflicts are retried, both finish, and each
/// email is stored exactly once.
#[test]
fn overlapping_importers_on_two_nodes_store_each_email_once() {
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let db = cluster.create_database();
    let dir = tempfile::tempdir().unwrap();
    let a = write_csv(dir.path(), "a.csv", 0..2000);
    let b = write_csv(dir.path(), "b.csv", (1000..3000).rev());
    ok(tool(&db, 0, dir.path(), &["list"]).output().unwrap());
    let importers = [(0, &a), (1, &b)].map(|(node, file)| {
        spawn(tool(
            &db,
            node,
            dir.path(),
            &["import", file, "--batch-size", "500", "--on-error", "skip"],
        ))
    });
    for child in importers {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stderr(&out).contains("Deadlock"), "{}", stderr(&out));
    }
    let mut c = synced(&db, 2);
    assert_eq!(count(&mut c, "SELECT COUNT(*) AS n FROM users"), 3000);
    assert_eq!(
        count(&mut c, "SELECT COUNT(DISTINCT email_bidx) AS n FROM users"),
        3000
    );
}

/// Node 3 is killed while node 1 imports, and restarted: it rejoins and
/// holds exactly the rows node 1 holds.
#[test]
fn a_node_killed_during_an_import_rejoins_with_the_same_rows() {
    let Some(cluster) = Cluster::from_env_restartable() else {
        return;
    };
    let db = cluster.create_database();
    let dir = tempfile::tempdir().unwrap();
    let file = write_csv(dir.path(), "big.csv", 0..60_000);
    ok(tool(&db, 0, dir.path(), &["list"]).output().unwrap());
    let mut import = spawn(tool(&db, 0, dir.path(), &["import", &file]));
    // Kill node 3 once some batches are in.
    let mut c1 = MysqlConnection::establish(db.url(0)).unwrap();
    loop {
        if count(&mut c1, "SELECT COUNT(*) AS n FROM users") >= 5_000 {
            break;
        }
        if let Some(status) = import.try_wait().unwrap() {
            panic!("the import ended ({status}) before node 3 could be killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    cluster.kill_node(2);
    let out = import.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    cluster.restart_node(2);
    let mut c3 = synced(&db, 2);
    let checksum = |c: &mut MysqlConnection| {
        count(
            c,
            "SELECT COUNT(*) + COALESCE(SUM(CRC32(name) + CRC32(COALESCE(email, ''))), 0) AS n \
             FROM users",
        )
    };
    assert_eq!(count(&mut c3, "SELECT COUNT(*) AS n FROM users"), 60_000);
    assert_eq!(
        checksum(&mut c3),
        checksum(&mut c1),
        "node 3 holds node 1's rows"
    );
}

/// Three operators, one per node, add records with per-user keys at the
/// same time: every append to the audit trail certifies against the
/// others (the head row), the losers retry, and the trail is one intact
/// chain with every operation in it. A record forgotten through one node
/// is erased on all of them.
#[test]
fn writers_on_three_nodes_keep_one_audit_chain_and_forget_everywhere() {
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let db = cluster.create_database();
    let dir = tempfile::tempdir().unwrap();
    ok(tool(&db, 0, dir.path(), &["list"])
        .env("FIELDSEAL_PER_USER_KEYS", "1")
        .output()
        .unwrap());
    const EACH: usize = 8;
    std::thread::scope(|s| {
        for node in 0..3 {
            let (db, dir) = (&db, dir.path());
            s.spawn(move || {
                for i in 0..EACH {
                    let (name, email) =
                        (format!("N{node} P{i}"), format!("n{node}p{i}@example.org"));
                    let out = tool(
                        db,
                        node,
                        dir,
                        &["add", "--name", &name, "--email", &email, "--age", "30"],
                    )
                    .output()
                    .unwrap();
                    assert!(out.status.success(), "node {node}: {}", stderr(&out));
                    assert!(!stderr(&out).contains("Deadlock"), "{}", stderr(&out));
                }
            });
        }
    });
    let mut c = synced(&db, 2);
    assert_eq!(
        count(&mut c, "SELECT COUNT(*) AS n FROM users WHERE key_id = -1"),
        24
    );
    let verified = ok(tool(&db, 2, dir.path(), &["audit", "verify"])
        .output()
        .unwrap());
    assert!(verified.contains("intact: 25 entries"), "{verified}");
    let id = count(&mut c, "SELECT MIN(id) AS n FROM users").to_string();
    ok(tool(&db, 0, dir.path(), &["forget", &id, "--yes"])
        .output()
        .unwrap());
    let mut c = synced(&db, 1);
    assert_eq!(
        count(
            &mut c,
            "SELECT COUNT(*) AS n FROM fieldseal_record_keys WHERE wrapped IS NULL"
        ),
        1
    );
    assert_eq!(count(&mut c, "SELECT COUNT(*) AS n FROM users"), 23);
    let verified = ok(tool(&db, 1, dir.path(), &["audit", "verify"])
        .output()
        .unwrap());
    assert!(verified.contains("intact: 26 entries"), "{verified}");
}
