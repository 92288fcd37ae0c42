//! The interactive prompt, driven through a real pseudo-terminal against
//! SQLite and MariaDB: what the screen shows and what the database holds.

use crate::support::TestDb;
use fieldseal::{MasterSecret, Passphrase};
use fieldseal_tool::app::records;
use fieldseal_tool::app::{keys, Session};
use fieldseal_tool::store::DbUrl;
use rexpect::session::{spawn_command, PtySession};
use std::process::Command;

const PASS: &str = "repl passphrase 1";

fn spawn(db: &TestDb, dir: &std::path::Path, args: &str) -> PtySession {
    spawn_with(db, dir, args, Some(PASS))
}

fn spawn_with(db: &TestDb, dir: &std::path::Path, args: &str, pass: Option<&str>) -> PtySession {
    // A real terminal size, so tables and prompts lay out as for a person.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "stty cols 160 rows 50; exec '{}' {args}",
            env!("CARGO_BIN_EXE_fieldseal")
        ))
        .current_dir(dir)
        .env("DATABASE_URL", &db.url)
        .env("TERM", "xterm-256color")
        .env_remove("FIELDSEAL_PASSPHRASE")
        .env_remove("FIELDSEAL_MASTER_KEY")
        .env_remove("FIELDSEAL_KEY_FILE");
    if let Some(pass) = pass {
        cmd.env("FIELDSEAL_PASSPHRASE", pass);
    }
    spawn_command(cmd, Some(15_000)).expect("spawn fieldseal in a pty")
}

fn session(db: &TestDb) -> Session {
    let url = DbUrl::parse(Some(&db.url)).unwrap();
    let conn = keys::connect(&url).unwrap();
    keys::unlock(
        conn,
        &MasterSecret::Passphrase(Passphrase::new(PASS.into())),
    )
    .unwrap()
    .0
}

/// Waits for the process and checks it exited with code 0 (rexpect does not
/// re-export nix's `WaitStatus`, so this reads its `Debug` form:
/// `Exited(Pid(…), 0)`).
fn assert_exited_zero(p: &mut PtySession) {
    let status = format!("{:?}", p.process().wait().expect("wait for fieldseal"));
    assert!(
        status.starts_with("Exited(") && status.ends_with(", 0)"),
        "exit status {status}"
    );
}

fn prompt(p: &mut PtySession) {
    p.exp_string("fieldseal> ").expect("the command prompt");
}

fn full_cycle(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(&db, dir.path(), "");
    p.exp_string("0 record(s)")
        .expect("start-up banner with the count");
    prompt(&mut p);

    // Add: a bad age is re-asked at that field; the name typed stays.
    p.send_line("add").unwrap();
    p.exp_string("Name").unwrap();
    p.send_line("Ada Lovelace").unwrap();
    p.exp_string("Age").unwrap();
    p.send_line("abc").unwrap();
    p.exp_string("age must be a whole number")
        .expect("the age error at the field");
    p.send_line("151").unwrap();
    p.exp_string("age must be from 0 to 150").unwrap();
    p.send_line("36").unwrap();
    p.exp_string("Email").unwrap();
    p.send_line("not an email").unwrap();
    p.exp_string("email is not a valid address").unwrap();
    p.send_line("ada@example.org").unwrap();
    p.exp_string("Added record 1.").expect("added");
    prompt(&mut p);

    // The second record through the menu: Enter, filter by typing, Enter.
    p.send_line("").unwrap();
    p.exp_string("What do you want to do?").expect("the menu");
    p.send("add a rec").unwrap();
    p.send_line("").unwrap();
    p.exp_string("Name").unwrap();
    p.send_line("Charles Babbage").unwrap();
    p.exp_string("Age").unwrap();
    p.send_line("79").unwrap();
    p.exp_string("Email").unwrap();
    p.send_line("ADA@example.org").unwrap();
    p.exp_string("email is already used by record 1")
        .expect("duplicate email refused");
    p.send_line("charles@example.org").unwrap();
    p.exp_string("Added record 2.").unwrap();
    prompt(&mut p);

    p.send_line("list").unwrap();
    p.exp_string("Charles Babbage").unwrap();
    p.exp_string("Ada Lovelace")
        .expect("newest first: Ada after Charles");
    p.exp_string("2 of 2, newest first").unwrap(); // rexpect reads bytes as Latin-1: match ASCII
    prompt(&mut p);

    p.send_line("find ada LOVELACE").unwrap();
    p.exp_string("ada@example.org").expect("found by name");
    prompt(&mut p);
    p.send_line("find Charles@Example.org").unwrap();
    p.exp_string("Charles Babbage").expect("found by email");
    prompt(&mut p);
    p.send_line("find Nobody").unwrap();
    p.exp_string("No record has that name.").unwrap();
    prompt(&mut p);

    // Ctrl-C in a field cancels that action and returns to the prompt.
    p.send_line("add").unwrap();
    p.exp_string("Name").unwrap();
    p.send("Half typed").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("Cancelled.")
        .expect("Ctrl-C cancels the action");
    prompt(&mut p);

    // Delete asks, naming the record; "n" keeps it, "y" deletes it.
    p.send_line("delete 1").unwrap();
    p.exp_string("Delete record 1 (Ada Lovelace, ada@example.org, age 36)?")
        .unwrap();
    p.send_line("n").unwrap();
    p.exp_string("Nothing deleted.").unwrap();
    prompt(&mut p);
    p.send_line("delete 2").unwrap();
    p.exp_string("Delete record 2 (Charles Babbage").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("Deleted record 2.").unwrap();
    prompt(&mut p);

    p.send_line("keys").unwrap();
    p.exp_string("Blind-index key: version 1.")
        .expect("key status at the prompt");
    prompt(&mut p);

    p.send_line("frobnicate").unwrap();
    p.exp_string("unknown command").unwrap();
    prompt(&mut p);
    p.send_line("quit").unwrap();
    p.exp_string("Bye.").unwrap();
    assert_exited_zero(&mut p);

    // What the database holds afterwards.
    let mut s = session(&db);
    let left: Vec<_> = records::list(&mut s, false, None, 0)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        left.len(),
        1,
        "the cancelled add wrote nothing, record 2 is gone"
    );
    assert_eq!(left[0].name, "Ada Lovelace");
    assert_eq!(left[0].email.as_deref(), Some("ada@example.org"));
    assert_eq!(left[0].age, 36);
}

