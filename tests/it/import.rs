//! `fieldseal import` end to end on SQLite and MariaDB: every kind of bad
//! line with its number, abort and skip modes, a kill -9 in the middle and
//! `--resume`, and a round trip through export.

use crate::cli::{parse_list_csv, stderr, tool_tests, Tool};
use crate::support::TestDb;
use std::io::Write;
use std::process::{Command, Stdio};

fn write(tool: &Tool, name: &str, bytes: &[u8]) -> String {
    std::fs::write(tool.path(name), bytes).unwrap();
    name.to_owned()
}

/// (line, reason) of each row of a rejects file.
fn rejects(tool: &Tool, name: &str) -> Vec<(u64, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(tool.path(name))
        .unwrap();
    assert_eq!(&reader.byte_headers().unwrap()[0], b"line");
    // Byte records: the rejected fields are kept byte for byte, invalid
    // UTF-8 included.
    reader
        .byte_records()
        .map(|r| {
            let r = r.unwrap();
            let text = |i: usize| String::from_utf8(r[i].to_vec()).unwrap();
            (text(0).parse().unwrap(), text(1))
        })
        .collect()
}

tool_tests!(every_bad_line_is_reported_with_its_number, |tool| {
    tool.ok(&[
        "add",
        "--name",
        "Already Here",
        "--age",
        "50",
        "--email",
        "taken@example.org",
    ]);
    let mut file = Vec::new();
    file.extend_from_slice(b"\xEF\xBB\xBFname,email,age\r\n"); // 1: BOM and CRLF
    file.extend_from_slice(b"\"Lee, Ann\",ann@example.org,30\r\n"); // 2: comma in quotes
    file.extend_from_slice(b"\"Say \"\"Hi\"\"\",,40\r\n"); // 3: quotes in quotes
    file.extend_from_slice(b"\"Two\nLines\",two@example.org,5\r\n"); // 4-5: newline in quotes
    file.extend_from_slice(b"Short,1\r\n"); // 6: too few
    file.extend_from_slice(b"Long,l@example.org,1,extra\r\n"); // 7: too many
    file.extend_from_slice(b"Bad\xff\xfeName,b@example.org,1\r\n"); // 8: not UTF-8
    file.extend_from_slice(b",empty@example.org,1\r\n"); // 9: empty name
    file.extend_from_slice(b"Age Word,w@example.org,abc\r\n"); // 10
    file.extend_from_slice(b"Age High,h@example.org,151\r\n"); // 11
    file.extend_from_slice(b"Bad Mail,not-an-email,3\r\n"); // 12
    file.extend_from_slice(b"Dup In File,ANN@example.org,3\r\n"); // 13: repeats line 2
    file.extend_from_slice(b"Dup In Db,Taken@Example.org,3\r\n"); // 14: exists already
    file.extend_from_slice(b"Last One,last@example.org,150\r\n"); // 15
    let name = write(&tool, "users.csv", &file);

    // On MySQL through LOAD DATA (the default), whose duplicates come back
    // as skipped rows.
    let out = tool.run(&[
        "import",
        &name,
        "--on-error",
        "skip",
        "--rejects",
        "rejects.csv",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stderr(&out);
    // 13 records: lines 4-5 are one quoted record.
    assert!(
        summary.contains("read 13 rows, inserted 4, rejected 9"),
        "{summary}"
    );

    let got = rejects(&tool, "rejects.csv");
    let expected: &[(u64, &str)] = &[
        (6, "expected 3 fields, found 2"),
        (7, "expected 3 fields, found 4"),
        (8, "field name is not valid UTF-8"),
        (9, "name must not be empty"),
        (10, "age must be a whole number"),
        (11, "age must be from 0 to 150"),
        (12, "email is not a valid address"),
        (13, "email repeats the email on line 2"),
        (14, "email is already used by record 1"),
    ];
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for ((line, reason), (want_line, want)) in got.iter().zip(expected) {
        assert_eq!(line, want_line, "{got:?}");
        assert!(
            reason.contains(want),
            "line {line}: {reason:?} should contain {want:?}"
        );
        assert!(
            !reason.contains("not-an-email") && !reason.contains("ANN@"),
            "{reason}"
        );
    }

    let listed = parse_list_csv(&tool.ok(&["list", "--format", "csv"]));
    let names: Vec<&str> = listed.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        names,
        [
            "Already Here",
            "Lee, Ann",
            "Say \"Hi\"",
            "Two\nLines",
            "Last One"
        ]
    );
    assert_eq!(listed[2].2, "", "an empty email is no email");

    // The same file again: refused, nothing doubled.
    let again = tool.run(&["import", &name, "--on-error", "skip"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already imported"),
        "{}",
        stderr(&again)
    );
    assert_eq!(tool.raw_rows().len(), 5);
});

tool_tests!(
    abort_stops_at_the_first_bad_line_and_keeps_earlier_batches,
    |tool| {
        let mut file = String::from("name,email,age\n");
        for i in 0..5 {
            file.push_str(&format!("Person {i},p{i}@example.org,{i}\n")); // lines 2-6
        }
        file.push_str("Broken,x@example.org,old\n"); // line 7
        file.push_str("After,after@example.org,9\n"); // line 8
        let name = write(&tool, "abort.csv", file.as_bytes());
        let out = tool.run(&["import", &name, "--batch-size", "2"]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("abort.csv:7: age must be a whole number"),
            "{err}"
        );
        assert!(err.contains("Lines 2–5 are in the database"), "{err}");
        let rows = tool.raw_rows();
        assert_eq!(
            rows.len(),
            4,
            "batches (2,3) and (4,5) committed; (6,7) rolled back"
        );

        // --resume on the same file stops at the same line and adds nothing.
        let out = tool.run(&["import", &name, "--batch-size", "2", "--resume"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("abort.csv:7:"), "{}", stderr(&out));
        assert_eq!(tool.raw_rows().len(), 4);
    }
);

tool_tests!(bad_files_get_one_sentence_and_change_nothing, |tool| {
    let cases: Vec<(String, &str)> = vec![
        (
            write(&tool, "wrong.csv", b"name,phone,age\nA,1,2\n"),
            "wrong.csv:1: column 2 of the header is not name, email or age",
        ),
        (
            write(&tool, "noheader.csv", b"Ada,ada@example.org,36\n"),
            "noheader.csv:1: column 1 of the header",
        ),
        (
            write(&tool, "missing.csv", b"name,age\nA,2\n"),
            "missing.csv:1: the header lacks the column email",
        ),
        (write(&tool, "empty.csv", b""), "empty.csv: is empty"),
        ("nope.csv".into(), "nope.csv: no such file"),
        (".".into(), "is a directory"),
    ];
    for (file, message) in cases {
        let out = tool.run(&["import", &file]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let err = stderr(&out);
        assert!(
            err.contains(message),
            "{file}: expected {message:?} in {err:?}"
        );
        assert!(!err.contains("Ada"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(tool.raw_rows().is_empty());

    // A mapped extra column is accepted.
    let file = write(
        &tool,
        "mapped.csv",
        b"full_name,email,age,phone\nAda,ada@example.org,36,555\n",
    );
    tool.ok(&[
        "import",
        &file,
        "--map",
        "full_name=name",
        "--map",
        "phone=skip",
    ]);
    assert_eq!(tool.raw_rows().len(), 1);
});

/// A deterministic CSV with awkward names: commas, quotes, line breaks,
/// non-ASCII; every tenth email empty.
fn big_csv(rows: usize) -> Vec<u8> {
    let firsts = [
        "Zoë",
        "José",
        "Łukasz",
        "O'Brien",
        "Ana \"Nan\"",
        "Lee, Ann",
        "Two\nLines",
        "李",
    ];
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["name", "email", "age"]).unwrap();
    for i in 0..rows {
        let name = format!("{} {i}", firsts[i % firsts.len()]);
        let email = if i % 10 == 3 {
            String::new()
        } else {
            format!("u{i}@example.org")
        };
        out.write_record([name, email, (i % 151).to_string()])
            .unwrap();
    }
    out.into_inner().unwrap()
}

fn records_of(csv_bytes: &[u8]) -> Vec<(String, String, String)> {
    let mut reader = csv::Reader::from_reader(csv_bytes);
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_owned(), r[1].to_owned(), r[2].to_owned())
        })
        .collect()
}

tool_tests!(
    kill_9_mid_import_then_resume_loses_and_doubles_nothing,
    |tool| {
        const ROWS: usize = 200_000;
        let file = big_csv(ROWS);
        let name = write(&tool, "big.csv", &file);
        tool.ok(&["list"]); // create the schema and keyring before watching
        let mut child: std::process::Child = tool
            .cmd(crate::cli::PASS, &["import", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Kill it once some batches are in, well before the end.
        let started = std::time::Instant::now();
        let at_kill = loop {
            let n = tool.raw_count();
            if n >= 20_000 {
                break n;
            }
            assert!(
                started.elapsed().as_secs() < 120,
                "the import made no progress"
            );
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the import ended ({status}) before it could be killed");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let after_kill = tool.raw_count();
        assert!(
            after_kill >= at_kill && after_kill < ROWS as i64,
            "killed mid-way: {after_kill} rows"
        );
        assert_eq!(
            after_kill % fieldseal_tool::app::import::DEFAULT_BATCH_SIZE as i64,
            0,
            "only whole batches are ever in"
        );

        let out = tool.run(&["import", &name]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "without --resume a partial import is refused"
        );
        assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));

        let out = tool.run(&["import", &name, "--resume"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("resumed after {after_kill} records")),
            "{}",
            stderr(&out)
        );

        // Exactly the file's rows, each once, all decrypting, in file order.
        tool.ok(&["export", "out.csv"]);
        let exported = std::fs::read(tool.path("out.csv")).unwrap();
        assert_eq!(records_of(&exported), records_of(&file));
    }
);

tool_tests!(import_then_export_round_trips, |tool| {
    const ROWS: usize = 100_000;
    let file = big_csv(ROWS);
    let name = write(&tool, "in.csv", &file);
    tool.ok(&["import", &name, "--batch-size", "5000"]);
    tool.ok(&["export", "out.csv"]);
    let exported = std::fs::read(tool.path("out.csv")).unwrap();
    // The csv writer quotes the same way on both sides: byte for byte.
    assert_eq!(exported, file);
    let _ = std::io::stdout().flush();
});

#[test]
fn rejects_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let tool = Tool::new(TestDb::sqlite());
    let name = write(&tool, "r.csv", b"name,email,age\nA,a@example.org,x\n");
    tool.ok(&[
        "import",
        &name,
        "--on-error",
        "skip",
        "--rejects",
        "rej.csv",
    ]);
    let mode = std::fs::metadata(tool.path("rej.csv"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let _ = Command::new("true").status();
}

// A batch larger than one statement may bind (MySQL allows 65,535
// placeholders, SQLite 32,766 variables; a row binds 8) is written as
// several statements in its one transaction.
tool_tests!(batches_larger_than_one_statement_go_in, |tool| {
    let mut csv = String::from("name,email,age\n");
    for i in 0..12_000 {
        csv.push_str(&format!("P{i},p{i}@example.org,{}\n", i % 100));
    }
    let name = write(&tool, "big-batch.csv", csv.as_bytes());
    let out = tool.run(&["import", &name, "--batch-size", "10000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tool.raw_count(), 12_000);
});
