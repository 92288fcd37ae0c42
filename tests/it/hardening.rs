//! The security review's and the concurrency runs' findings, each
//! reproduced against the real tool on SQLite and MariaDB: weak secrets,
//! KDF bounds, `.env`, lost updates, stale index keys, concurrent SQLite
//! writers, concurrent rotations, unauthenticated key ids, rejects and
//! database file modes.

use crate::cli::{stderr, tool_tests, Tool, PASS};
use crate::support::TestDb;
use diesel::connection::SimpleConnection;
use fieldseal::{MasterSecret, Passphrase};
use fieldseal_tool::app::records::{self, Changes};
use fieldseal_tool::app::{keys, rotate, RecordInput, Session};
use fieldseal_tool::store::{users, Db, DbUrl};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

fn session(tool: &Tool) -> Session {
    let url = DbUrl::parse(Some(&tool.db.url)).unwrap();
    let db = keys::connect(&url).unwrap();
    keys::unlock(
        db,
        None,
        &MasterSecret::Passphrase(Passphrase::new(PASS.into())),
        false,
    )
    .unwrap()
    .0
}

fn sql(tool: &Tool, statements: &str) {
    let url = DbUrl::parse(Some(&tool.db.url)).unwrap();
    match Db::connect(&url).unwrap() {
        Db::Mysql(mut c) => c.batch_execute(statements).unwrap(),
        Db::Sqlite(mut c) => c.batch_execute(statements).unwrap(),
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

tool_tests!(a_weak_passphrase_creates_nothing, |tool| {
    for weak in ["", "   ", "1234567"] {
        let out = tool.run_with(weak, &["add", "--name", "Ada", "--age", "36"]);
        assert_eq!(out.status.code(), Some(2), "{weak:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("at least 8 characters"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    }
    if tool.db.backend == fieldseal_testdb::Backend::Sqlite {
        assert!(
            !std::path::Path::new(&tool.db.url).exists(),
            "no database file was created"
        );
    }
    tool.ok(&["add", "--name", "Ada", "--age", "36"]);
    // A weak new passphrase changes nothing either.
    let mut cmd = tool.cmd(PASS, &["keys", "change-passphrase"]);
    let out = cmd
        .env("FIELDSEAL_NEW_PASSPHRASE", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("FIELDSEAL_NEW_PASSPHRASE"),
        "{}",
        stderr(&out)
    );
    tool.ok(&["list"]);
});

tool_tests!(
    kdf_cost_is_shown_and_absurd_stored_costs_are_one_sentence,
    |tool| {
        tool.ok(&["add", "--name", "Ada", "--age", "36"]);
        let status = tool.ok(&["keys", "status"]);
        assert!(
            status.contains("Argon2id, 64 MiB, 3 iterations"),
            "{status}"
        );
        sql(
            &tool,
            "UPDATE fieldseal_keyring SET kdf_m_cost = 2000000000",
        );
        let out = tool.run(&["list"]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains("memory (KiB) is 2000000000"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
);

#[test]
fn dotenv_is_read_from_the_working_directory_only_and_never_echoed() {
    let tool = Tool::new(TestDb::sqlite());
    let cwd = tool.path("work");
    std::fs::create_dir(&cwd).unwrap();
    // A planted .env one directory up is ignored.
    std::fs::write(tool.path(".env"), "DATABASE_URL=planted.db\n").unwrap();
    let mut cmd = tool.cmd(PASS, &["add", "--name", "Ada", "--age", "36"]);
    let out = cmd
        .current_dir(&cwd)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cwd.join("fieldseal.db").exists());
    assert!(!tool.path("planted.db").exists() && !cwd.join("planted.db").exists());

    // A malformed line is named by its number, its text never shown.
    std::fs::write(
        cwd.join(".env"),
        "# keys\nFIELDSEAL_PASSPHRASE=hunter2 secret\" oops\n",
    )
    .unwrap();
    std::fs::set_permissions(cwd.join(".env"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = tool.cmd(PASS, &["list"]);
    let out = cmd
        .current_dir(&cwd)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(".env:2:"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    // A readable .env holding a secret gets a warning.
    std::fs::write(
        cwd.join(".env"),
        format!("FIELDSEAL_PASSPHRASE=\"{PASS}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(cwd.join(".env"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = tool.cmd(PASS, &["list"]);
    let out = cmd
        .current_dir(&cwd)
        .env_remove("DATABASE_URL")
        .env_remove("FIELDSEAL_PASSPHRASE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("chmod 600 .env"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(PASS));
}

// Another client changes a record while `update` runs between its read
// and its write: the other client's change survives, and the update
// applies only its own field.
tool_tests!(an_update_never_overwrites_a_concurrent_change, |tool| {
    tool.ok(&[
        "add",
        "--name",
        "Ada",
        "--age",
        "36",
        "--email",
        "ada@example.org",
    ]);
    let url = DbUrl::parse(Some(&tool.db.url)).unwrap();
    let mut other = Db::connect(&url).unwrap();
    // The other client clears the email inside a transaction it holds
    // open, so the tool reads the old row, then waits to write.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let begin = match &other {
            Db::Mysql(_) => "BEGIN",
            Db::Sqlite(_) => "BEGIN IMMEDIATE",
        };
        let stmts =
            format!("{begin}; UPDATE users SET email = NULL, email_bidx = NULL WHERE id = 1;");
        match &mut other {
            Db::Mysql(c) => c.batch_execute(&stmts).unwrap(),
            Db::Sqlite(c) => c.batch_execute(&stmts).unwrap(),
        }
        tx.send(()).unwrap();
        // Commit once the tool has read the row and is waiting to write.
        let _ = done_rx.recv_timeout(std::time::Duration::from_secs(2));
        match &mut other {
            Db::Mysql(c) => c.batch_execute("COMMIT").unwrap(),
            Db::Sqlite(c) => c.batch_execute("COMMIT").unwrap(),
        }
    });
    rx.recv().unwrap();
    let child = tool
        .cmd(PASS, &["update", "1", "--age", "41", "--format", "csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    done_tx.send(()).unwrap();
    let out = child.wait_with_output().unwrap();
    holder.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let list = tool.ok(&["list", "--format", "csv"]);
    assert!(
        list.contains(",Ada,,41,"),
        "email stays cleared, age is 41: {list}"
    );
});

// A prompt that stays open while another process rotates the blind-index
// key still finds existing records and still refuses a duplicate email.
tool_tests!(an_open_session_follows_an_index_key_rotation, |tool| {
    tool.ok(&[
        "add",
        "--name",
        "Ada",
        "--age",
        "36",
        "--email",
        "ada@example.org",
    ]);
    let mut open = session(&tool);
    assert_eq!(
        records::find_by_email(&mut open, "ada@example.org")
            .unwrap()
            .len(),
        1
    );
    tool.ok(&["keys", "rotate", "--index"]);
    tool.ok(&["keys", "rotate", "--index"]); // every row now under version 3
    assert_eq!(
        records::find_by_email(&mut open, "ADA@example.org")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(records::find_by_name(&mut open, "ada").unwrap().len(), 1);
    let dup = RecordInput::parse("Other", Some("ada@example.org"), "1").unwrap();
    let err = records::add(&mut open, &dup).unwrap_err();
    assert_eq!(err.field(), Some("email"), "{err}");
    assert_eq!(tool.raw_count(), 1);
});

/// Six processes adding at once to a fresh SQLite file: every add lands.
#[test]
fn concurrent_sqlite_writers_all_succeed() {
    let tool = Tool::new(TestDb::sqlite());
    let children: Vec<_> = (0..6)
        .map(|p| {
            let script = (0..15)
                .map(|i| format!("add --name \"P{p} R{i}\" --age {i} --email p{p}r{i}@example.org"))
                .collect::<Vec<_>>();
            let _ = script;
            let mut cmd = tool.cmd(PASS, &["import", &format!("p{p}.csv")]);
            let mut csv = String::from("name,email,age\n");
            for i in 0..15 {
                csv.push_str(&format!("P{p} R{i},p{p}r{i}@example.org,{i}\n"));
            }
            std::fs::write(tool.path(&format!("p{p}.csv")), csv).unwrap();
            cmd.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // And single adds from more processes at the same time.
    let adders: Vec<_> = (0..6)
        .map(|p| {
            tool.cmd(
                PASS,
                &["add", "--name", &format!("Adder {p}"), "--age", "1"],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children.into_iter().chain(adders) {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(tool.raw_count(), 6 * 15 + 6);
}

/// Updates while a rotation runs on SQLite: each waits instead of failing.
#[test]
fn sqlite_updates_during_a_rotation_succeed() {
    let tool = Tool::new(TestDb::sqlite());
    let mut csv = String::from("name,email,age\n");
    for i in 0..3000 {
        csv.push_str(&format!("Person {i},,{}\n", i % 100));
    }
    std::fs::write(tool.path("seed.csv"), csv).unwrap();
    tool.ok(&["import", "seed.csv"]);
    let rotation = tool
        .cmd(PASS, &["keys", "rotate", "--batch-size", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for id in 1..=10 {
        tool.ok(&["update", &(id * 250).to_string(), "--age", "150"]);
    }
    let out = rotation.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let list = tool.ok(&["list", "--format", "csv"]);
    assert_eq!(list.matches(",150,").count(), 10, "every update kept");
}

tool_tests!(a_second_rotation_is_refused_while_one_runs, |tool| {
    tool.ok(&["add", "--name", "Ada", "--age", "36"]);
    // A live rotation elsewhere: this test process, on this host.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    sql(
        &tool,
        &format!(
            "INSERT INTO fieldseal_locks (name, holder, host, pid, acquired_at, heartbeat_at) \
             VALUES ('key-rotation', X'01', '{}', {}, {now}, {now})",
            host.trim(),
            std::process::id()
        ),
    );
    let out = tool.run(&["keys", "rotate"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("another key rotation is running"), "{err}");
    assert!(
        err.contains(&format!("process {}", std::process::id())),
        "{err}"
    );
    // A rotation whose process is gone is taken over at once.
    sql(&tool, "UPDATE fieldseal_locks SET pid = 999999999");
    tool.ok(&["keys", "rotate"]);
    assert_eq!(tool.ok(&["keys", "status"]).matches("active").count(), 1);
});

// Rows whose `key_id` column claims the active key while their
// ciphertexts are under an older one are re-encrypted by the rotation,
// not left behind under a retired key.
tool_tests!(
    rotation_trusts_ciphertext_headers_not_the_key_id_column,
    |tool| {
        for i in 0..20 {
            tool.ok(&["add", "--name", &format!("P{i}"), "--age", "1"]);
        }
        // Step 1 of a rotation (a new active key), as if killed right after.
        let url = DbUrl::parse(Some(&tool.db.url)).unwrap();
        let pass = MasterSecret::Passphrase(Passphrase::new(PASS.into()));
        let mut db = Db::connect(&url).unwrap();
        fieldseal_tool::with_conn!(&mut db, |c| fieldseal::KeyStore::add_data_key(c, &pass))
            .unwrap();
        // Half the rows claim the new key 2 in the unauthenticated column.
        sql(&tool, "UPDATE users SET key_id = 2 WHERE id % 2 = 0");
        tool.ok(&["keys", "rotate"]);
        for (id, name, _, _, key_id) in tool.raw_rows() {
            assert_eq!(
                u32::from_be_bytes(name[1..5].try_into().unwrap()),
                2,
                "row {id}"
            );
            assert_eq!(key_id, 2, "row {id}");
        }
        assert_eq!(tool.ok(&["list", "--format", "csv"]).lines().count(), 21);
    }
);

tool_tests!(
    the_rejects_file_is_never_written_through_a_link_or_left_readable,
    |tool| {
        std::fs::write(tool.path("in.csv"), "name,email,age\nAda,,36\nBad,,999\n").unwrap();
        // Through a symlink: refused.
        std::fs::write(tool.path("target.txt"), "").unwrap();
        std::os::unix::fs::symlink(tool.path("target.txt"), tool.path("link.csv")).unwrap();
        let out = tool.run(&[
            "import",
            "in.csv",
            "--on-error",
            "skip",
            "--rejects",
            "link.csv",
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
        assert_eq!(
            std::fs::read_to_string(tool.path("target.txt")).unwrap(),
            ""
        );
        assert_eq!(tool.raw_count(), 0);
        // An existing file: refused without --force, replaced 0600 with it.
        std::fs::write(tool.path("rej.csv"), "old\n").unwrap();
        std::fs::set_permissions(tool.path("rej.csv"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let out = tool.run(&[
            "import",
            "in.csv",
            "--on-error",
            "skip",
            "--rejects",
            "rej.csv",
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
        tool.ok(&[
            "import",
            "in.csv",
            "--on-error",
            "skip",
            "--rejects",
            "rej.csv",
            "--force",
        ]);
        let rejects = std::fs::read_to_string(tool.path("rej.csv")).unwrap();
        assert!(
            rejects.contains("Bad") && !rejects.contains("old"),
            "{rejects}"
        );
        assert_eq!(mode(&tool.path("rej.csv")), 0o600);
    }
);

#[test]
fn a_new_sqlite_database_and_its_wal_are_private() {
    let tool = Tool::new(TestDb::sqlite());
    tool.ok(&["add", "--name", "Ada", "--age", "36"]);
    let db = std::path::PathBuf::from(&tool.db.url);
    assert_eq!(mode(&db), 0o600, "database file");
    // Keep a connection open so the -wal and -shm files exist to check.
    let url = DbUrl::parse(Some(&tool.db.url)).unwrap();
    let mut open = Db::connect(&url).unwrap();
    users::count(&mut open).unwrap();
    for suffix in ["-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", tool.db.url));
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{suffix}");
        }
    }
    let _ = records::count;
    let _ = rotate::status;
    let _ = Changes::default();
}

// Two importers at once whose files share half their emails: the unique
// index makes their batches deadlock or wait on each other; each batch is
// retried whole, both finish, and every email is stored exactly once.
tool_tests!(
    overlapping_importers_both_finish_and_store_each_email_once,
    |tool| {
        // One file ascending, the other descending through the shared half:
        // their batches take the same unique-index locks in opposite orders.
        let ascending: Vec<u32> = (0..2000).collect();
        let descending: Vec<u32> = (1000..3000).rev().collect();
        for (file, ids) in [("a.csv", ascending), ("b.csv", descending)] {
            let mut csv = String::from("name,email,age\n");
            for i in ids {
                csv.push_str(&format!("Person {file} {i},p{i}@example.org,{}\n", i % 100));
            }
            std::fs::write(tool.path(file), csv).unwrap();
        }
        tool.ok(&["list"]); // the schema and keyring first
        let importers: Vec<_> = ["a.csv", "b.csv"]
            .iter()
            .map(|file| {
                tool.cmd(
                    PASS,
                    &["import", file, "--batch-size", "2000", "--on-error", "skip"],
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        for child in importers {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            assert!(
                !stderr(&out).to_lowercase().contains("deadlock"),
                "{}",
                stderr(&out)
            );
        }
        assert_eq!(tool.raw_count(), 3000, "each of the 3,000 emails once");
    }
);

// A keyring made at the old, cheaper Argon2id cost still opens; keys
// status says so; change-passphrase moves it to the current default.
tool_tests!(change_passphrase_raises_an_old_keyring_s_kdf_cost, |tool| {
    let url = DbUrl::parse(Some(&tool.db.url)).unwrap();
    let pass = MasterSecret::Passphrase(Passphrase::new(PASS.into()));
    let mut db = Db::connect(&url).unwrap();
    fieldseal_tool::with_conn!(&mut db, |c| fieldseal::KeyStore::create(
        c,
        &pass,
        fieldseal::KdfParams::FLOOR
    ))
    .unwrap();
    drop(db);
    tool.ok(&["add", "--name", "Ada", "--age", "36"]);
    let status = tool.ok(&["keys", "status"]);
    assert!(
        status.contains("Argon2id, 19 MiB, 2 iterations"),
        "{status}"
    );
    assert!(status.contains("below the current default"), "{status}");
    let mut cmd = tool.cmd(PASS, &["keys", "change-passphrase"]);
    let out = cmd
        .env("FIELDSEAL_NEW_PASSPHRASE", "a new long passphrase")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let status = tool.ok_with("a new long passphrase", &["keys", "status"]);
    assert!(
        status.contains("Argon2id, 64 MiB, 3 iterations"),
        "{status}"
    );
    assert!(!status.contains("below the current default"), "{status}");
});

/// Item 8: LOAD DATA LOCAL serves the batch and nothing else. The server
/// names the file a LOCAL statement reads; the bulk connection answers
/// only the batch's own name, from memory, and never opens a file, while
/// the C client library behind Diesel sends whatever file is named.
#[test]
fn the_bulk_connection_serves_the_batch_and_no_file() {
    use fieldseal_tool::store::bulk::{BulkConn, BATCH_NAME};
    let Some(db) = TestDb::mysql() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("key.txt");
    std::fs::write(&secret, "not-for-the-server\n").unwrap();
    let secret = secret.display().to_string();
    let count = |c: &mut diesel::MysqlConnection| -> i64 {
        use diesel::RunQueryDsl;
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT COUNT(*) FROM loaded)",
        ))
        .get_result(c)
        .unwrap()
    };
    let url = DbUrl::parse(Some(&db.url)).unwrap();
    let Db::Mysql(mut main) = Db::connect(&url).unwrap() else {
        unreachable!()
    };
    main.batch_execute("CREATE TABLE loaded (line TEXT)")
        .unwrap();

    let mut bulk = BulkConn::connect(&db.url).unwrap();
    let err = bulk
        .execute(
            &format!("LOAD DATA LOCAL INFILE '{secret}' INTO TABLE loaded"),
            b"batch row\n".to_vec(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&secret) && err.contains("sent nothing"),
        "{err}"
    );
    assert_eq!(
        count(&mut main),
        0,
        "nothing of the file nor the batch went in"
    );
    let loaded = bulk
        .execute(
            &format!("LOAD DATA LOCAL INFILE '{BATCH_NAME}' INTO TABLE loaded"),
            b"row 1\nrow 2\n".to_vec(),
        )
        .unwrap();
    assert_eq!(loaded, 2);
    assert_eq!(count(&mut main), 2);

    // Why the bulk path has a connection of its own: Diesel's client
    // library sends the named file.
    main.batch_execute(&format!(
        "LOAD DATA LOCAL INFILE '{secret}' INTO TABLE loaded"
    ))
    .unwrap();
    assert_eq!(count(&mut main), 3, "libmariadb served the file");
}

tool_tests!(
    mysql_imports_load_data_by_default_and_sqlite_inserts,
    |tool| {
        use fieldseal_tool::app::import::{self, CsvRejects, ImportOptions};
        let path = tool.path("people.csv");
        std::fs::write(&path, "name,email,age\nAda,ada@example.org,36\nBo,,7\n").unwrap();
        let url = DbUrl::parse(Some(&tool.db.url)).unwrap();
        let mut session = session(&tool).with_url(url);
        let report = import::import(
            &mut session,
            &path,
            &ImportOptions::default(),
            &mut CsvRejects(std::io::sink(), false),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(report.inserted, 2);
        let mysql = tool.db.backend == fieldseal_testdb::Backend::Mysql;
        assert_eq!(report.bulk_loaded, mysql);
        assert_eq!(
            tool.ok(&["find", "--email", "ada@example.org"])
                .matches("Ada")
                .count(),
            1
        );
    }
);
