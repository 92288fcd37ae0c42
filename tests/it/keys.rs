//! Key lifecycle on SQLite and MariaDB: rotation under a concurrent writer,
//! kill -9 at random points and resume, passphrase change, status counts.

use crate::cli::{stderr, tool_tests, Tool, PASS};
use fieldseal::{MasterSecret, Passphrase};
use fieldseal_tool::app::records::{self, Changes};
use fieldseal_tool::app::rotate;
use fieldseal_tool::app::{keys, Session};
use fieldseal_tool::store::{users, Db, DbUrl};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::process::Stdio;

fn session(tool: &Tool, pass: &str) -> Session {
    let url = DbUrl::parse(Some(&tool.db.url)).unwrap();
    let db = keys::connect(&url).unwrap();
    keys::unlock(
        db,
        None,
        &MasterSecret::Passphrase(Passphrase::new(pass.into())),
        false,
    )
    .unwrap()
    .0
}

fn seed(tool: &Tool, rows: usize) {
    let mut csv = String::from("name,email,age\n");
    for i in 0..rows {
        let email = if i % 4 == 0 {
            String::new()
        } else {
            format!("k{i}@example.org")
        };
        csv.push_str(&format!("Person {i},{email},{}\n", i % 100));
    }
    std::fs::write(tool.path("seed.csv"), csv).unwrap();
    tool.ok(&["import", "seed.csv", "--batch-size", "5000"]);
}

/// Every row: decrypts, and both the key_id column and each ciphertext's
/// header name `key`.
fn assert_all_under(tool: &Tool, key: u32) -> usize {
    let mut s = session(tool, PASS);
    let rows = users::list(&mut s.db, false, None, 0).unwrap();
    for row in &rows {
        assert_eq!(row.key_id, i64::from(key), "row {} key_id", row.id);
        assert_eq!(row.name.key_id(), Some(key), "row {} name", row.id);
        if let Some(email) = &row.email {
            assert_eq!(email.key_id(), Some(key), "row {} email", row.id);
        }
        records::open(&s.keyring, &fieldseal::RecordKeys::new(), row.clone())
            .expect("every row decrypts");
    }
    rows.len()
}

