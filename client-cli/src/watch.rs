//! `satchel discover --watch`: the subject's referrers, then a line for
//! every referrer that appears or disappears, until interrupted. With
//! `--format json`, one JSON object per line (see docs/cli-json.md).

use std::io::Write;

use satchel_client::pb;
use serde_json::{json, Value};

use crate::show::{esc, referrer_fields};
use crate::target::repo_of;

/// Watches `subject` through `client`, printing as events come.
pub async fn watch(
    addr: &satchel_client::Daemon,
    subject: pb::Target,
    artifact_type: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let mut client = addr.connect().await?;
    let mut events = client
        .watch_referrers(pb::WatchReferrersRequest {
            subject: Some(subject),
            artifact_type: artifact_type.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let mut repo = String::new();
    while let Some(answer) = events.message().await? {
        let Some(event) = answer.event else { continue };
        if let pb::watch_referrers_response::Event::Current(c) = &event {
            repo = repo_of(&c.reference).to_string();
        }
        let out = match json {
            true => serde_json::to_string(&event_json(&repo, &event))? + "\n",
            false => event_text(&event),
        };
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
    }
    Ok(())
}

fn event_json(repo: &str, event: &pb::watch_referrers_response::Event) -> Value {
    use pb::watch_referrers_response::Event;
    match event {
        Event::Current(c) => json!({
            "event": "current",
            "reference": c.reference,
            "resync": c.resync,
            "referrers": c.referrers.iter().map(|d| referrer_fields(repo, d)).collect::<Vec<_>>(),
        }),
        Event::Appeared(d) => json!({"event": "appeared", "referrer": referrer_fields(repo, d)}),
        Event::Disappeared(d) => {
            json!({"event": "disappeared", "referrer": referrer_fields(repo, d)})
        }
    }
}

fn line(sign: &str, d: &pb::Descriptor) -> String {
    format!("{sign} {}  {}\n", esc(&d.digest), esc(&d.artifact_type))
}

fn event_text(event: &pb::watch_referrers_response::Event) -> String {
    use pb::watch_referrers_response::Event;
    match event {
        Event::Current(c) => {
            let what = match c.resync {
                true => "Fell behind; now",
                false => "Watching",
            };
            let n = c.referrers.len();
            let mut out = format!("{what} {}: {n} referrer(s)\n", esc(&c.reference));
            for d in &c.referrers {
                out.push_str(&line(" ", d));
            }
            out
        }
        Event::Appeared(d) => line("+", d),
        Event::Disappeared(d) => line("-", d),
    }
}
