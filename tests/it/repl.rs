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
    spawn_command(cmd, Some(60_000)).expect("spawn fieldseal in a pty")
}

fn session(db: &TestDb) -> Session {
    let url = DbUrl::parse(Some(&db.url)).unwrap();
    let conn = keys::connect(&url).unwrap();
    keys::unlock(
        conn,
        None,
        &MasterSecret::Passphrase(Passphrase::new(PASS.into())),
        false,
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

fn add(s: &mut Session, name: &str, email: &str, age: &str) -> i64 {
    let input = fieldseal_tool::app::RecordInput::parse(name, Some(email), age).unwrap();
    records::add(s, &input).unwrap().id
}

/// Waits until `ready` holds (the work under way has reached the point a
/// test wants to interrupt), failing after a minute.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(started.elapsed().as_secs() < 60, "never saw: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn edit_cycle(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(&db);
    let id = add(&mut s, "Ada Lovelace", "ada@example.org", "36");
    add(&mut s, "Charles Babbage", "charles@example.org", "79");

    let mut p = spawn(&db, dir.path(), "");
    prompt(&mut p);
    p.send_line(&format!("edit {id}")).unwrap();
    // The name is pre-filled: Enter keeps it.
    p.exp_string("Name").unwrap();
    p.send_line("").unwrap();
    // A bad age is re-asked at that field.
    p.exp_string("Age").unwrap();
    p.send("\x7f\x7f").unwrap();
    p.send_line("abc").unwrap();
    p.exp_string("age must be a whole number").unwrap();
    p.send("\x7f\x7f\x7f").unwrap();
    p.send_line("37").unwrap();
    // Another operator's email is refused here too.
    p.exp_string("Email").unwrap();
    p.send(&"\x7f".repeat("ada@example.org".len())).unwrap();
    p.send_line("CHARLES@example.org").unwrap();
    p.exp_string("email is already used by record 2").unwrap();
    p.send(&"\x7f".repeat("CHARLES@example.org".len())).unwrap();
    // Meanwhile someone else renames the record.
    records::update(
        &mut s,
        id,
        &records::Changes {
            name: Some("Augusta Ada King"),
            email: None,
            age: None,
        },
    )
    .unwrap();
    p.send_line("ada@lovelace.org").unwrap();
    p.exp_string("was changed by someone else")
        .expect("the concurrent change is noticed");
    p.exp_string("Augusta Ada King")
        .expect("and the new values are shown");
    // Asked again, pre-filled with the new values: keep the name, set the age.
    p.exp_string("Name").unwrap();
    p.send_line("").unwrap();
    p.exp_string("Age").unwrap();
    p.send("\x7f\x7f").unwrap();
    p.send_line("37").unwrap();
    p.exp_string("Email").unwrap();
    p.send_line("").unwrap();
    p.exp_string(&format!("Updated record {id}.")).unwrap();
    prompt(&mut p);
    // Nothing typed: nothing written.
    p.send_line(&format!("edit {id}")).unwrap();
    for field in ["Name", "Age", "Email"] {
        p.exp_string(field).unwrap();
        p.send_line("").unwrap();
    }
    p.exp_string("Nothing changed.").unwrap();
    prompt(&mut p);
    // Through the menu, for a record that does not exist.
    p.send_line("").unwrap();
    p.exp_string("What do you want to do?").unwrap();
    p.send("edit a rec").unwrap();
    p.send_line("").unwrap();
    p.exp_string("Id of the record to edit").unwrap();
    p.send_line("99").unwrap();
    p.exp_string("no record with id 99").unwrap();
    prompt(&mut p);
    p.send_line("quit").unwrap();
    assert_exited_zero(&mut p);

    let record = records::get(&mut s, id).unwrap();
    assert_eq!(record.name, "Augusta Ada King", "the other change survived");
    assert_eq!(record.age, 37);
    assert_eq!(record.email.as_deref(), Some("ada@example.org"));
    assert_eq!(
        records::find_by_email(&mut s, "ada@example.org").unwrap()[0].id,
        id
    );
}

#[test]
fn edit_at_the_prompt_sqlite() {
    edit_cycle(TestDb::sqlite());
}

#[test]
fn edit_at_the_prompt_mysql() {
    if let Some(db) = TestDb::mysql() {
        edit_cycle(db);
    }
}

#[test]
fn list_pages_walk_the_table_both_ways() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(&db);
    for i in 1..=45 {
        add(
            &mut s,
            &format!("Person {i:02}"),
            &format!("p{i}@example.org"),
            "30",
        );
    }
    let mut p = spawn(&db, dir.path(), "");
    prompt(&mut p);
    p.send_line("list").unwrap();
    p.exp_string("Person 45").expect("newest first");
    p.exp_string("Page 1 of 3: records 1").unwrap();
    prompt(&mut p);
    p.send_line("next").unwrap();
    p.exp_string("Person 25").unwrap();
    p.exp_string("Page 2 of 3: records 21").unwrap();
    prompt(&mut p);
    p.send_line("more").unwrap();
    let page3 = p.exp_string("Page 3 of 3: records 41").unwrap();
    assert!(
        page3.contains("Person 01") && !page3.contains("Person 06"),
        "{page3}"
    );
    prompt(&mut p);
    p.send_line("next").unwrap();
    p.exp_string("only 3 pages").unwrap();
    prompt(&mut p);
    p.send_line("prev").unwrap();
    p.exp_string("Page 2 of 3").unwrap();
    prompt(&mut p);
    p.send_line("list 1").unwrap();
    p.exp_string("Page 1 of 3").unwrap();
    prompt(&mut p);
    p.send_line("prev").unwrap();
    p.exp_string("This is the first page.").unwrap();
    prompt(&mut p);
    p.send_line("list zero").unwrap();
    p.exp_string("list takes a page number").unwrap();
    prompt(&mut p);
    p.send_line("quit").unwrap();
    assert_exited_zero(&mut p);

    // The subcommand pages too (oldest first, as `list` always did).
    let out = Command::new(env!("CARGO_BIN_EXE_fieldseal"))
        .args(["list", "--page", "2", "--format", "csv"])
        .env("DATABASE_URL", &db.url)
        .env("FIELDSEAL_PASSPHRASE", PASS)
        .output()
        .unwrap();
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1))
        .collect();
    let expected: Vec<String> = (21..=40).map(|i| format!("Person {i:02}")).collect();
    assert_eq!(names, expected);
}

