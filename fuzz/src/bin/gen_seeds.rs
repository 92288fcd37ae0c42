//! Writes the seed corpora: `gen-seeds [DIR]` (default `corpus`) creates
//! `DIR/<target>/seed-*`. Ciphertexts and wrapped keys use random nonces,
//! so each run writes different (equally valid) bytes; the committed seeds
//! are one such run.

use fieldseal::KdfParams;
use fieldseal_fuzz::{
    keyring, old_keyring, Col, KeyCheck, KeyRowsInput, Mac, RowSpec, Wrap, Writer,
};
use std::path::{Path, PathBuf};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed written");
}

fn open_ciphertext(dir: &Path) {
    let ring = keyring();
    let old = old_keyring();
    let stored = |name: &str, mode: u8, bytes: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(bytes);
        write(dir, "open_ciphertext", name, &v);
    };
    let email = ring.seal::<Col, _>("ada@example.org").expect("seals");
    stored("string-key2", 0, email.as_bytes());
    stored(
        "string-key1",
        0,
        old.seal::<Col, _>("Ada Lovelace")
            .expect("seals")
            .as_bytes(),
    );
    stored(
        "empty-key2",
        0,
        ring.seal::<Col, _>("").expect("seals").as_bytes(),
    );
    stored(
        "i64-key2",
        0,
        ring.seal::<Col, _>(&36i64).expect("seals").as_bytes(),
    );
    stored(
        "i64-key1",
        0,
        old.seal::<Col, _>(&-1i64).expect("seals").as_bytes(),
    );
    let binary: Vec<u8> = (0..=255u8).collect();
    stored(
        "bytes-key2",
        0,
        ring.seal::<Col, _>(&binary[..]).expect("seals").as_bytes(),
    );
    stored(
        "not-utf8-key1",
        0,
        old.seal::<Col, _>(&b"\xff\xfe"[..])
            .expect("seals")
            .as_bytes(),
    );
    stored("other-column", 3, email.as_bytes());
    let mut tampered = email.as_bytes().to_vec();
    *tampered.last_mut().expect("bytes") ^= 1;
    stored("tampered-tag", 0, &tampered);
    let mut unknown = email.as_bytes().to_vec();
    unknown[1..5].copy_from_slice(&3u32.to_be_bytes());
    stored("unknown-key-id", 0, &unknown);
    let mut version = email.as_bytes().to_vec();
    version[0] = 2;
    stored("unknown-version", 0, &version);
    stored("short-32", 0, &email.as_bytes()[..32]);
    stored("header-only-33", 0, &email.as_bytes()[..33]);
    stored("empty", 0, b"");
    let mut w = Writer::default();
    write(
        dir,
        "open_ciphertext",
        "roundtrip-text",
        &w.u8(1).u16(77).raw("Ada Lovelace".as_bytes()).0,
    );
    let mut w = Writer::default();
    write(
        dir,
        "open_ciphertext",
        "roundtrip-unicode",
        &w.u8(1).u16(3).raw("José Müller 李小龙 😀".as_bytes()).0,
    );
    let mut w = Writer::default();
    write(dir, "open_ciphertext", "roundtrip-empty", &w.u8(1).u16(0).0);
    let mut w = Writer::default();
    write(
        dir,
        "open_ciphertext",
        "roundtrip-binary",
        &w.u8(1).u16(300).raw(&binary).0,
    );
    for (name, v) in [
        ("zero", 0i64),
        ("minus-one", -1),
        ("min", i64::MIN),
        ("max", i64::MAX),
    ] {
        let mut w = Writer::default();
        write(
            dir,
            "open_ciphertext",
            &format!("i64-{name}"),
            &w.u8(2).i64(v).0,
        );
    }
}

fn row(purpose: &str, id: i64, wrap: Wrap, state: &str) -> RowSpec {
    RowSpec {
        purpose: purpose.to_owned(),
        id,
        wrap,
        state: state.to_owned(),
        created_at: 1_700_000_000,
    }
}

