//! `workspaces tokens create|list|revoke WORKSPACE` and `portal-link WORKSPACE`: what an
//! operator gives a customer (a token for their integration, or a link that opens the dashboard
//! as their workspace). Both need the admin token; the API calls are in `remote::Client`.

use serde_json::{Value, json};

use super::remote::{Client, bulk, print_value, segment, table, text_of};
use super::{Outcome, Parsed, usage};

pub fn main(name: &str, parsed: &Parsed) -> Outcome {
    let client = Client::new(parsed)?;
    let json = parsed.has("json");
    let (workspace, rest) = parsed.positionals.split_first().ok_or_else(|| {
        usage(format!(
            "{name} needs a WORKSPACE (see clockeye-webhooks {name} --help)"
        ))
    })?;
    let tokens = format!("/v1/workspaces/{}/tokens", segment(workspace));
    match name {
        "workspaces tokens create" => {
            let mut body = json!({});
            if let Some(description) = parsed.get("description") {
                body["description"] = description.into();
            }
            let token = client.call("POST", &tokens, Some(&body))?;
            // The token alone on stdout, so `$(… tokens create acme)` captures just it.
            if !json {
                eprintln!(
                    "token {} for workspace {workspace} (shown once; only its hash is kept)",
                    text_of(&token["id"])
                );
            }
            print_value(json, &token, || format!("{}\n", text_of(&token["token"])))
        }
        "workspaces tokens list" => {
            let page = client.call("GET", &format!("{tokens}?limit=500"), None)?;
            print_value(json, &page, || {
                let rows: Vec<Vec<String>> = page["data"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|token| {
                        vec![
                            text_of(&token["id"]),
                            text_of(&token["description"]),
                            text_of(&token["created_at"]),
                            or_never(&token["last_used_at"]),
                            or_never(&token["expires_at"]),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    format!("no tokens for workspace {workspace}\n")
                } else {
                    table(
                        &["ID", "DESCRIPTION", "CREATED", "LAST USED", "EXPIRES"],
                        &rows,
                    )
                }
            })
        }
        "workspaces tokens revoke" => bulk(rest, "revoked", json, |id| {
            client
                .call("DELETE", &format!("{tokens}/{}", segment(id)), None)
                .map(|_| json!({"id": id, "revoked": true}))
        }),
        "portal-link" => {
            let expires_in = parsed.get("expires-in").unwrap_or("1h");
            if expires_in.is_empty() {
                return Err(usage("--expires-in needs a duration such as 15m or 24h"));
            }
            let link = client.call(
                "POST",
                &format!("/v1/workspaces/{}/portal-links", segment(workspace)),
                Some(&json!({"expires_in": expires_in})),
            )?;
            // An older server answered a path: make it whole with --server.
            let url = match link["url"].as_str() {
                Some(url) if url.starts_with('/') => format!("{}{url}", client.server),
                Some(url) => url.to_string(),
                None => String::new(),
            };
            if !json {
                eprintln!(
                    "opens the dashboard as workspace {workspace}, once, until {}; then a 12-hour session",
                    text_of(&link["expires_at"])
                );
            }
            let mut shown = link.clone();
            shown["url"] = Value::from(url.as_str());
            print_value(json, &shown, || format!("{url}\n"))
        }
        _ => unreachable!("every workspaces command is dispatched"),
    }
}

fn or_never(value: &Value) -> String {
    if value.is_null() {
        "never".to_string()
    } else {
        text_of(value)
    }
}