#[test]
fn key_operations_from_the_menu() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(&db);
    for i in 0..50 {
        add(
            &mut s,
            &format!("P {i}"),
            &format!("k{i}@example.org"),
            "20",
        );
    }
    let mut p = spawn(&db, dir.path(), "");
    prompt(&mut p);
    // Rotation through the menu, asked first; "n" changes nothing.
    p.send_line("").unwrap();
    p.exp_string("What do you want to do?").unwrap();
    p.send("rotate the").unwrap();
    p.send_line("").unwrap();
    p.exp_string("re-encrypt all 50 record(s)").unwrap();
    p.send_line("n").unwrap();
    p.exp_string("Nothing rotated.").unwrap();
    prompt(&mut p);
    p.send_line("rotate").unwrap();
    p.exp_string("re-encrypt all 50 record(s)").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("blind-index key").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("New data key 2 is active.").unwrap();
    p.exp_string("rows/s").unwrap();
    p.exp_string("New blind-index key version 2 is current.")
        .unwrap();
    prompt(&mut p);

    // The passphrase: asked first, then twice, hidden, by the usual rules.
    let new = "a new passphrase 2";
    p.send_line("").unwrap();
    p.exp_string("What do you want to do?").unwrap();
    p.send("change the pass").unwrap();
    p.send_line("").unwrap();
    p.exp_string("Re-wrap the keys under a new passphrase?")
        .unwrap();
    p.send_line("y").unwrap();
    p.exp_string("New passphrase: ").unwrap();
    p.send_line("short").unwrap();
    p.exp_string("at least 8 characters").unwrap();
    p.exp_string("New passphrase: ").unwrap();
    p.send_line(new).unwrap();
    p.exp_string("Repeat passphrase: ").unwrap();
    p.send_line(new).unwrap();
    let shown = p.exp_string("old one no longer opens").unwrap();
    assert!(!shown.contains(new), "the passphrase was echoed");
    prompt(&mut p);
    p.send_line("quit").unwrap();
    assert_exited_zero(&mut p);

    let url = DbUrl::parse(Some(&db.url)).unwrap();
    let old = keys::unlock(
        keys::connect(&url).unwrap(),
        None,
        &MasterSecret::Passphrase(Passphrase::new(PASS.into())),
        false,
    );
    assert!(old.is_err(), "the old passphrase no longer opens it");
    let (mut s, _) = keys::unlock(
        keys::connect(&url).unwrap(),
        None,
        &MasterSecret::Passphrase(Passphrase::new(new.into())),
        false,
    )
    .unwrap();
    assert_eq!(s.keyring.active_key_id(), 2);
    assert_eq!(
        records::find_by_email(&mut s, "k7@example.org").unwrap()[0].name,
        "P 7"
    );
}