fn key_rows(dir: &Path) {
    let floor = KdfParams::FLOOR;
    let base = KeyRowsInput {
        m: floor.m_cost_kib as i32,
        t: floor.t_cost as i32,
        p: floor.p_cost as i32,
        salt: b"saltsaltsaltsalt".to_vec(),
        key_check: KeyCheck::Valid,
        keyring_id: Some(vec![0x11; 16]),
        version: 1,
        mac: Mac::Valid,
        rows: vec![
            row("data", 1, Wrap::Valid(1), "active"),
            row("index", 1, Wrap::Valid(2), "active"),
        ],
    };
    let mut seeds: Vec<(&str, KeyRowsInput)> = vec![("new-store", base.clone())];
    let with = |f: &dyn Fn(&mut KeyRowsInput)| {
        let mut input = base.clone();
        f(&mut input);
        input
    };
    seeds.push((
        "rotated",
        with(&|i| {
            i.version = 7;
            i.rows = vec![
                row("data", 1, Wrap::Valid(1), "retired"),
                row("data", 2, Wrap::Valid(3), "decrypt-only"),
                row("data", 3, Wrap::Valid(4), "active"),
                row("index", 1, Wrap::Valid(2), "decrypt-only"),
                row("index", 2, Wrap::Valid(5), "active"),
            ];
        }),
    ));
    seeds.push((
        "format-1",
        with(&|i| {
            i.keyring_id = None;
            i.version = 0;
            i.mac = Mac::Missing;
        }),
    ));
    seeds.push((
        "default-params",
        with(&|i| {
            let d = KdfParams::default();
            (i.m, i.t, i.p) = (d.m_cost_kib as i32, d.t_cost as i32, d.p_cost as i32);
        }),
    ));
    seeds.push((
        "ceiling-params",
        with(&|i| {
            let c = KdfParams::CEILING;
            (i.m, i.t, i.p) = (c.m_cost_kib as i32, c.t_cost as i32, c.p_cost as i32);
        }),
    ));
    seeds.push(("weak-params", with(&|i| (i.m, i.t, i.p) = (1024, 1, 1))));
    seeds.push((
        "huge-params",
        with(&|i| (i.m, i.t, i.p) = (i32::MAX, 65, 65)),
    ));
    seeds.push(("negative-params", with(&|i| i.t = -1)));
    seeds.push((
        "wrong-master",
        with(&|i| i.key_check = KeyCheck::OtherMaster),
    ));
    seeds.push((
        "raw-key-check",
        with(&|i| i.key_check = KeyCheck::Raw(vec![0; 32])),
    ));
    seeds.push(("mac-missing", with(&|i| i.mac = Mac::Missing)));
    seeds.push(("mac-flipped", with(&|i| i.mac = Mac::Flipped(77))));
    seeds.push(("mac-raw", with(&|i| i.mac = Mac::Raw(vec![0xAA; 32]))));
    seeds.push((
        "empty-keyring-id",
        with(&|i| i.keyring_id = Some(Vec::new())),
    ));
    seeds.push((
        "unknown-purpose",
        with(&|i| i.rows.push(row("admin", 1, Wrap::Valid(6), "active"))),
    ));
    seeds.push(("negative-id", with(&|i| i.rows[0].id = -1)));
    seeds.push(("id-over-u32", with(&|i| i.rows[0].id = 1 << 32)));
    seeds.push(("id-u32-max", with(&|i| i.rows[0].id = i64::from(u32::MAX))));
    seeds.push(("id-zero", with(&|i| i.rows[0].id = 0)));
    seeds.push((
        "wrap-other-id",
        with(&|i| i.rows[0].wrap = Wrap::OtherId(1)),
    ));
    seeds.push((
        "wrap-other-purpose",
        with(&|i| i.rows[1].wrap = Wrap::OtherPurpose(2)),
    ));
    seeds.push((
        "wrap-other-keyring",
        with(&|i| i.rows[0].wrap = Wrap::OtherKeyring(1)),
    ));
    seeds.push((
        "wrap-v2-in-format-1",
        with(&|i| {
            i.keyring_id = None;
            i.rows[0].wrap = Wrap::OtherKeyring(1);
        }),
    ));
    seeds.push((
        "wrap-truncated",
        with(&|i| i.rows[0].wrap = Wrap::Truncated(1, 0)),
    ));
    seeds.push((
        "wrap-raw",
        with(&|i| i.rows[0].wrap = Wrap::Raw(vec![0; 60])),
    ));
    seeds.push((
        "no-data-key",
        with(&|i| {
            i.rows.remove(0);
        }),
    ));
    seeds.push(("no-rows", with(&|i| i.rows.clear())));
    seeds.push((
        "duplicate-row",
        with(&|i| i.rows.push(row("data", 1, Wrap::Valid(9), "active"))),
    ));
    seeds.push((
        "odd-state",
        with(&|i| i.rows[0].state = "bogus\u{0}".to_owned()),
    ));
    seeds.push(("version-negative", with(&|i| i.version = i64::MIN)));
    for (name, input) in seeds {
        let bytes = input.encode();
        assert_eq!(KeyRowsInput::decode(&bytes), input, "{name} round-trips");
        write(dir, "key_rows", name, &bytes);
    }
}