#[test]
fn full_cycle_sqlite() {
    full_cycle(TestDb::sqlite());
}

#[test]
fn full_cycle_mysql() {
    if let Some(db) = TestDb::mysql() {
        full_cycle(db);
    }
}

#[test]
fn ctrl_d_leaves_cleanly() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(&db, dir.path(), "repl");
    prompt(&mut p);
    p.send_control('d').unwrap();
    p.exp_string("Bye.").unwrap();
    assert_exited_zero(&mut p);
}

#[test]
fn repl_subcommand_without_a_terminal_is_a_usage_error() {
    let db = TestDb::sqlite();
    let out = Command::new(env!("CARGO_BIN_EXE_fieldseal"))
        .arg("repl")
        .env("DATABASE_URL", &db.url)
        .env("FIELDSEAL_PASSPHRASE", PASS)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a terminal"));
}

#[test]
fn hidden_passphrase_prompts_create_then_unlock() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let typed = "typed at the prompt";

    let mut p = spawn_with(&db, dir.path(), "", None);
    p.exp_string("New passphrase: ").unwrap();
    p.send_line("short").unwrap();
    p.exp_string("at least 8 characters")
        .expect("too short is refused");
    p.exp_string("New passphrase: ").unwrap();
    p.send_line(typed).unwrap();
    p.exp_string("Repeat passphrase: ").unwrap();
    p.send_line("something else").unwrap();
    p.exp_string("differ").expect("a mismatch is refused");
    p.exp_string("New passphrase: ").unwrap();
    p.send_line(typed).unwrap();
    p.exp_string("Repeat passphrase: ").unwrap();
    p.send_line(typed).unwrap();
    let before = p.exp_string("fieldseal> ").expect("unlocked");
    assert!(
        !before.contains(typed),
        "the passphrase was echoed: {before:?}"
    );
    p.send_line("quit").unwrap();
    assert_exited_zero(&mut p);

    // A wrong passphrase at the next start: one sentence, exit 1.
    let mut p = spawn_with(&db, dir.path(), "", None);
    p.exp_string("Passphrase: ").unwrap();
    p.send_line("not the passphrase").unwrap();
    p.exp_string("wrong passphrase").unwrap();
    let status = format!("{:?}", p.process().wait().unwrap());
    assert!(status.ends_with(", 1)"), "{status}");

    // The right one opens it.
    let mut p = spawn_with(&db, dir.path(), "", None);
    p.exp_string("Passphrase: ").unwrap();
    p.send_line(typed).unwrap();
    p.exp_string("0 record(s)").unwrap();
    p.send_control('d').unwrap();
    assert_exited_zero(&mut p);
}
