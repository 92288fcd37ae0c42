//! Rendering records: a readable table, CSV, or JSON.

use super::Format;
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use fieldseal_tool::app::Record;
use std::io::Write;

/// Writes records to standard output in `format`.
pub fn print_records(records: &[Record], format: Format) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => {
            writeln!(out, "{}", table(records))?;
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(&mut out);
            writer.write_record(["id", "name", "email", "age", "created_at"])?;
            for r in records {
                writer.write_record([
                    r.id.to_string(),
                    r.name.clone(),
                    r.email.clone().unwrap_or_default(),
                    r.age.to_string(),
                    created(r),
                ])?;
            }
            writer.flush()?;
        }
        Format::Json => {
            let rows: Vec<serde_json::Value> = records
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "id": r.id,
                        "name": r.name,
                        "email": r.email,
                        "age": r.age,
                        "created_at": created(r),
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A readable table of records.
pub fn table(records: &[Record]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["id", "name", "email", "age", "created (UTC)"]);
    for r in records {
        table.add_row([
            r.id.to_string(),
            r.name.clone(),
            r.email.clone().unwrap_or_default(),
            r.age.to_string(),
            r.created_at.format("%Y-%m-%d %H:%M").to_string(),
        ]);
    }
    table
}

fn created(r: &Record) -> String {
    r.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