tool_tests!(rotation_keeps_every_concurrent_update, |tool| {
    const ROWS: usize = 50_000;
    seed(&tool, ROWS);
    // The writer unlocked before the rotation: it still seals under key 1.
    let mut writer = session(&tool, PASS);
    let mut child = tool
        .cmd(PASS, &["keys", "rotate", "--batch-size", "500"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ids need not be contiguous (LOAD DATA reserves auto-increment ranges).
    let ids: Vec<i64> = users::list(&mut writer.db, false, None, 0)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids.len(), ROWS);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut expected: HashMap<i64, (String, i32)> = HashMap::new();
    let mut updates = 0;
    while child.try_wait().unwrap().is_none() || updates < 50 {
        let id = ids[rng.gen_range(0..ids.len())];
        let name = format!("Updated {id} #{updates}");
        let age = rng.gen_range(0..=150);
        let changes = Changes {
            name: Some(&name),
            email: None,
            age: Some(&age.to_string()),
        };
        records::update(&mut writer, id, &changes).unwrap();
        expected.insert(id, (name, age));
        updates += 1;
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The writer's session predates the new key: list and find still read
    // the rows the rotation re-encrypted (it loads the key store again).
    let listed = records::list(&mut writer, false, None, 0).unwrap();
    assert!(
        listed.iter().all(Result::is_ok),
        "a row did not open in the older session"
    );
    assert_eq!(
        records::find_by_email(&mut writer, "k3@example.org")
            .unwrap()
            .len(),
        1
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("New data key 2 is active"));

    // Updates made with the old keyring after the last pass are still
    // under key 1: running rotate again finishes them, creating no key.
    let out = tool.run(&["keys", "rotate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Finishing the rotation to data key 2")
            || stderr(&out).contains("New data key 3")
    );

    let mut s = session(&tool, PASS);
    let active = s.keyring.active_key_id();
    assert_eq!(assert_all_under(&tool, active), ROWS);
    for (id, (name, age)) in &expected {
        let record = records::get(&mut s, *id).unwrap();
        assert_eq!(
            (&record.name, record.age),
            (name, *age),
            "update of row {id} survived"
        );
    }
    assert!(updates >= 50);
});

tool_tests!(killed_rotations_resume_and_lose_nothing, |tool| {
    const ROWS: usize = 20_000;
    seed(&tool, ROWS);
    tool.ok(&["export", "before.csv"]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC0FFEE);
    for _ in 0..4 {
        let mut child = tool
            .cmd(PASS, &["keys", "rotate", "--batch-size", "200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(20..400)));
        let _ = child.kill(); // SIGKILL; it may have finished already
        child.wait().unwrap();
        // At every moment every row decrypts.
        tool.ok(&["export", "during.csv", "--force"]);
        assert_eq!(
            std::fs::read(tool.path("during.csv")).unwrap(),
            std::fs::read(tool.path("before.csv")).unwrap()
        );
    }
    tool.ok(&["keys", "rotate"]);
    let mut s = session(&tool, PASS);
    let active = s.keyring.active_key_id();
    assert!(active >= 2);
    assert_eq!(assert_all_under(&tool, active), ROWS);
    let status = rotate::status(&mut s).unwrap();
    for k in &status.data_keys {
        if k.id == active {
            assert_eq!((k.state.as_str(), k.rows), ("active", ROWS as i64));
        } else {
            assert_eq!((k.state.as_str(), k.rows), ("retired", 0), "key {}", k.id);
        }
    }
    tool.ok(&["export", "after.csv"]);
    assert_eq!(
        std::fs::read(tool.path("after.csv")).unwrap(),
        std::fs::read(tool.path("before.csv")).unwrap()
    );
});

tool_tests!(changed_passphrase_rewraps_and_touches_no_row, |tool| {
    seed(&tool, 300);
    let before = tool.raw_rows();
    let new_pass = "a brand new passphrase";
    let out = tool
        .cmd(PASS, &["keys", "change-passphrase"])
        .env("FIELDSEAL_NEW_PASSPHRASE", new_pass)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tool.raw_rows(), before, "no row was touched");

    let old = tool.run(&["list"]);
    assert_eq!(old.status.code(), Some(1));
    assert!(
        stderr(&old).contains("wrong passphrase"),
        "{}",
        stderr(&old)
    );
    let new = tool.run_with(new_pass, &["list", "--format", "csv"]);
    assert!(new.status.success(), "{}", stderr(&new));
    assert_eq!(String::from_utf8(new.stdout).unwrap().lines().count(), 301);

    // A wrong current passphrase changes nothing.
    let out = tool
        .cmd("not it at all", &["keys", "change-passphrase"])
        .env("FIELDSEAL_NEW_PASSPHRASE", "yet another one")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(tool.run_with(new_pass, &["list"]).status.success());

    // And on to a master key from the environment.
    let key = fieldseal::SecretKey::generate();
    let out = tool
        .cmd(new_pass, &["keys", "change-passphrase"])
        .env("FIELDSEAL_NEW_MASTER_KEY", key.to_base64().as_str())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let by_key = tool
        .cmd("", &["list"])
        .env_remove("FIELDSEAL_PASSPHRASE")
        .env("FIELDSEAL_MASTER_KEY", key.to_base64().as_str())
        .output()
        .unwrap();
    assert!(by_key.status.success(), "{}", stderr(&by_key));
});

tool_tests!(status_counts_match_the_table, |tool| {
    seed(&tool, 1000); // every fourth row has no email: 750 emails
    let mut s = session(&tool, PASS);
    let status = rotate::status(&mut s).unwrap();
    assert_eq!(status.data_keys.len(), 1);
    let k = &status.data_keys[0];
    assert_eq!(
        (k.id, k.state.as_str(), k.rows, k.values),
        (1, "active", 1000, 1750)
    );
    assert_eq!(status.index_version, Some(1));
    assert_eq!(status.orphan_rows, 0);

    let shown = tool.ok(&["keys", "status"]);
    assert!(
        shown.contains("active") && shown.contains("1750"),
        "{shown}"
    );
    assert!(shown.contains("Blind-index key: version 1"), "{shown}");

    tool.ok(&["keys", "rotate"]);
    let status = rotate::status(&mut s).unwrap();
    let lines: Vec<_> = status
        .data_keys
        .iter()
        .map(|k| (k.id, k.state.clone(), k.rows, k.values))
        .collect();
    assert_eq!(
        lines,
        [
            (1, "retired".to_string(), 0, 0),
            (2, "active".to_string(), 1000, 1750)
        ]
    );
    let _ = Db::connect(&DbUrl::parse(Some(&tool.db.url)).unwrap()).unwrap();
});

tool_tests!(index_rotation_keeps_lookups_and_uniqueness, |tool| {
    seed(&tool, 2000);
    let pass = MasterSecret::Passphrase(Passphrase::new(PASS.into()));
    // An interrupted index rotation: version 2 exists, no row moved yet.
    let mut s = session(&tool, PASS);
    match &mut s.db {
        Db::Mysql(c) => fieldseal::KeyStore::add_index_key(c, &pass).map(drop),
        Db::Sqlite(c) => fieldseal::KeyStore::add_index_key(c, &pass).map(drop),
    }
    .unwrap();

    // Lookups consult both versions: rows still indexed under 1 are found.
    assert!(tool
        .ok(&["find", "--email", "K1@example.org", "--format", "csv"])
        .contains("Person 1,"));
    assert!(tool
        .ok(&["find", "--name", "person 8", "--format", "csv"])
        .contains("Person 8,"));
    // A duplicate cannot slip in under the new version.
    let dup = tool.run(&[
        "add",
        "--name",
        "Dup",
        "--age",
        "1",
        "--email",
        "k1@EXAMPLE.org",
    ]);
    assert_eq!(dup.status.code(), Some(2), "{}", stderr(&dup));
    assert!(stderr(&dup).contains("already used"), "{}", stderr(&dup));
    // A new record is indexed under version 2 and found.
    tool.ok(&[
        "add",
        "--name",
        "New Under Two",
        "--age",
        "3",
        "--email",
        "two@example.org",
    ]);
    assert!(tool
        .ok(&["find", "--email", "two@example.org"])
        .contains("New Under Two"));
    // Imports wait for the rotation to finish.
    std::fs::write(
        tool.path("more.csv"),
        "name,email,age\nLate,k1@example.org,4\n",
    )
    .unwrap();
    let import = tool.run(&["import", "more.csv"]);
    assert_eq!(import.status.code(), Some(1));
    assert!(
        stderr(&import).contains("rotation is under way"),
        "{}",
        stderr(&import)
    );

    // Finishing: no version 3, every row moves to 2, version 1 retires,
    // and only that: no new data key, no row re-encrypted.
    let out = tool.run(&["keys", "rotate", "--index"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("New data key") && !stderr(&out).contains("Re-encrypted"),
        "{}",
        stderr(&out)
    );
    assert!(tool
        .ok(&["keys", "status"])
        .contains("Blind-index key: version 2."));
    assert_eq!(
        users::count_not_under(&mut s.db, 1).unwrap(),
        0,
        "every row is still under data key 1"
    );
    assert!(
        stderr(&out).contains("Finishing the rotation to blind-index key version 2"),
        "{}",
        stderr(&out)
    );
    assert_eq!(users::count_not_indexed_under(&mut s.db, 2).unwrap(), 0);
    assert!(tool
        .ok(&["keys", "status"])
        .contains("Blind-index key: version 2"));
    assert!(tool
        .ok(&["find", "--email", "k1@example.org"])
        .contains("Person 1"));
    assert!(tool
        .ok(&["find", "--name", "PERSON 1999"])
        .contains("Person 1999"));
    let dup = tool.run(&[
        "add",
        "--name",
        "Dup",
        "--age",
        "1",
        "--email",
        "K1@example.org",
    ]);
    assert_eq!(dup.status.code(), Some(2));
    // Now the import goes in, and its duplicate is caught.
    let import = tool.run(&["import", "more.csv", "--on-error", "skip"]);
    assert!(import.status.success(), "{}", stderr(&import));
    assert!(
        stderr(&import).contains("email is already used"),
        "{}",
        stderr(&import)
    );

    // Running it again starts a new rotation, to version 3.
    let out = tool.run(&["keys", "rotate", "--index"]);
    assert!(
        stderr(&out).contains("New blind-index key version 3"),
        "{}",
        stderr(&out)
    );
    assert!(tool
        .ok(&["find", "--email", "two@example.org"])
        .contains("New Under Two"));
});

/// The tool's key-store migrations are the library's DDL, byte for byte
/// and in order: a database the tool created opens with the library
/// alone, and the reverse.
#[test]
fn keyring_migrations_are_the_library_schema() {
    use fieldseal::{schema_sql, SqlDialect};
    let root = env!("CARGO_MANIFEST_DIR");
    for (dir, dialect) in [
        ("mysql", SqlDialect::Mysql),
        ("sqlite", SqlDialect::Sqlite),
        ("postgres", SqlDialect::Postgres),
    ] {
        let migrations: String = [
            "2026-11-23-000001_keyring",
            "2026-11-30-000005_keystore_integrity",
            "2026-11-30-000007_record_keys",
        ]
        .iter()
        .map(|m| std::fs::read_to_string(format!("{root}/migrations/{dir}/{m}/up.sql")).unwrap())
        .collect();
        assert_eq!(migrations, schema_sql(dialect), "{dir}");
    }
}
