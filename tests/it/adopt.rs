//! `fieldseal adopt`, against legacy tables built the way the old
//! applications built them, on SQLite and MariaDB: a wrong key changes
//! nothing, kill -9 at several points loses and doubles nothing, bad rows
//! stop or are skipped by id, nothing legacy is left behind, and adopted
//! rows behave like any record.

use crate::cli::{stderr, tool_tests, Tool, PASS};
use base64::Engine as _;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use fieldseal_testdb::Backend;
use std::process::Stdio;

const AES_KEY: [u8; 32] = *b"legacy-app-aes-256-key-32-bytes!";

/// A legacy value as the AES-CBC app stored it: base64(IV ‖ ciphertext).
fn aes_cbc(plain: &str, n: u64) -> String {
    use cbc::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&n.to_le_bytes());
    let ct = cbc::Encryptor::<aes::Aes256>::new(&AES_KEY.into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
    base64::engine::general_purpose::STANDARD.encode([&iv[..], &ct].concat())
}

fn canary(i: u64) -> String {
    format!("Canary Zoë {i:05} Quixote")
}

/// Runs SQL on the test database directly, as the legacy app would.
fn sql(tool: &Tool, statements: &str) {
    match tool.db.backend {
        Backend::Mysql => MysqlConnection::establish(&tool.db.url)
            .unwrap()
            .batch_execute(statements)
            .unwrap(),
        _ => SqliteConnection::establish(&tool.db.url)
            .unwrap()
            .batch_execute(statements)
            .unwrap(),
    }
}

/// The legacy apps' primary key, as each backend spells it.
fn id_column(tool: &Tool) -> &'static str {
    match tool.db.backend {
        Backend::Mysql => "id INT AUTO_INCREMENT PRIMARY KEY",
        _ => "id INTEGER PRIMARY KEY AUTOINCREMENT",
    }
}

/// One text value for SQL.
fn lit(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The AES-CBC app's table: `users(id, name TEXT, email TEXT NULL, age
/// INT)`, `rows` rows with ids 3, 6, 9, … (gaps on purpose), every third
/// row without an email; values from `value(i, plain)`.
fn legacy_table(tool: &Tool, rows: u64, value: impl Fn(u64, &str) -> String) {
    let id = id_column(tool);
    sql(
        tool,
        &format!(
            "CREATE TABLE users ({id}, name TEXT NOT NULL, email TEXT NULL, age INT NOT NULL)"
        ),
    );
    let mut values = Vec::new();
    for i in 1..=rows {
        let email = if i % 3 == 0 {
            "NULL".to_owned()
        } else {
            lit(&value(i, &format!("user{i}@example.org")))
        };
        values.push(format!(
            "({}, {}, {email}, {})",
            i * 3,
            lit(&value(i, &canary(i))),
            i % 100
        ));
        if values.len() == 500 || i == rows {
            sql(
                tool,
                &format!(
                    "INSERT INTO users (id, name, email, age) VALUES {}",
                    values.join(",")
                ),
            );
            values.clear();
        }
    }
}

/// `fieldseal adopt --from aes-cbc --legacy-key-file KEY` and `more`.
fn adopt_aes(tool: &Tool, key: &str, more: &[&str]) -> std::process::Output {
    let mut args = vec!["adopt", "--from", "aes-cbc", "--legacy-key-file", key];
    args.extend_from_slice(more);
    tool.run(&args)
}

fn key_file(tool: &Tool) -> String {
    let path = tool.path("aes_key.bin");
    std::fs::write(&path, AES_KEY).unwrap();
    path.display().to_string()
}

/// The adopted records, in id order: (id, name, email, age).
fn records(tool: &Tool) -> Vec<(i64, String, String, String)> {
    let csv = tool.ok(&["list", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].parse().unwrap(), r[1].into(), r[2].into(), r[3].into())
        })
        .collect()
}

fn expected(rows: u64) -> Vec<(i64, String, String, String)> {
    (1..=rows)
        .map(|i| {
            let email = if i % 3 == 0 {
                String::new()
            } else {
                format!("user{i}@example.org")
            };
            ((i * 3) as i64, canary(i), email, (i % 100).to_string())
        })
        .collect()
}

/// The legacy table's rows as the database returns them, for "nothing
/// changed" checks (SQLite: the file's bytes).
fn snapshot(tool: &Tool) -> Vec<u8> {
    match tool.db.backend {
        Backend::Sqlite => std::fs::read(&tool.db.url).unwrap(),
        _ => tool
            .db
            .dump()
            .split(|&b| b == b'\n')
            .filter(|l| !l.starts_with(b"-- Dump completed"))
            .flatten()
            .copied()
            .collect(),
    }
}

