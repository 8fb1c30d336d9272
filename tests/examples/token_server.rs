//! The test-only token issuer ([`satchel_tests::auth::TokenIssuer`]) as a
//! process, for benchmarks that run docker-registry with `auth: token`.
//!
//! `token_server DIR USER` reads the password from the first line of
//! standard input, writes its signing key and certificate into DIR, prints
//! one JSON line (`realm`, `service`, `issuer`, `cert`) and serves until it
//! is killed.

use std::io::{BufRead, Write};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(user)) = (args.next(), args.next()) else {
        eprintln!("usage: token_server DIR USER   (password on stdin)");
        std::process::exit(2);
    };
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).unwrap();
    let password = password.trim_end_matches(['\r', '\n']);
    let issuer = satchel_tests::auth::TokenIssuer::start(dir.as_ref(), &user, password);
    let line = serde_json::json!({
        "realm": issuer.realm,
        "service": issuer.service,
        "issuer": issuer.issuer,
        "cert": issuer.cert,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
    drop(out);
    loop {
        std::thread::park();
    }
}