/// Ctrl-C stops an import between two batches (they stay, and the exact
/// `--resume` command is shown), an export without leaving a file, and a
/// rotation with every row readable; each time the prompt comes back.
#[test]
fn ctrl_c_stops_long_work_at_a_safe_point() {
    const ROWS: usize = 200_000;
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("name,email,age\n");
    for i in 0..ROWS {
        csv.push_str(&format!("Person {i},p{i}@example.org,{}\n", i % 100));
    }
    std::fs::write(dir.path().join("big file.csv"), csv).unwrap();
    let mut s = session(&db);
    let count = |s: &mut Session| records::count(s).unwrap();

    let mut p = spawn(&db, dir.path(), "");
    prompt(&mut p);
    p.send_line("import big file.csv").unwrap();
    p.exp_string("On a bad line").unwrap();
    p.send_line("").unwrap();
    wait_until("a committed batch", || count(&mut s) > 0);
    p.send_control('c').unwrap();
    p.exp_string("Stopped by Ctrl-C. Lines 2")
        .expect("the import stops");
    p.exp_string("fieldseal import 'big file.csv' --resume")
        .expect("the exact command that finishes it");
    prompt(&mut p);
    let stopped_at = count(&mut s);
    let batch = fieldseal_tool::app::import::DEFAULT_BATCH_SIZE as i64;
    assert!(stopped_at < ROWS as i64, "stopped early: {stopped_at}");
    assert_eq!(stopped_at % batch, 0, "whole batches only");

    // The command it gave finishes the import.
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "exec {} import 'big file.csv' --resume",
                env!("CARGO_BIN_EXE_fieldseal")
            ),
        ])
        .current_dir(dir.path())
        .env("DATABASE_URL", &db.url)
        .env("FIELDSEAL_PASSPHRASE", PASS)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&mut s), ROWS as i64);

    // Export: no file, not even a partial one.
    p.send_line("export out.csv").unwrap();
    wait_until("the export under way", || {
        std::fs::read_dir(dir.path()).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with(".tmp") && e.metadata().unwrap().len() > 0
        })
    });
    p.send_control('c').unwrap();
    p.exp_string("nothing was exported")
        .expect("the export stops");
    prompt(&mut p);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "big file.csv" && !n.starts_with("fieldseal.db"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // Rotation: stopped between batches, every row readable, and the same
    // command finishes it.
    p.send_line("rotate").unwrap();
    p.exp_string("re-encrypt all").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("blind-index key").unwrap();
    p.send_line("n").unwrap();
    wait_until("rows under the new key", || {
        s.refresh().unwrap();
        s.keyring.active_key_id() == 2
            && fieldseal_tool::store::users::count_not_under(&mut s.db, 2).unwrap() < ROWS as i64
    });
    p.send_control('c').unwrap();
    p.exp_string("Stopped by Ctrl-C between two batches")
        .expect("the rotation stops");
    prompt(&mut p);
    let pending = fieldseal_tool::store::users::count_not_under(&mut s.db, 2).unwrap();
    assert!(pending > 0, "stopped before the end");
    assert_eq!(
        records::find_by_email(&mut s, "p199999@example.org").unwrap()[0].name,
        "Person 199999"
    );
    p.send_line("rotate").unwrap();
    p.exp_string("re-encrypt all").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("blind-index key").unwrap();
    p.send_line("n").unwrap();
    p.exp_string("Finishing the rotation to data key 2.")
        .expect("running it again finishes it");
    prompt(&mut p);
    assert_eq!(
        fieldseal_tool::store::users::count_not_under(&mut s.db, 2).unwrap(),
        0
    );
    p.send_line("quit").unwrap();
    assert_exited_zero(&mut p);
}

/// "Forget a record" at the prompt: the confirmation names the record and
/// says what is destroyed; "n" keeps it; through the menu, "y" destroys its
/// key and deletes it.
fn forget_at_the_prompt(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let added = std::process::Command::new(env!("CARGO_BIN_EXE_fieldseal"))
        .args([
            "add",
            "--name",
            "Ada Lovelace",
            "--email",
            "ada@example.org",
            "--age",
            "36",
        ])
        .current_dir(dir.path())
        .env("DATABASE_URL", &db.url)
        .env("FIELDSEAL_PASSPHRASE", PASS)
        .env("FIELDSEAL_PER_USER_KEYS", "1")
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let mut p = spawn(&db, dir.path(), "");
    prompt(&mut p);
    p.send_line("forget 1").unwrap();
    p.exp_string("Forget record 1 (Ada Lovelace, ada@example.org, age 36)? Its key is destroyed")
        .expect("the confirmation names the record");
    p.send_line("n").unwrap();
    p.exp_string("Nothing forgotten.").unwrap();
    prompt(&mut p);
    p.send_line("").unwrap();
    p.exp_string("What do you want to do?").expect("the menu");
    p.send("forget a rec").unwrap();
    p.send_line("").unwrap();
    p.exp_string("Id of the record to forget").unwrap();
    p.send_line("1").unwrap();
    p.exp_string("Forget record 1 (Ada Lovelace").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("Forgot record 1: its key is destroyed and its row deleted.")
        .expect("forgotten");
    prompt(&mut p);
    p.send_line("quit").unwrap();
    assert_exited_zero(&mut p);

    let mut s = session(&db);
    assert_eq!(records::count(&mut s).unwrap(), 0);
    let trail = fieldseal_tool::app::audit::show(&mut s, Some(1), None).unwrap();
    let ops: Vec<&str> = trail.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(ops, ["add", "forget"]);
    assert_eq!(trail[1].detail, "own key destroyed, row deleted");
}

#[test]
fn forget_at_the_prompt_sqlite() {
    forget_at_the_prompt(TestDb::sqlite());
}

#[test]
fn forget_at_the_prompt_mysql() {
    if let Some(db) = TestDb::mysql() {
        forget_at_the_prompt(db);
    }
}