tool_tests!(a_wrong_key_or_a_bad_command_changes_nothing, |tool| {
    legacy_table(&tool, 50, |i, p| aes_cbc(p, i));
    let before = snapshot(&tool);
    let wrong = tool.path("wrong.bin");
    std::fs::write(&wrong, [1u8; 32]).unwrap();
    let short = tool.path("short.bin");
    std::fs::write(&short, [1u8; 16]).unwrap();
    let missing = tool.path("missing.bin");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--from".into(),
                "aes-cbc".into(),
                "--legacy-key-file".into(),
                wrong.display().to_string(),
            ],
            "the legacy key does not open the first rows of users (row id 3: the name:",
        ),
        (
            vec![
                "--from".into(),
                "aes-cbc".into(),
                "--legacy-key-file".into(),
                missing.display().to_string(),
            ],
            "cannot read the legacy key file",
        ),
        (
            vec![
                "--from".into(),
                "aes-cbc".into(),
                "--legacy-key-file".into(),
                short.display().to_string(),
            ],
            "holds 16 bytes",
        ),
        (
            vec!["--from".into(), "rot13".into()],
            "\"rot13\" is not a source",
        ),
        (
            vec![
                "--from".into(),
                "fernet".into(),
                "--legacy-key-file".into(),
                wrong.display().to_string(),
            ],
            "not hold a Fernet key",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["adopt"];
        all.extend(args.iter().map(String::as_str));
        let out = tool.run(&all);
        assert_eq!(out.status.code(), Some(1), "{all:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(message), "{all:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
        assert!(!err.contains("Canary"), "no plaintext: {err}");
        assert_eq!(snapshot(&tool), before, "{all:?} changed the database");
    }
    // A column nobody mapped is named, and nothing changes either.
    sql(&tool, "ALTER TABLE users ADD COLUMN phone TEXT NULL");
    let before = snapshot(&tool);
    let key = key_file(&tool);
    let out = adopt_aes(&tool, &key, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("\"phone\""), "{}", stderr(&out));
    assert_eq!(snapshot(&tool), before);
    // Mapped away on purpose, it adopts.
    let out = adopt_aes(&tool, &key, &["--map", "phone=skip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(records(&tool), expected(50));
});

tool_tests!(
    kill_9_at_several_points_then_rerun_gives_exactly_the_legacy_rows,
    |tool| {
        const ROWS: u64 = 12_000;
        legacy_table(&tool, ROWS, |i, p| aes_cbc(p, i));
        let key = key_file(&tool);
        let args = [
            "adopt",
            "--from",
            "aes-cbc",
            "--legacy-key-file",
            &key,
            "--batch-size",
            "500",
        ];
        // Kill once right after the start, then twice with batches in.
        let mut after_kills = Vec::new();
        for until in [0, 3_000, 7_000] {
            let mut child = tool
                .cmd(PASS, &args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let started = std::time::Instant::now();
            loop {
                let adopted = adopted_count(&tool);
                if adopted >= until {
                    break;
                }
                assert!(started.elapsed().as_secs() < 120, "no progress");
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            child.kill().unwrap();
            child.wait().unwrap();
            after_kills.push(adopted_count(&tool));
        }
        assert!(
            after_kills.iter().any(|&n| n > 0 && n < ROWS),
            "some kill landed mid-way: {after_kills:?}"
        );
        let out = tool.run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(records(&tool), expected(ROWS), "exactly the legacy rows");
        let again = tool.run(&args);
        assert_eq!(again.status.code(), Some(0));
        assert!(
            stderr(&again).contains("Nothing to adopt"),
            "{}",
            stderr(&again)
        );
    }
);

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(tool: &Tool, query: &str) -> i64 {
    let n = match tool.db.backend {
        Backend::Mysql => MysqlConnection::establish(&tool.db.url)
            .ok()
            .and_then(|mut c| diesel::sql_query(query).get_result::<Count>(&mut c).ok()),
        _ => SqliteConnection::establish(&tool.db.url)
            .ok()
            .and_then(|mut c| diesel::sql_query(query).get_result::<Count>(&mut c).ok()),
    };
    n.map_or(0, |c| c.n)
}

/// Whether `table` has `column`.
fn has_column(tool: &Tool, table: &str, column: &str) -> bool {
    let query = match tool.db.backend {
        Backend::Mysql => format!(
            "SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME = '{table}' AND COLUMN_NAME = '{column}'"
        ),
        _ => format!(
            "SELECT COUNT(*) AS n FROM pragma_table_info('{table}') WHERE name = '{column}'"
        ),
    };
    count(tool, &query) > 0
}

/// Rows in fieldseal's `users` (0 while `users` is still the legacy table).
fn adopted_count(tool: &Tool) -> u64 {
    if !has_column(tool, "users", "name_bidx") {
        return 0;
    }
    u64::try_from(count(tool, "SELECT COUNT(*) AS n FROM users")).unwrap_or(0)
}

tool_tests!(bad_rows_stop_an_abort_and_are_skipped_by_id, |tool| {
    legacy_table(&tool, 30, |i, plain| match i {
        7 => "%%% not base64 %%%".to_owned(),
        11 => {
            // Bad padding: the last block replaced.
            let mut raw = base64::engine::general_purpose::STANDARD
                .decode(aes_cbc(plain, i))
                .unwrap();
            let n = raw.len();
            raw[n - 1] ^= 0x55;
            base64::engine::general_purpose::STANDARD.encode(raw)
        }
        // An email that repeats row 1's.
        20 if plain.contains('@') => aes_cbc("user1@example.org", i),
        _ => aes_cbc(plain, i),
    });
    sql(&tool, "UPDATE users SET age = 200 WHERE id = 42");
    let key = key_file(&tool);
    let out = adopt_aes(&tool, &key, &["--batch-size", "5"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("legacy row 21: the name: it is not valid base64"),
        "{err}"
    );
    assert!(
        !err.contains("Canary") && !err.contains("@example"),
        "no plaintext: {err}"
    );
    // The first batch (ids 3–15) went in; the one with the bad row did not.
    assert_eq!(records(&tool), expected(5));

    let out = adopt_aes(&tool, &key, &["--on-error", "skip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for (id, why) in [
        (21, "not valid base64"),
        (33, "padding is wrong"),
        (42, "age must be from 0 to 150"),
        (60, "email is already used by record 3"),
    ] {
        assert!(
            err.contains(&format!("legacy row {id}: skipped: ")),
            "{id}: {err}"
        );
        assert!(err.contains(why), "{why}: {err}");
    }
    assert!(!err.contains("Canary"), "no plaintext: {err}");
    let adopted: Vec<i64> = records(&tool).iter().map(|r| r.0).collect();
    let skipped = [21, 33, 42, 60];
    let want: Vec<i64> = (1..=30)
        .map(|i| i * 3)
        .filter(|id| !skipped.contains(id))
        .collect();
    assert_eq!(adopted, want);
    // The skipped rows are kept, with their legacy values, in the legacy table.
    assert!(has_column(&tool, "fieldseal_legacy_users", "name"));
    assert_eq!(
        count(&tool, "SELECT COUNT(*) AS n FROM fieldseal_legacy_users"),
        4
    );
    let dump = tool.db.dump();
    assert!(
        contains(&dump, aes_cbc(&canary(14), 14).as_bytes()),
        "row 42 kept"
    );
});

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

tool_tests!(
    nothing_legacy_is_left_and_adopted_rows_are_records,
    |tool| {
        const ROWS: u64 = 300;
        legacy_table(&tool, ROWS, |i, p| aes_cbc(p, i));
        let key = key_file(&tool);
        let out = adopt_aes(&tool, &key, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("The legacy table is gone."),
            "{}",
            stderr(&out)
        );
        let dump = tool.db.dump();
        assert!(!dump.is_empty());
        for i in 1..=ROWS {
            assert!(!contains(&dump, canary(i).as_bytes()), "plaintext {i} left");
            assert!(
                !contains(&dump, aes_cbc(&canary(i), i).as_bytes()),
                "legacy ciphertext {i} left"
            );
            if i % 3 != 0 {
                let email = format!("user{i}@example.org");
                assert!(!contains(&dump, email.as_bytes()), "email {i} left");
            }
        }
        // Adopted rows are records like any other: find, update, rotate.
        let found = tool.ok(&["find", "--email", "USER7@example.org", "--format", "csv"]);
        assert!(
            found.contains(&format!("21,{},user7@example.org,7,", canary(7))),
            "{found}"
        );
        tool.ok(&["update", "21", "--age", "99"]);
        tool.ok(&["keys", "rotate", "--index"]);
        let found = tool.ok(&[
            "find",
            "--name",
            &canary(7).to_uppercase(),
            "--format",
            "csv",
        ]);
        assert!(found.contains("user7@example.org,99,"), "{found}");
        let dup = tool.run(&[
            "add",
            "--name",
            "X",
            "--age",
            "1",
            "--email",
            "user8@example.org",
        ]);
        assert_eq!(
            dup.status.code(),
            Some(2),
            "unique emails hold: {}",
            stderr(&dup)
        );
        // New records continue after the largest legacy id.
        let added = tool.ok(&["add", "--name", "New", "--age", "1", "--format", "csv"]);
        assert!(
            added
                .lines()
                .nth(1)
                .unwrap()
                .starts_with(&format!("{},", ROWS * 3 + 1)),
            "{added}"
        );
    }
);

tool_tests!(plaintext_and_fernet_tables_with_mapped_columns, |tool| {
    // A Fernet app with its own column names and a signup time.
    let key = fernet::Fernet::generate_key();
    let f = fernet::Fernet::new(&key).unwrap();
    let id = id_column(&tool);
    sql(
        &tool,
        &format!(
            "CREATE TABLE users ({id}, full_name TEXT NOT NULL, mail TEXT, age INT NOT NULL, \
             signed_up TEXT NOT NULL)"
        ),
    );
    for i in 1..=25u64 {
        sql(
            &tool,
            &format!(
                "INSERT INTO users (full_name, mail, age, signed_up) VALUES ({}, {}, {}, '2020-01-{:02} 10:00:00')",
                lit(&f.encrypt(canary(i).as_bytes())),
                lit(&f.encrypt(format!("f{i}@example.org").as_bytes())),
                20 + i,
                i
            ),
        );
    }
    let key_path = tool.path("fernet.key");
    std::fs::write(&key_path, format!("{key}\n")).unwrap();
    let key_path = key_path.display().to_string();
    let out = tool.run(&["adopt", "--from", "fernet", "--legacy-key-file", &key_path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("\"full_name\""), "{}", stderr(&out));
    let out = tool.run(&[
        "adopt",
        "--from",
        "fernet",
        "--legacy-key-file",
        &key_path,
        "--map",
        "full_name=name",
        "--map",
        "mail=email",
        "--map",
        "signed_up=created_at",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = tool.ok(&["list", "--format", "csv"]);
    assert!(
        rows.contains(&format!(
            "5,{},f5@example.org,25,2020-01-05T10:00:00Z",
            canary(5)
        )),
        "{rows}"
    );
    assert_eq!(rows.lines().count(), 26);
});

tool_tests!(a_plaintext_table_without_emails, |tool| {
    let id = id_column(&tool);
    sql(
        &tool,
        &format!("CREATE TABLE users ({id}, name TEXT NOT NULL, age INT NOT NULL)"),
    );
    sql(
        &tool,
        "INSERT INTO users (name, age) VALUES ('Ada Lovelace', 36), ('Charles Babbage', 79)",
    );
    let out = tool.run(&["adopt", "--from", "plaintext"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let found = tool.ok(&["find", "--name", "charles babbage", "--format", "csv"]);
    assert!(found.contains("2,Charles Babbage,,79,"), "{found}");
    assert!(!contains(&tool.db.dump(), b"Ada Lovelace"));
});

tool_tests!(adopted_rows_get_their_own_keys_with_per_user_keys, |tool| {
    legacy_table(&tool, 1200, |i, p| aes_cbc(p, i));
    // A last row whose email repeats the first row's: refused by the unique
    // index in a later batch, after its batch's keys were stored.
    sql(
        &tool,
        &format!(
            "INSERT INTO users (id, name, email, age) VALUES (9999, {}, {}, 5)",
            lit(&aes_cbc("Late Duplicate", 9999)),
            lit(&aes_cbc("user1@example.org", 10_000))
        ),
    );
    let key = key_file(&tool);
    let out = tool
        .cmd(
            PASS,
            &[
                "adopt",
                "--from",
                "aes-cbc",
                "--legacy-key-file",
                &key,
                "--batch-size",
                "500",
                "--on-error",
                "skip",
            ],
        )
        .env("FIELDSEAL_PER_USER_KEYS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("legacy row 9999: skipped"),
        "{}",
        stderr(&out)
    );
    assert_eq!(records(&tool), expected(1200));
    let rows = tool.raw_rows();
    assert!(
        rows.iter().all(|r| r.1[0] == 2 && r.4 == -1),
        "every row under its own key"
    );
    assert_eq!(
        count(
            &tool,
            "SELECT COUNT(*) AS n FROM fieldseal_record_keys WHERE wrapped IS NOT NULL"
        ),
        1200,
        "one key per adopted row; the refused row's key discarded"
    );
    let forgotten = tool.run(&["forget", "6", "--yes"]);
    assert!(forgotten.status.success(), "{}", stderr(&forgotten));
    assert!(stderr(&forgotten).contains("its key is destroyed"));
});
