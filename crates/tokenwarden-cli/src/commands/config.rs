//! `tokenwarden config`: each connection setting, its value, and where it came from. Secrets are
//! shown as `[set]`. Exits like the commands that use the settings would: 0 when they are
//! usable, else 2 or 3 with the same message, after the table.

use crate::args::{ConfigArgs, GlobalArgs};
use crate::config::{self, FileUse, Layers, Row};
use anyhow::Result;
use serde_json::{Value, json};
use std::io::Write as _;

pub(crate) fn run(g: &GlobalArgs, a: &ConfigArgs) -> Result<u8> {
    let flags = g.connection.flags();
    let inputs = config::Inputs::from_system(&flags, &config::process_env);
    let mut layers = Layers::collect(&inputs)?;
    super::show_warnings(std::mem::take(&mut layers.warnings));
    let rows = with_store_default(config::explain(&layers), g.connection.no_cache);
    let profile = layers.profile.clone();
    let files = [layers.config_file.clone(), layers.gc_file.clone()];
    let mut stdin = || {
        super::STDIN_TAKEN.store(true, std::sync::atomic::Ordering::SeqCst);
        config::read_stdin_secret()
    };
    let outcome = config::settings_from(layers, &mut stdin);
    let mut out = std::io::stdout().lock();
    if a.json {
        let problem = outcome.as_ref().err().map(|e| format!("{e:#}"));
        let doc = document(&profile, &files, &rows, problem.as_deref());
        // The same problem is the error on stderr (exit 3): stdout keeps it as data.
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        write!(out, "{}", table(&profile, &files, &rows))?;
    }
    out.flush()?;
    Ok(outcome.map(|_| crate::exit::OK)?)
}

/// The token store row as the commands see it: memory with `--no-cache`, and when nobody named a
/// store, the default every command uses (the private file cache), with its directory.
fn with_store_default(mut rows: Vec<Row>, no_cache: bool) -> Vec<Row> {
    let Some(row) = rows.iter_mut().find(|r| r.name == "token_store") else {
        return rows;
    };
    if no_cache {
        if let Some(value) = row.value.take() {
            let from = row.source.take().unwrap_or_default();
            row.overridden.insert(0, (value, from));
        }
        row.value = Some("memory".into());
        row.source = Some("--no-cache".into());
        row.note = None;
    } else if row.value.is_none() {
        let default = super::tokens::DEFAULT_STORE;
        let dir = super::tokens::cache_dir(&default).map_or_else(
            || "(no cache directory: set TOKENWARDEN_CACHE_DIR)".to_string(),
            |d| d.display().to_string(),
        );
        row.value = Some("file".into());
        row.source = Some("default".into());
        row.note = Some(format!(
            "every command shares its token through the private cache in {dir}; --token-store memory or --no-cache opts out"
        ));
    }
    rows
}

fn file_line(label: &str, f: &FileUse) -> String {
    let state = if f.exists { "" } else { ", not found" };
    match &f.path {
        Some(p) => format!("{label}{} ({}{state})\n", p.display(), f.chosen_by),
        None => format!("{label}(no home directory)\n"),
    }
}

/// The text table: the files and profile read, then one line per setting and an indented line
/// per value it overrides.
fn table(profile: &(String, &'static str), files: &[FileUse; 2], rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str(&file_line("config file:  ", &files[0]));
    s.push_str(&file_line("gc config:    ", &files[1]));
    s.push_str(&format!("profile:      {} ({})\n\n", profile.0, profile.1));
    let width = rows
        .iter()
        .map(|r| r.value.as_deref().map_or(9, str::len))
        .max()
        .unwrap_or(0)
        .min(48);
    for r in rows {
        let value = r.value.as_deref().unwrap_or("(not set)");
        let source = r.source.as_deref().unwrap_or("");
        let line = format!("{:<20} {value:<width$}  {source}", r.name);
        s.push_str(line.trim_end());
        s.push('\n');
        for (v, from) in &r.overridden {
            s.push_str(&format!("{:<20}   overrides {v} from {from}\n", ""));
        }
        if let Some(n) = &r.note {
            s.push_str(&format!("{:<20}   {n}\n", ""));
        }
    }
    s
}

/// The same as one JSON object, keyed by setting name (`jq .settings.region.source`).
fn document(
    profile: &(String, &'static str),
    files: &[FileUse; 2],
    rows: &[Row],
    problem: Option<&str>,
) -> Value {
    let file = |f: &FileUse| {
        json!({
            "path": f.path.as_ref().map(|p| p.display().to_string()),
            "chosen_by": f.chosen_by,
            "exists": f.exists,
        })
    };
    let settings: serde_json::Map<String, Value> = rows
        .iter()
        .map(|r| {
            (
                r.name.to_string(),
                json!({
                    "value": r.value,
                    "source": r.source,
                    "overridden": r.overridden.iter().map(|(v, from)| json!({"value": v, "source": from})).collect::<Vec<_>>(),
                    "note": r.note,
                }),
            )
        })
        .collect();
    json!({
        "config_file": file(&files[0]),
        "gc_config_file": file(&files[1]),
        "profile": {"name": profile.0, "chosen_by": profile.1},
        "settings": settings,
        "usable": problem.is_none(),
        "problem": problem.map(|p| p.split("\nhint: ").next().unwrap_or_default()),
        "hint": problem.and_then(|p| p.split_once("\nhint: ").map(|(_, h)| h)),
    })
}
