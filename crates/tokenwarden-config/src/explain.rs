//! What `tokenwarden config` shows: each setting's effective value, where it came from, and the
//! values it overrides. Secrets are shown as `[set]`.

use super::layers::Layers;
use super::resolve;
use super::table::{ENV_ACCESS_TOKEN, Key, SETTINGS};

/// One setting as `tokenwarden config` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The setting's name (`region`, `token_url`, ...).
    pub name: &'static str,
    /// The effective value (secrets as `[set]`); `None` when not set.
    pub value: Option<String>,
    /// Where the effective value came from: a flag, a variable, a profile, `default`.
    pub source: Option<String>,
    /// Values other sources give that lose, as (value shown, where).
    pub overridden: Vec<(String, String)>,
    /// Why the value is not used, or what is wrong with it.
    pub note: Option<String>,
}

impl Row {
    fn new(name: &'static str) -> Row {
        Row {
            name,
            value: None,
            source: None,
            overridden: Vec::new(),
            note: None,
        }
    }
}

/// Every setting, in the order of the settings table, then `allow_insecure_http`.
pub(crate) fn rows(l: &Layers) -> Vec<Row> {
    let endpoints = resolve::endpoints(l);
    let token_from = l.first(&[Key::TokenUrl, Key::Region]).map(|(k, _)| k);
    let api_from = l
        .first(&[Key::ApiBase, Key::Region, Key::TokenUrl])
        .map(|(k, _)| k);
    let direct_client = l
        .given
        .iter()
        .any(|(k, g)| matches!(k, Key::ClientId | Key::ClientSecret) && g.from.rank() <= 1);
    let static_token = l.first(&[Key::AccessToken]).is_some() && !direct_client;
    let mut out = Vec::new();
    for spec in SETTINGS {
        let key = spec.key;
        let mut row = Row::new(spec.name);
        // The effective value comes from this key unless another one gives it.
        let from_this_key = match key {
            Key::TokenUrl => token_from == Some(Key::TokenUrl),
            Key::ApiBase => api_from == Some(Key::ApiBase),
            _ => true,
        };
        let mut given = l.all(key);
        if from_this_key && let Some(g) = given.next() {
            row.value = Some(g.shown());
            row.source = Some(g.place());
        }
        row.overridden = given.map(|g| (g.shown(), g.place())).collect();
        let region_invalid = l
            .first(&[Key::Region])
            .is_some_and(|(_, g)| resolve::region(g).is_err());
        match key {
            Key::TokenUrl | Key::ApiBase if !from_this_key => match &endpoints {
                Ok((token, api)) => {
                    let (value, from) = match key {
                        Key::TokenUrl => (
                            token
                                .url
                                .as_ref()
                                .map_or(crate::NO_TOKEN_URL, |u| u.as_str()),
                            &token.from,
                        ),
                        _ => (api.url.as_str(), &api.from),
                    };
                    row.value = Some(value.to_string());
                    row.source = Some(from.clone());
                }
                // The region's own row says what is wrong with it; the error (with its hint)
                // follows the table once.
                Err(_) if region_invalid => {
                    row.note = Some("not derived: the region is not valid (see region)".into());
                }
                Err(e) => row.note = Some(without_hint(e)),
            },
            Key::Region if row.value.is_some() => {
                let used = token_from == Some(Key::Region) || api_from == Some(Key::Region);
                if !used {
                    row.note = Some(
                        "not used: token_url and api_base come from more specific sources".into(),
                    );
                } else if let Some((_, g)) = l.first(&[Key::Region])
                    && let Err(e) = resolve::region(g)
                {
                    row.note = Some(without_hint(&e));
                }
            }
            Key::AccessToken if row.value.is_some() && !static_token => {
                row.note = Some(
                    "not used: a client id or secret comes from a flag or the environment".into(),
                );
            }
            Key::ClientId | Key::ClientSecret if row.value.is_some() && static_token => {
                row.note = Some(format!("not used: {ENV_ACCESS_TOKEN} is used instead"));
            }
            Key::ClientAuth if row.value.is_none() => {
                row.value = Some("basic".into());
                row.source = Some("default".into());
            }
            _ => {}
        }
        if row.value.is_none() && row.note.is_none() {
            row.note = Some(key.how_to_set());
        }
        out.push(row);
    }
    let mut insecure = Row::new("allow_insecure_http");
    insecure.value = Some(if l.allow_insecure_http { "yes" } else { "no" }.into());
    insecure.source = Some(
        if l.allow_insecure_http {
            "--allow-insecure-http"
        } else {
            "default"
        }
        .into(),
    );
    out.push(insecure);
    out
}

/// An error's message without its hint (said once, after the table).
fn without_hint(e: &crate::Error) -> String {
    let text = format!("{e:#}");
    text.split("\nhint: ")
        .next()
        .unwrap_or_default()
        .to_string()
}
