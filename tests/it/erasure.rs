//! Per-user keys, erasure that reaches backups, a key store apart from
//! the data, and the audit trail: the binary against SQLite and MariaDB.

use crate::cli::{stderr, tool_tests, Tool, PASS};
use crate::support::TestDb;
use fieldseal_tool::store::{Db, DbUrl};
use std::process::Output;

/// A second database of the tool's backend, for the key store.
fn keystore_db(tool: &Tool) -> TestDb {
    match tool.db.backend {
        fieldseal_testdb::Backend::Mysql => TestDb::mysql().expect("MySQL is up"),
        _ => TestDb::sqlite(),
    }
}

/// Runs the tool with its key store in `ks` (when given) and per-user keys
/// on or off.
fn run(tool: &Tool, ks: Option<&TestDb>, per_user: bool, args: &[&str]) -> Output {
    let mut cmd = tool.cmd(PASS, args);
    if let Some(ks) = ks {
        cmd.env("FIELDSEAL_KEYSTORE_URL", &ks.url);
    } else {
        cmd.env_remove("FIELDSEAL_KEYSTORE_URL");
    }
    cmd.env("FIELDSEAL_PER_USER_KEYS", if per_user { "1" } else { "0" });
    cmd.output().expect("run fieldseal")
}

fn ok(tool: &Tool, ks: Option<&TestDb>, per_user: bool, args: &[&str]) -> String {
    let out = run(tool, ks, per_user, args);
    assert!(
        out.status.success(),
        "fieldseal {args:?} failed ({}): {}",
        out.status,
        stderr(&out)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Runs SQL on a database and returns nothing.
fn exec(url: &str, sql: &str) {
    use diesel::connection::SimpleConnection;
    let mut db = Db::open(&DbUrl::parse(Some(url)).unwrap()).unwrap();
    fieldseal_tool::with_conn!(&mut db, |c| c.batch_execute(sql)).unwrap();
}

/// One BIGINT from a query.
fn scalar(url: &str, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        v: i64,
    }
    use diesel::RunQueryDsl;
    let mut db = Db::open(&DbUrl::parse(Some(url)).unwrap()).unwrap();
    fieldseal_tool::with_conn!(&mut db, |c| diesel::sql_query(sql).get_result::<V>(c))
        .unwrap()
        .v
}

fn add(tool: &Tool, ks: Option<&TestDb>, name: &str, email: &str) -> String {
    let out = ok(
        tool,
        ks,
        true,
        &[
            "add", "--name", name, "--email", email, "--age", "40", "--format", "csv",
        ],
    );
    out.lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned()
}

tool_tests!(
    a_forgotten_record_stays_erased_in_a_restored_backup,
    |tool| {
        let ks = keystore_db(&tool);
        let ada = add(&tool, Some(&ks), "Ada Lovelace", "ada@example.org");
        let bob = add(&tool, Some(&ks), "Bob Stone", "bob@example.org");
        let cy = add(&tool, Some(&ks), "Cy Twombly", "cy@example.org");
        // Last month's backup of the data: the key store is not in it.
        let backup = tool.db.backup();
        assert!(!String::from_utf8_lossy(&backup.bytes()).contains("Lovelace"));

        let out = ok(&tool, Some(&ks), true, &["forget", &ada, "--yes"]);
        assert!(out.is_empty());
        let listed = ok(&tool, Some(&ks), true, &["list", "--format", "csv"]);
        assert!(
            !listed.contains("Ada") && listed.contains("Bob Stone"),
            "{listed}"
        );
        assert_eq!(
            scalar(
                &ks.url,
                "SELECT COUNT(*) AS v FROM fieldseal_record_keys WHERE wrapped IS NULL"
            ),
            1
        );

        // The backup comes back, next to the live key store.
        tool.db.restore(&backup);
        let out = run(&tool, Some(&ks), true, &["list", "--format", "csv"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("record {ada} was erased")),
            "names the erased record: {err}"
        );
        let listed = String::from_utf8(out.stdout).unwrap();
        for (id, name) in [(&bob, "Bob Stone"), (&cy, "Cy Twombly")] {
            assert!(listed.contains(&format!("{id},{name},")), "{listed}");
        }
        assert!(!listed.contains("Ada"), "{listed}");
        // Every way of reading it says the same, with exit 1 and no panic.
        for args in [
            vec!["find", "--email", "ada@example.org"],
            vec!["update", ada.as_str(), "--age", "41"],
            vec!["export", "-"],
        ] {
            let out = run(&tool, Some(&ks), true, &args);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("erased"),
                "{args:?}: {}",
                stderr(&out)
            );
            assert!(!stderr(&out).contains("panicked"));
        }
        // Forgetting it again deletes the restored row.
        ok(&tool, Some(&ks), true, &["forget", &ada, "--yes"]);
        assert_eq!(tool.raw_count(), 2);
        let trail = ok(
            &tool,
            Some(&ks),
            true,
            &["audit", "--record", &ada, "--format", "csv"],
        );
        assert!(trail.contains(",forget,"), "{trail}");
    }
);