fn csv_record(dir: &Path) {
    let seeds: &[(&str, u8, &[u8])] = &[
        ("basic", 0, b"name,email,age\nAda Lovelace,ada@example.org,36\nAlan Turing,,41\n"),
        ("bom-crlf", 0, b"\xEF\xBB\xBFname,email,age\r\nAda,ada@example.org,36\r\nBob,bob@example.com,0\r\n"),
        ("quoted", 0, b"name,email,age\n\"Lovelace, Ada\",ada@example.org,36\n\"Multi\nLine\",,20\n\"He said \"\"hi\"\"\",,1\n\"  spaced  \",\" x@y.org \",\" 7 \"\n"),
        ("unicode", 0, "name,email,age\nJosé Müller,jose@exämple.org,50\n李小龙,,32\nStraße İ ǅ,,1\ne\u{301}\u{345},,2\n\u{202e}rtl,,3\n".as_bytes()),
        ("bad-ages", 0, b"name,email,age\nA,,151\nB,,-1\nC,,abc\nD,,4.5\nE,,\nF,,99999999999999999999\nG,,+5\nH,,0150\n"),
        ("bad-emails", 0, b"name,email,age\nA,nope,1\nB,a@b,1\nC,@x.org,1\nD,a@@x.org,1\nE,a b@x.org,1\nF,a@x.org.,1\nG,\"\"\"a@b\"\"@x.org\",1\nH,a@.x.org,1\nI,a@[127.0.0.1],1\n"),
        ("bad-names", 0, b"name,email,age\n ,,1\n\"a\x1b[2Jb\",,1\n\"a\tb\",,1\n\x7f,,1\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx,,1\n"),
        ("field-counts", 0, b"name,email,age\nA,,1,extra\nB,,\nC\n\nD,,2\n"),
        ("not-utf8", 0, b"name,email,age\n\xff\xfe,,1\nA,\xc3(,1\nB,,\xe2\x82\n"),
        ("header-not-utf8", 0, b"name,em\xffail,age\nA,,1\n"),
        ("column-order", 0, b"AGE , Email,NAME\n36,ada@example.org,Ada\n"),
        ("missing-columns", 0, b"name,age\nA,1\n"),
        ("unknown-column", 0, b"name,email,age,notes\nA,,1,x\n"),
        ("duplicate-column", 0, b"name,email,age,name\nA,,1,B\n"),
        ("empty", 0, b""),
        ("header-only", 0, b"name,email,age"),
        ("mapped", 1, b"full_name,mail,age\nAda,ada@example.org,36\n"),
        ("mapped-skip", 2, b"notes,years,email,name\nx,1,,A\n"),
        ("mapped-empty-label", 3, b"name,email,age,\nA,,1,\n"),
        ("abort", 0x80, b"name,email,age\nA,,1\nB,,999\nC,,3\n"),
        ("resume-skip-2", 0x40 | 0x0c, b"name,email,age\nA,,1\nB,,2\nC,,3\nD,,x\n"),
        ("batches-of-1", 0, b"name,email,age\nA,,1\nB,,2\nC,,3\n"),
        ("mixed-line-ends", 0, b"name,email,age\nA,,1\r\nB,,2\nC,,3\r\n"),
        ("crlf-header-lf-body", 0, b"name,email,age\r\nA,,1\nB,,2\n"),
        ("cr-only", 0, b"name,email,age\rA,,1\rB,,2\r"),
        ("blank-lines", 0, b"name,email,age\n\n\nA,,1\n\r\n\nB,,2\n"),
        ("double-bom", 0, b"\xEF\xBB\xBF\xEF\xBB\xBFname,email,age\nA,,1\n"),
    ];
    for (name, config, csv) in seeds {
        let mut v = vec![*config];
        v.extend_from_slice(csv);
        write(dir, "csv_record", name, &v);
    }
}

fn normalize(dir: &Path) {
    let seeds: &[(&str, &str)] = &[
        ("ascii-email", "  Alice@Example.COM \n"),
        ("eszett", "Straße"),
        ("capital-eszett", "STRASSE \u{1E9E}"),
        ("full-width", "ｆｉｅｌｄ"),
        ("ligatures", "ﬁle ﬀ ﬆ Ǆ ǅ"),
        ("turkish", "İstanbul ı I i"),
        ("combining", "e\u{301} a\u{30a} \u{212b} o\u{308}\u{301}"),
        ("greek", "ΐ ᾳ ᾼ \u{345} Α\u{345} ΣΑΣ ς"),
        ("compat", "™ ㎒ ½ ① ℌ ㈱"),
        ("hangul", "한국어 \u{1112}\u{1161}\u{11ab}"),
        ("cherokee", "Ꭰꭰ ᏸ"),
        ("spaces", "\u{3000}x\u{a0}\u{2003}y\u{85}\u{2028}"),
        ("bom-zero-width", "\u{feff}a\u{200b}b"),
        ("arabic-ligature", "\u{fdfa} \u{fdfb}"),
        ("emoji", "😀 👨‍👩‍👧 🇩🇪"),
        ("empty", ""),
        ("control", "\u{0}\u{1b}[2J\t\r\n"),
        ("mixed", "  José LOVELACE-Straße ﬁ ｆｕｌｌ  "),
    ];
    for (name, text) in seeds {
        write(dir, "normalize", name, text.as_bytes());
    }
    write(dir, "normalize", "invalid-utf8", b"ab\xff\xfecd\xe2\x82");
}

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("corpus"), PathBuf::from);
    open_ciphertext(&dir);
    key_rows(&dir);
    csv_record(&dir);
    normalize(&dir);
    println!("seeds written under {}", dir.display());
}
