//! End-to-end tests of the `fieldseal` binary against SQLite and MariaDB:
//! each test gets a fresh database and runs the real executable.

use crate::support::TestDb;
use fieldseal_tool::store::{users, Db, DbUrl};
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub(crate) const PASS: &str = "correct horse battery staple";

/// A stored row as the database holds it: id, sealed name, sealed email,
/// age, key id.
type RawRow = (i64, Vec<u8>, Option<Vec<u8>>, i32, i64);

/// Runs the binary against one test database.
pub(crate) struct Tool {
    pub(crate) db: TestDb,
    dir: tempfile::TempDir,
}

impl Tool {
    pub(crate) fn new(db: TestDb) -> Tool {
        Tool {
            db,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub(crate) fn cmd(&self, passphrase: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fieldseal"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("DATABASE_URL", &self.db.url)
            .env("FIELDSEAL_PASSPHRASE", passphrase)
            .env_remove("FIELDSEAL_MASTER_KEY")
            .env_remove("FIELDSEAL_KEY_FILE")
            .stdin(Stdio::null());
        cmd
    }

    pub(crate) fn run_with(&self, passphrase: &str, args: &[&str]) -> Output {
        self.cmd(passphrase, args).output().expect("run fieldseal")
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.run_with(PASS, args)
    }

    /// Runs and asserts success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        self.ok_with(PASS, args)
    }

    /// [`Tool::ok`] with another passphrase.
    pub(crate) fn ok_with(&self, passphrase: &str, args: &[&str]) -> String {
        let out = self.run_with(passphrase, args);
        assert!(
            out.status.success(),
            "fieldseal {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    pub(crate) fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Number of stored rows.
    pub(crate) fn raw_count(&self) -> i64 {
        let url = DbUrl::parse(Some(&self.db.url)).unwrap();
        let mut db = Db::connect(&url).unwrap();
        users::count(&mut db).unwrap()
    }

    /// The raw stored rows: what the database holds, still sealed.
    pub(crate) fn raw_rows(&self) -> Vec<RawRow> {
        let url = DbUrl::parse(Some(&self.db.url)).unwrap();
        let mut db = Db::connect(&url).unwrap();
        users::list(&mut db, false, None, 0)
            .unwrap()
            .into_iter()
            .map(|r| {
                let email = r.email.map(fieldseal::Sealed::into_bytes);
                (r.id, r.name.into_bytes(), email, r.age, r.key_id)
            })
            .collect()
    }
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses `list --format csv` output into (id, name, email, age).
pub(crate) fn parse_list_csv(text: &str) -> Vec<(String, String, String, String)> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["id", "name", "email", "age", "created_at"]
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[0].to_owned(),
                r[1].to_owned(),
                r[2].to_owned(),
                r[3].to_owned(),
            )
        })
        .collect()
}

/// One `#[test]` per application backend (SQLite and MariaDB) from one
/// body that sees `tool`, a [`Tool`] on a fresh database.
macro_rules! tool_tests {
    ($name:ident, |$tool:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn sqlite() {
                let $tool = $crate::cli::Tool::new($crate::support::TestDb::sqlite());
                $body
            }

            #[test]
            fn mysql() {
                let Some(db) = $crate::support::TestDb::mysql() else {
                    return;
                };
                let $tool = $crate::cli::Tool::new(db);
                $body
            }
        }
    };
}
pub(crate) use tool_tests;