tool_tests!(keystore_placement_is_remembered, |tool| {
    let ks = keystore_db(&tool);
    add(&tool, Some(&ks), "Ada Lovelace", "ada@example.org");
    // Without FIELDSEAL_KEYSTORE_URL the tool refuses instead of making a
    // second keyring in the data's database.
    let out = run(&tool, None, false, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("kept in another database: set FIELDSEAL_KEYSTORE_URL"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        scalar(&tool.db.url, "SELECT COUNT(*) AS v FROM fieldseal_keys"),
        0
    );
    assert_eq!(
        scalar(&ks.url, "SELECT COUNT(*) AS v FROM fieldseal_keys"),
        3
    );
    // Per-user keys were chosen at creation: they stay on without the variable.
    let id = ok(
        &tool,
        Some(&ks),
        false,
        &["add", "--name", "Bea", "--age", "3", "--format", "csv"],
    );
    assert!(id.contains("Bea"));
    assert_eq!(
        scalar(
            &tool.db.url,
            "SELECT COUNT(*) AS v FROM users WHERE key_id = -1"
        ),
        2
    );
    let status = ok(&tool, Some(&ks), false, &["keys", "status"]);
    assert!(status.contains("Per-user keys: on"), "{status}");
});

tool_tests!(forget_without_own_keys_says_backups_still_hold_it, |tool| {
    let id = ok(
        &tool,
        None,
        false,
        &["add", "--name", "Dee", "--age", "50", "--format", "csv"],
    );
    let id = id
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let out = run(&tool, None, false, &["forget", &id, "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("backups taken before now still hold it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tool.raw_count(), 0);
    let out = run(&tool, None, false, &["forget", &id, "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("no record with id {id}")));
});

tool_tests!(
    per_user_rotation_rewraps_keys_and_leaves_rows_alone,
    |tool| {
        for i in 0..30 {
            let (name, email) = (format!("User {i}"), format!("u{i}@example.org"));
            ok(
                &tool,
                None,
                true,
                &["add", "--name", &name, "--email", &email, "--age", "9"],
            );
        }
        // One row from before per-user keys: a rotation re-encrypts it.
        let before = tool.raw_rows();
        assert!(before.iter().all(|r| r.1[0] == 2 && r.4 == -1));
        let out = ok(&tool, None, true, &["keys", "rotate"]);
        let _ = out;
        let after = tool.raw_rows();
        assert_eq!(before, after, "no row was rewritten");
        assert_eq!(
            scalar(
                &tool.db.url,
                "SELECT COUNT(*) AS v FROM fieldseal_record_keys WHERE wrapped IS NOT NULL"
            ),
            30
        );
        // Every wrap now names data key 2 in its header, and key 1 is retired.
        let mut db = Db::open(&DbUrl::parse(Some(&tool.db.url)).unwrap()).unwrap();
        let wrapping =
            fieldseal_tool::with_conn!(&mut db, |c| fieldseal::RecordKeys::wrapping_key_ids(c))
                .unwrap();
        assert_eq!(wrapping.into_iter().collect::<Vec<_>>(), [2]);
        let status = ok(&tool, None, true, &["keys", "status"]);
        assert!(status.contains("retired"), "{status}");
        let found = ok(
            &tool,
            None,
            true,
            &["find", "--email", "u17@example.org", "--format", "csv"],
        );
        assert!(found.contains("User 17"), "{found}");
        let listed = ok(&tool, None, true, &["list", "--format", "csv"]);
        assert_eq!(listed.lines().count(), 31);
        let trail = ok(&tool, None, true, &["audit", "--format", "json"]);
        let entries: serde_json::Value = serde_json::from_str(&trail).unwrap();
        let rotate = entries
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["operation"] == "rotate")
            .expect("a rotate entry");
        assert_eq!(rotate["count"], 30);
        assert!(rotate["detail"]
            .as_str()
            .unwrap()
            .contains("30 own keys re-wrapped"));
    }
);

tool_tests!(import_in_per_user_mode_gives_each_row_its_key, |tool| {
    let ks = keystore_db(&tool);
    let mut csv = String::from("name,email,age\n");
    for i in 0..2500 {
        csv.push_str(&format!("Person {i},p{i}@example.org,{}\n", i % 90));
    }
    csv.push_str("Again,p7@example.org,3\n");
    std::fs::write(tool.path("people.csv"), csv).unwrap();
    ok(&tool, Some(&ks), true, &["list"]);
    let before = scalar(&tool.db.url, "SELECT COUNT(*) AS v FROM fieldseal_audit");
    let out = run(
        &tool,
        Some(&ks),
        true,
        &[
            "import",
            "people.csv",
            "--on-error",
            "skip",
            "--batch-size",
            "1000",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // One audit entry for the whole run.
    assert_eq!(
        scalar(&tool.db.url, "SELECT COUNT(*) AS v FROM fieldseal_audit"),
        before + 1
    );
    assert_eq!(tool.raw_count(), 2500);
    let rows = tool.raw_rows();
    assert!(rows.iter().all(|r| r.1[0] == 2 && r.4 == -1));
    let mut refs: Vec<&[u8]> = rows.iter().map(|r| &r.1[1..9]).collect();
    refs.sort_unstable();
    refs.dedup();
    assert_eq!(refs.len(), 2500, "one key per record");
    assert_eq!(
        scalar(
            &ks.url,
            "SELECT COUNT(*) AS v FROM fieldseal_record_keys WHERE wrapped IS NOT NULL"
        ),
        2500
    );
    let found = ok(
        &tool,
        Some(&ks),
        true,
        &["find", "--email", "p2499@example.org", "--format", "csv"],
    );
    assert!(found.contains("Person 2499"), "{found}");
    let trail = ok(&tool, Some(&ks), true, &["audit", "--format", "csv"]);
    let import_line = trail.lines().find(|l| l.contains(",import,")).unwrap();
    assert!(
        import_line.contains(",2500,ok,\"2500 rows inserted, 1 rejected\""),
        "{import_line}"
    );
});

/// Copies of the audit tables, to put the trail back between tamperings.
fn save_trail(url: &str) {
    exec(
        url,
        "CREATE TABLE audit_saved AS SELECT * FROM fieldseal_audit; \
               CREATE TABLE head_saved AS SELECT * FROM fieldseal_audit_head;",
    );
}

fn restore_trail(url: &str) {
    exec(
        url,
        "DELETE FROM fieldseal_audit; INSERT INTO fieldseal_audit SELECT * FROM audit_saved; \
               DELETE FROM fieldseal_audit_head; \
               INSERT INTO fieldseal_audit_head SELECT * FROM head_saved;",
    );
}

tool_tests!(verify_catches_every_kind_of_edit, |tool| {
    add(&tool, None, "Ada Lovelace", "ada@example.org");
    add(&tool, None, "Bob Stone", "bob@example.org");
    ok(&tool, None, true, &["find", "--name", "bob stone"]);
    ok(&tool, None, true, &["list"]);
    ok(&tool, None, true, &["update", "1", "--age", "41"]);
    let verified = ok(&tool, None, true, &["audit", "verify"]);
    assert!(verified.contains("intact: 5 entries"), "{verified}");
    save_trail(&tool.db.url);
    let broken = |expect: &str| {
        let out = run(&tool, None, true, &["audit", "verify"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = stderr(&out);
        assert!(err.contains(expect), "expected {expect:?} in: {err}");
        restore_trail(&tool.db.url);
        assert!(
            run(&tool, None, true, &["audit", "verify"])
                .status
                .success(),
            "restored"
        );
        // verify itself writes no entry; the restore brought back exactly the saved trail.
    };
    // Changed: an entry's record id.
    exec(
        &tool.db.url,
        "UPDATE fieldseal_audit SET record_id = 99 WHERE id = 3",
    );
    broken("broken at entry 3: entry 3 does not match its MAC");
    // Changed: the outcome of a failure turned into a success, the user.
    exec(
        &tool.db.url,
        "UPDATE fieldseal_audit SET os_user = 'someone' WHERE id = 1",
    );
    broken("broken at entry 1:");
    // Deleted in the middle.
    exec(&tool.db.url, "DELETE FROM fieldseal_audit WHERE id = 2");
    broken("broken at entry 2: entry 2 is missing");
    // Deleted at the end.
    exec(&tool.db.url, "DELETE FROM fieldseal_audit WHERE id = 5");
    broken("broken at entry 5: the trail ends at entry 4, but its head records 5");
    // Inserted: a copy of entry 4 as entry 6, its MAC and all.
    exec(
        &tool.db.url,
        "INSERT INTO fieldseal_audit \
        SELECT 6, at_ms, os_user, operation, record_id, row_count, outcome, detail, mac \
        FROM fieldseal_audit WHERE id = 4",
    );
    broken("broken at entry 6: entry 6 does not match its MAC");
    // Inserted in the middle: everything after it moved up one.
    exec(
        &tool.db.url,
        "UPDATE fieldseal_audit SET id = id + 10 WHERE id >= 3; \
        UPDATE fieldseal_audit SET id = id - 9 WHERE id >= 13; \
        INSERT INTO fieldseal_audit SELECT 3, at_ms, os_user, 'delete', 1, NULL, 'ok', '', mac \
        FROM fieldseal_audit WHERE id = 2",
    );
    broken("broken at entry 3: entry 3 does not match its MAC");
    // Reordered: entries 2 and 3 swapped.
    exec(
        &tool.db.url,
        "UPDATE fieldseal_audit SET id = 100 WHERE id = 2; \
        UPDATE fieldseal_audit SET id = 2 WHERE id = 3; \
        UPDATE fieldseal_audit SET id = 3 WHERE id = 100",
    );
    broken("broken at entry 2: entry 2 does not match its MAC");
});

tool_tests!(
    the_trail_holds_no_plaintext_and_shows_who_did_what,
    |tool| {
        let id = add(&tool, None, "Canary Quetzal", "canary.quetzal@example.org");
        ok(&tool, None, true, &["find", "--name", "Canary Quetzal"]);
        ok(
            &tool,
            None,
            true,
            &["find", "--email", "canary.quetzal@example.org"],
        );
        ok(
            &tool,
            None,
            true,
            &[
                "update",
                &id,
                "--name",
                "Canary Quetzal Two",
                "--email",
                "two.canary@example.org",
            ],
        );
        let out = run(
            &tool,
            None,
            true,
            &[
                "add",
                "--name",
                "Canary Three",
                "--email",
                "two.canary@example.org",
                "--age",
                "1",
            ],
        );
        assert!(!out.status.success(), "a duplicate email fails");
        ok(&tool, None, true, &["export", "out.csv"]);
        ok(&tool, None, true, &["list"]);
        // Everything the trail holds, as text.
        let trail = ok(&tool, None, true, &["audit", "--format", "csv"]);
        for canary in [
            "Canary",
            "Quetzal",
            "canary",
            "quetzal",
            "two.canary",
            "example.org",
        ] {
            assert!(!trail.contains(canary), "{canary} in the trail: {trail}");
        }
        // Nothing anywhere in the database (its dump, or the SQLite file and
        // WAL) is a plaintext: the trail's own tables included.
        let dump = tool.db.dump();
        for canary in [&b"Canary"[..], b"canary", b"Quetzal"] {
            assert!(!dump.windows(canary.len()).any(|w| w == canary));
        }
        // No audit entry holds a blind index of the record.
        #[derive(diesel::QueryableByName)]
        struct B {
            #[diesel(sql_type = diesel::sql_types::Binary)]
            b: Vec<u8>,
        }
        use diesel::RunQueryDsl;
        let mut db = Db::open(&DbUrl::parse(Some(&tool.db.url)).unwrap()).unwrap();
        let bidx: Vec<B> = fieldseal_tool::with_conn!(&mut db, |c| diesel::sql_query(
            "SELECT name_bidx AS b FROM users UNION ALL SELECT email_bidx AS b FROM users"
        )
        .load(c))
        .unwrap();
        let blob = match tool.db.backend {
            fieldseal_testdb::Backend::Mysql => "BINARY",
            _ => "BLOB",
        };
        let entries: Vec<B> = fieldseal_tool::with_conn!(&mut db, |c| diesel::sql_query(format!(
            "SELECT mac AS b FROM fieldseal_audit UNION ALL \
         SELECT CAST(os_user AS {blob}) AS b FROM fieldseal_audit UNION ALL \
         SELECT CAST(detail AS {blob}) AS b FROM fieldseal_audit"
        ))
        .load(c))
        .unwrap();
        assert!(!bidx.is_empty() && !entries.is_empty());
        for index in &bidx {
            for entry in &entries {
                assert!(!entry
                    .b
                    .windows(index.b.len())
                    .any(|w| w == index.b.as_slice()));
            }
        }
        // Who, what, which record, and the failure.
        let user = fieldseal_tool::app::audit::os_user();
        let lines: Vec<&str> = trail.lines().skip(1).collect();
        let ops: Vec<&str> = lines.iter().map(|l| l.split(',').nth(3).unwrap()).collect();
        assert_eq!(
            ops,
            ["add", "find", "find", "update", "add", "export", "list"]
        );
        assert!(lines
            .iter()
            .all(|l| l.split(',').nth(2) == Some(user.as_str())));
        assert!(lines[4].contains(",failed,invalid email"), "{}", lines[4]);
        assert!(
            lines[3].contains(&format!(",update,{id},,ok,\"changed name, email\"")),
            "{}",
            lines[3]
        );
        let only = ok(
            &tool,
            None,
            true,
            &["audit", "--record", &id, "--format", "csv"],
        );
        assert_eq!(only.lines().count(), 1 + 4, "{only}");
        let later = ok(&tool, None, true, &["audit", "--since", "2999-01-01"]);
        assert!(later.contains("No audit entries."), "{later}");
        let out = run(&tool, None, true, &["audit", "--since", "last week"]);
        assert_eq!(out.status.code(), Some(2));
    }
);