tool_tests!(add_list_find_update_delete_export, |tool| {
    tool.ok(&[
        "add",
        "--name",
        "Zoë Müller",
        "--age",
        "34",
        "--email",
        "Zoe@Example.org",
    ]);
    tool.ok(&["add", "--name", "Lee, \"Ann\"", "--age", "0"]);
    tool.ok(&[
        "add",
        "--name",
        "zoë müller",
        "--age",
        "150",
        "--email",
        "z2@example.org",
    ]);

    let listed = parse_list_csv(&tool.ok(&["list", "--format", "csv"]));
    assert_eq!(
        listed,
        [
            (
                "1".into(),
                "Zoë Müller".into(),
                "Zoe@Example.org".into(),
                "34".into()
            ),
            ("2".into(), "Lee, \"Ann\"".into(), String::new(), "0".into()),
            (
                "3".into(),
                "zoë müller".into(),
                "z2@example.org".into(),
                "150".into()
            ),
        ]
    );
    let limited = parse_list_csv(&tool.ok(&["list", "--format", "csv", "--limit", "1"]));
    assert_eq!(limited.len(), 1);

    let json: serde_json::Value =
        serde_json::from_str(&tool.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    assert_eq!(json[1]["name"], "Lee, \"Ann\"");
    assert!(json[1]["email"].is_null());

    // Find by name is case-insensitive and ignores surrounding spaces.
    let found = parse_list_csv(&tool.ok(&["find", "--name", "  ZOË MÜLLER ", "--format", "csv"]));
    assert_eq!(
        found.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["1", "3"]
    );
    let found =
        parse_list_csv(&tool.ok(&["find", "--email", "zoe@example.ORG", "--format", "csv"]));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "1");
    let missing = tool.run(&["find", "--email", "nobody@example.org"]);
    assert_eq!(missing.status.code(), Some(1));

    // Update re-seals and keeps the blind indexes in step.
    tool.ok(&["update", "2", "--email", "ann@example.org", "--age", "41"]);
    let found =
        parse_list_csv(&tool.ok(&["find", "--email", "ANN@example.org", "--format", "csv"]));
    assert_eq!(
        found[0],
        (
            "2".into(),
            "Lee, \"Ann\"".into(),
            "ann@example.org".into(),
            "41".into()
        )
    );
    tool.ok(&["update", "1", "--name", "Zoe Miller"]);
    let found = parse_list_csv(&tool.ok(&["find", "--name", "zoë müller", "--format", "csv"]));
    assert_eq!(
        found.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["3"]
    );
    tool.ok(&["update", "3", "--email", ""]);
    assert_eq!(
        tool.run(&["find", "--email", "z2@example.org"])
            .status
            .code(),
        Some(1)
    );

    tool.ok(&["delete", "3"]);
    let out = tool.run(&["delete", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no record with id 3"),
        "{}",
        stderr(&out)
    );

    tool.ok(&["export", "out.csv"]);
    let exported = std::fs::read_to_string(tool.path("out.csv")).unwrap();
    assert_eq!(
        exported,
        "name,email,age\nZoe Miller,Zoe@Example.org,34\n\"Lee, \"\"Ann\"\"\",ann@example.org,41\n"
    );
    let again = tool.run(&["export", "out.csv"]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing export is not overwritten (a usage error)"
    );
    assert!(stderr(&again).contains("--force"));
});

tool_tests!(bad_input_is_named_and_changes_nothing, |tool| {
    tool.ok(&[
        "add",
        "--name",
        "Existing",
        "--age",
        "30",
        "--email",
        "taken@example.org",
    ]);
    let before = tool.raw_rows();
    let long_name = "x".repeat(201);
    let cases: &[(&[&str], &str, i32)] = &[
        (
            &["add", "--name", "", "--age", "3"],
            "name must not be empty",
            2,
        ),
        (
            &["add", "--name", "   ", "--age", "3"],
            "name must not be empty",
            2,
        ),
        (
            &["add", "--name", &long_name, "--age", "3"],
            "the limit is 200",
            2,
        ),
        (
            &["add", "--name", "A", "--age", "abc"],
            "age must be a whole number",
            2,
        ),
        (
            &["add", "--name", "A", "--age", "151"],
            "age must be from 0 to 150",
            2,
        ),
        (
            &["add", "--name", "A", "--age", "-1"],
            "age must be from 0 to 150",
            2,
        ),
        (
            &["add", "--name", "A", "--age", "4.5"],
            "age must be a whole number",
            2,
        ),
        (
            &[
                "add",
                "--name",
                "A",
                "--age",
                "3",
                "--email",
                "not-an-email",
            ],
            "email is not a valid address",
            2,
        ),
        (
            &[
                "add",
                "--name",
                "A",
                "--age",
                "3",
                "--email",
                "TAKEN@example.org",
            ],
            "email is already used by record 1",
            2,
        ),
        (&["add", "--name", "A"], "--age", 2),
        (
            &["update", "1", "--age", "200"],
            "age must be from 0 to 150",
            2,
        ),
        (
            &["update", "1", "--email", "bad@"],
            "email is not a valid address",
            2,
        ),
        (&["update", "1", "--name", ""], "name must not be empty", 2),
        (&["update", "99", "--age", "3"], "no record with id 99", 1),
        (&["delete", "99"], "no record with id 99", 1),
        (&["list", "--format", "xml"], "xml", 2),
    ];
    for (args, message, code) in cases {
        let out = tool.run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(*code), "fieldseal {args:?}: {err}");
        assert!(
            err.contains(message),
            "fieldseal {args:?}: expected {message:?} in {err:?}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.contains("not-an-email"), "input echoed: {err}");
        assert_eq!(
            tool.raw_rows(),
            before,
            "fieldseal {args:?} changed the database"
        );
    }
});

tool_tests!(database_holds_no_plaintext, |tool| {
    tool.ok(&[
        "add",
        "--name",
        "Plaintext Canary",
        "--age",
        "30",
        "--email",
        "canary@example.org",
    ]);
    let rows = tool.raw_rows();
    assert_eq!(rows.len(), 1);
    let (_, name, email, age, _) = &rows[0];
    assert_eq!(*age, 30);
    for (bytes, plain) in [
        (name.as_slice(), "Plaintext Canary"),
        (email.as_deref().unwrap(), "canary@example.org"),
    ] {
        assert_eq!(bytes.len(), plain.len() + fieldseal::OVERHEAD);
        assert!(!bytes
            .windows(6)
            .any(|w| plain.as_bytes().windows(6).any(|p| p == w)));
    }
});

tool_tests!(wrong_passphrase_changes_nothing, |tool| {
    tool.ok(&["add", "--name", "Grace", "--age", "85"]);
    let before = tool.raw_rows();
    for args in [
        &["add", "--name", "Mallory", "--age", "1"][..],
        &["list"],
        &["delete", "1"],
    ] {
        let out = tool.run_with("not the passphrase", args);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("wrong passphrase"),
            "{}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
    assert_eq!(tool.raw_rows(), before);
    assert!(tool.ok(&["list", "--format", "csv"]).contains("Grace"));
});

tool_tests!(list_reports_a_row_that_does_not_decrypt, |tool| {
    tool.ok(&["add", "--name", "First", "--age", "1"]);
    tool.ok(&["add", "--name", "Second", "--age", "2"]);
    // Move row 2's name ciphertext into row 1: wrong row is fine for AES-GCM
    // (same column), so instead corrupt one byte of row 1's name.
    let url = DbUrl::parse(Some(&tool.db.url)).unwrap();
    let mut db = Db::connect(&url).unwrap();
    let row = users::get(&mut db, 1).unwrap().unwrap();
    let mut name = row.name.into_bytes();
    let last = name.len() - 1;
    name[last] ^= 0x01;
    let changes = users::UserChanges {
        name: fieldseal::Sealed::from_bytes(name),
        name_bidx: vec![0; 16],
        email: None,
        email_bidx: None,
        age: row.age,
        key_id: row.key_id,
        bidx_version: 1,
    };
    users::update(&mut db, 1, &changes).unwrap();

    let out = tool.run(&["list", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("record 1: cannot decrypt users.name: authentication failed"),
        "{err}"
    );
    let listed = parse_list_csv(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(listed.len(), 1, "the readable row is still listed");
    assert_eq!(listed[0].1, "Second");
});

#[test]
fn unreachable_database_names_host_not_password() {
    let tool = Tool::new(TestDb::sqlite());
    let out = tool
        .cmd(PASS, &["list"])
        .env(
            "DATABASE_URL",
            "mysql://app:hunter2secret@127.0.0.1:1/records",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot connect to 127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");
}

#[test]
fn no_subcommand_without_a_terminal_prints_help_and_exits_2() {
    let tool = Tool::new(TestDb::sqlite());
    let out = tool.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: fieldseal"));
    assert!(
        !Path::new(&tool.db.url).exists(),
        "help must not create a database"
    );
}

#[test]
fn no_master_key_without_a_terminal_is_a_clear_error() {
    let tool = Tool::new(TestDb::sqlite());
    let out = tool
        .cmd(PASS, &["list"])
        .env_remove("FIELDSEAL_PASSPHRASE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no master key: set FIELDSEAL_MASTER_KEY"),
        "{}",
        stderr(&out)
    );
}

/// A mistake in the command line is a usage error (exit 2), found before
/// anything is opened: no database file appears.
#[test]
fn usage_mistakes_exit_2_and_create_nothing() {
    let tool = Tool::new(TestDb::sqlite());
    std::fs::write(tool.path("people.csv"), "name,age\nAda,36\n").unwrap();
    std::fs::write(tool.path("taken.csv"), "keep me\n").unwrap();
    for args in [
        &["list", "--limit", "-1"][..],
        &["update", "1"],
        &["import", "people.csv", "--map", "no-equals-sign"],
        &["import", "people.csv", "--map", "x=nowhere"],
        &["export", "taken.csv"],
    ] {
        let out = tool.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            !std::path::Path::new(&tool.db.url).exists(),
            "{args:?} created the database"
        );
    }
    assert_eq!(
        std::fs::read_to_string(tool.path("taken.csv")).unwrap(),
        "keep me\n"
    );
}

/// `completions bash` prints a script that bash really completes with,
/// and opens no database.
#[test]
fn shell_completions_complete_subcommands() {
    let tool = Tool::new(TestDb::sqlite());
    std::fs::write(
        tool.path("fieldseal.bash"),
        tool.ok(&["completions", "bash"]),
    )
    .unwrap();
    let complete = |words: &str, cword: usize| -> String {
        let script = format!(
            "source ./fieldseal.bash; COMP_WORDS=({words}); COMP_CWORD={cword}; \
             _fieldseal fieldseal \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = Command::new("bash")
            .args(["-c", &script])
            .current_dir(tool.path(""))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(complete("fieldseal ke", 1).trim(), "keys");
    assert_eq!(complete("fieldseal keys ro", 2).trim(), "rotate");
    assert!(tool
        .ok(&["completions", "zsh"])
        .starts_with("#compdef fieldseal"));
    assert!(tool
        .ok(&["completions", "fish"])
        .contains("complete -c fieldseal"));
    let out = tool.run(&["completions", "tcsh-or-so"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!Path::new(&tool.db.url).exists(), "no database was opened");
}

/// The README's application user: with only the privileges it lists, on
/// MySQL, every command works (migrations, LOAD DATA imports, rotation of
/// both keys with its temporary table, a passphrase change, export).
#[test]
fn the_documented_application_user_privileges_suffice() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let Some(db) = TestDb::mysql() else {
        return;
    };
    let user = format!("fs{}", &db.name()[db.name().len().saturating_sub(20)..]);
    let mut admin = diesel::MysqlConnection::establish(&db.url).unwrap();
    struct DropUser(diesel::MysqlConnection, String);
    impl Drop for DropUser {
        fn drop(&mut self) {
            let _ = self.0.batch_execute(&format!(
                "DROP USER IF EXISTS '{0}'@'%', '{0}'@'localhost'",
                self.1
            ));
        }
    }
    admin
        .batch_execute(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY 'app-secret-1'; \
             CREATE USER '{user}'@'localhost' IDENTIFIED BY 'app-secret-1'; \
             GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, CREATE TEMPORARY TABLES \
               ON `{db}`.* TO '{user}'@'%', '{user}'@'localhost'",
            db = db.name()
        ))
        .unwrap();
    let _guard = DropUser(admin, user.clone());
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&user).unwrap();
    url.set_password(Some("app-secret-1")).unwrap();
    let url = url.to_string();

    let tool = Tool::new(TestDb::sqlite());
    let run = |args: &[&str]| {
        let out = tool
            .cmd(PASS, args)
            .env("DATABASE_URL", &url)
            .env("FIELDSEAL_NEW_PASSPHRASE", "the next passphrase")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[
        "add",
        "--name",
        "Ada",
        "--age",
        "36",
        "--email",
        "ada@example.org",
    ]);
    let mut csv = String::from("name,email,age\n");
    for i in 0..2500 {
        csv.push_str(&format!("P {i},p{i}@example.org,{}\n", i % 90));
    }
    std::fs::write(tool.path("people.csv"), csv).unwrap();
    run(&["import", "people.csv"]);
    run(&["keys", "rotate", "--index"]);
    run(&["update", "1", "--age", "37"]);
    run(&["export", "out.csv"]);
    run(&["delete", "1", "--yes"]);
    run(&["keys", "change-passphrase"]);
    let out = tool
        .cmd(
            "the next passphrase",
            &["find", "--email", "p7@example.org"],
        )
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("P 7"));
}

#[test]
fn version_is_the_package_version() {
    let tool = Tool::new(TestDb::sqlite());
    let out = tool.ok(&["--version"]);
    assert_eq!(
        out.trim(),
        format!("fieldseal {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(!Path::new(&tool.db.url).exists(), "no database was opened");
}
